"""PyTorch references for the Hugging Face model families bunlm loads: Llama (with rope_scaling llama3 /
linear / yarn), Qwen2 (q/k/v biases), Qwen3 (RMSNorm on each head's q and k), Mistral (sliding-window
attention) and DeepSeek-V2 (multi-head latent attention, its RoPE channel order, YaRN's softmax-scale
correction, its mixture-of-experts MLPs with the per-layer auxiliary loss) and Qwen2-MoE (routed experts
plus one shared expert behind a sigmoid gate, the Switch load-balancing loss over every MoE layer's tokens
together). Written from the families' published modeling code (transformers' modeling_llama.py,
modeling_qwen2.py, modeling_qwen3.py, modeling_mistral.py, modeling_qwen2_moe.py (Qwen2MoeSparseMoeBlock,
load_balancing_loss_func), modeling_deepseek_v2.py, modeling_rope_utils.py, and DeepSeek's own
modeling_deepseek.py that ships with DeepSeek-V2 (MoEGate, DeepseekV2MoE)) with no dependency beyond torch
(Debian's python3-torch): run it with /usr/bin/python3.

Mixture of experts, as training computes it: each MoE layer routes a token to the K largest of
softmax(h · gateᵀ) (torch.topk; the fixtures' seeds keep every token's K-th and K+1-th router logits at
least MIN_ROUTER_GAP apart, asserted, so an f32 rounding elsewhere cannot flip an expert). The auxiliary
loss (coefficient included) joins the cross-entropy: Qwen2-MoE's router_aux_loss_coef · load_balancing_loss_func
(transformers adds it when output_router_logits is true), DeepSeek-V2's aux_loss_alpha term of every MoE
layer's MoEGate (seq_aux false), which AddAuxiliaryLoss passes into the backward with weight 1.

  make FAMILY OUT_DIR SEED          a small random checkpoint saved the way transformers saves that family
  grads MODEL_DIR BATCH.json OUT    logits, mean cross-entropy loss and every parameter's gradient (f32); with
                                    experts also aux_loss, loss_with_aux (what training minimizes; the
                                    gradients are of it) and aux_grad.<router> (the gradient of aux_loss
                                    alone on each router)
  greedy MODEL_DIR IDS N OUT.json   N greedy tokens after the prompt IDS (comma-separated), recomputing
                                    the whole sequence each step
  compare DIR_A DIR_B               max relative difference of the logits of two checkpoints on a fixed batch;
                                    exit status 1 when it is above 1e-6 (or a weight's name or shape differs)

Packed rows (bunlm's semantics, as in llama_ref.py): position_ids restart at 0 where a document starts, and
a query never sees a key of another document; key j is visible from query i iff i - pos_i <= j <= i, and
for a sliding-window layer also i - j < sliding_window (transformers' sliding-window mask).

Regenerate the fixtures with: bun test/reference/make_family_fixtures.ts
"""
import json, math, os, struct, sys
import torch
import torch.nn.functional as F

DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32, "I64": torch.int64}
DT_NAME = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
TORCH_DTYPE = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---- safetensors and checkpoint directories ----

def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = bytearray(buf[8 + n + a:8 + n + b])
        dtype = DT[t["dtype"]]
        out[name] = torch.frombuffer(raw, dtype=dtype).reshape(t["shape"]).clone() if b > a else torch.zeros(t["shape"], dtype=dtype)
    return out


def tensor_bytes(t):
    t = t.contiguous()
    return t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        data = tensor_bytes(t)
        header[name] = {"dtype": DT_NAME[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_weights(model_dir):
    """model.safetensors, or the shards model.safetensors.index.json maps names to."""
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    index = json.load(open(os.path.join(model_dir, "model.safetensors.index.json")))
    out = {}
    for shard in sorted(set(index["weight_map"].values())):
        part = read_safetensors(os.path.join(model_dir, shard))
        for name, t in part.items():
            assert index["weight_map"].get(name) == shard, f"{shard}: {name} is not mapped to this shard by the index"
            out[name] = t
    assert set(out) == set(index["weight_map"]), "the index names tensors that no shard holds"
    return out


def save_pretrained(out_dir, config, weights, shards=1):
    """As transformers' save_pretrained: config.json with sorted keys; one model.safetensors, or `shards`
    files model-0000i-of-0000n.safetensors in state-dict order plus model.safetensors.index.json."""
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.endswith(".safetensors") or f == "model.safetensors.index.json":
            os.remove(os.path.join(out_dir, f))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    meta = {"format": "pt"}
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), weights, meta)
        return
    names = list(weights)
    total = sum(len(tensor_bytes(weights[n])) for n in names)
    # cut where the running size passes each 1/shards of the total, as max_shard_size does
    groups, cur, size = [], [], 0
    for n in names:
        cur.append(n)
        size += len(tensor_bytes(weights[n]))
        if size >= total * (len(groups) + 1) / shards and len(groups) < shards - 1:
            groups.append(cur)
            cur = []
    groups.append(cur)
    weight_map = {}
    for i, g in enumerate(groups):
        file = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        write_safetensors(os.path.join(out_dir, file), {n: weights[n] for n in g}, meta)
        for n in g:
            weight_map[n] = file
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


# ---- RoPE frequencies (modeling_rope_utils.py) ----

def rope_type(cfg):
    rs = cfg.get("rope_scaling")
    if not rs:
        return "default"
    return rs.get("rope_type", rs.get("type", "default"))


def yarn_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def rope_frequencies(cfg, dim):
    """(inv_freq (dim/2), attention_factor): the frequencies and the factor that multiplies cos and sin."""
    base = cfg.get("rope_theta", 10000.0)
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    kind, rs = rope_type(cfg), cfg.get("rope_scaling")
    if kind == "default":
        return inv_freq, 1.0
    if kind == "linear":
        # scaling the positions by 1/factor is the same as scaling the frequencies
        return inv_freq / rs["factor"], 1.0
    if kind == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv_freq
        # long wavelengths are interpolated by the factor, short ones kept, the band between blended
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return torch.where(medium, blended, scaled), 1.0
    if kind == "yarn":
        factor = rs["factor"]
        if "original_max_position_embeddings" in rs:
            orig = rs["original_max_position_embeddings"]
            # transformers takes the factor from the two lengths; our fixtures keep them consistent
            assert abs(cfg["max_position_embeddings"] / orig - factor) < 1e-9, "yarn: factor != max / original positions"
        else:
            orig = cfg["max_position_embeddings"]
        attention_factor = rs.get("attention_factor")
        if attention_factor is None:
            m, m_all = rs.get("mscale"), rs.get("mscale_all_dim")
            attention_factor = yarn_mscale(factor, m) / yarn_mscale(factor, m_all) if m and m_all else yarn_mscale(factor)
        beta_fast, beta_slow = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1

        def correction_dim(rotations):  # the dimension whose wavelength turns `rotations` times in orig
            return dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

        lo = max(math.floor(correction_dim(beta_fast)), 0)
        hi = min(math.ceil(correction_dim(beta_slow)), dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float32) - lo) / (hi - lo)).clamp(0, 1)
        extrapolate = 1 - ramp  # 1: keep the frequency, 0: divide it by the factor
        pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
        inv = (1.0 / (factor * pos_freqs)) * (1 - extrapolate) + (1.0 / pos_freqs) * extrapolate
        return inv, float(attention_factor)
    raise SystemExit(f"rope_scaling type {kind!r} is not implemented by this reference")


def cos_sin(cfg, dim, pos):
    """cos, sin (B, T, 1, dim) for rotate-half RoPE, each frequency repeated for both halves."""
    inv_freq, att = rope_frequencies(cfg, dim)
    freqs = pos[..., None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * att)[:, :, None, :], (emb.sin() * att)[:, :, None, :]


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


# ---- the model ----

class Model(torch.nn.Module):
    def __init__(self, cfg, weights):
        super().__init__()
        self.cfg = cfg
        self.kind = cfg["model_type"]
        assert self.kind in ("llama", "qwen2", "qwen3", "mistral", "deepseek_v2", "qwen2_moe"), self.kind
        self.H = cfg["num_attention_heads"]
        self.KV = cfg.get("num_key_value_heads") or self.H
        self.D = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        self.L = cfg["num_hidden_layers"]
        if self.kind == "deepseek_v2":
            self.KV = self.H
            assert cfg.get("topk_method", "greedy") == "greedy" and cfg.get("scoring_func", "softmax") == "softmax"
            assert not (cfg.get("n_routed_experts") and cfg.get("seq_aux")), "this reference has seq_aux false only"
        self.router_logits = []  # (N, E) of every MoE layer in the last forward, in layer order
        self.min_router_gap = math.inf
        self.w = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v.float()) for k, v in weights.items()})

    def p(self, name):
        key = name.replace(".", "__")
        return self.w[key] if key in self.w else None

    def linear(self, x, name, bias=False):
        y = x @ self.p(name + ".weight").T
        b = self.p(name + ".bias")
        assert (b is not None) == bias, f"{name}.bias: present {b is not None}, the family's code says {bias}"
        return y + b if b is not None else y

    def rmsnorm(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.cfg["rms_norm_eps"]))

    def window(self, layer):
        """The sliding window of a layer (None: full causal attention), per each family's config class."""
        c = self.cfg
        if self.kind == "mistral":
            return c.get("sliding_window")
        if self.kind in ("qwen2", "qwen3", "qwen2_moe"):
            if c.get("layer_types"):
                return c["sliding_window"] if c["layer_types"][layer] == "sliding_attention" else None
            on = c.get("use_sliding_window") and c.get("sliding_window")
            return c["sliding_window"] if on and layer >= c.get("max_window_layers", 0) else None
        return None

    def biases(self):
        """(q/k/v bias, o_proj bias) as each family's attention class builds its projections."""
        flag = bool(self.cfg.get("attention_bias"))
        return {"llama": (flag, flag), "qwen2": (True, False), "qwen3": (flag, flag), "mistral": (False, False),
                "deepseek_v2": (flag, flag), "qwen2_moe": (self.cfg.get("qkv_bias", True), False)}[self.kind]

    def gqa_qkv(self, pre, h, pos):
        B, T, _ = h.shape
        H, KV, D = self.H, self.KV, self.D
        bias = self.biases()[0]
        q = self.linear(h, pre + "self_attn.q_proj", bias).view(B, T, H, D)
        k = self.linear(h, pre + "self_attn.k_proj", bias).view(B, T, KV, D)
        v = self.linear(h, pre + "self_attn.v_proj", bias).view(B, T, KV, D)
        if self.kind == "qwen3":  # RMSNorm over each head's channels, before RoPE
            q = self.rmsnorm(q, self.p(pre + "self_attn.q_norm.weight"))
            k = self.rmsnorm(k, self.p(pre + "self_attn.k_norm.weight"))
        cos, sin = cos_sin(self.cfg, D, pos)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=2)
        v = v.repeat_interleave(H // KV, dim=2)
        return q, k, v, 1 / math.sqrt(D)

    def deepseek_rope(self, x, pos):
        """DeepSeek-V2's RoPE on x (B, T, n, dr): its channels come as interleaved pairs (x0, x1), (x2, x3), …;
        the code de-interleaves them (evens, then odds) and applies rotate-half RoPE. transformers' version
        rotates the pairs in place as complex numbers: the same scores, since q and k are permuted alike."""
        B, T, n, dr = x.shape
        x = x.view(B, T, n, dr // 2, 2).transpose(-1, -2).reshape(B, T, n, dr)
        cos, sin = cos_sin(self.cfg, dr, pos)
        return x * cos + rotate_half(x) * sin

    def latent_qkv(self, pre, h, pos):
        """DeepSeek-V2's multi-head latent attention."""
        c = self.cfg
        B, T, _ = h.shape
        H, dn, dr, dv, r = self.H, c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
        bias = bool(c.get("attention_bias"))
        if c.get("q_lora_rank"):
            qa = self.rmsnorm(self.linear(h, pre + "self_attn.q_a_proj", bias), self.p(pre + "self_attn.q_a_layernorm.weight"))
            q = self.linear(qa, pre + "self_attn.q_b_proj")
        else:
            q = self.linear(h, pre + "self_attn.q_proj")
        q = q.view(B, T, H, dn + dr)
        ckv = self.linear(h, pre + "self_attn.kv_a_proj_with_mqa", bias)
        latent = self.rmsnorm(ckv[..., :r], self.p(pre + "self_attn.kv_a_layernorm.weight"))
        k_pe = self.deepseek_rope(ckv[..., r:].view(B, T, 1, dr), pos)  # one RoPE key shared by every head
        q_pe = self.deepseek_rope(q[..., dn:], pos)
        kv = self.linear(latent, pre + "self_attn.kv_b_proj").view(B, T, H, dn + dv)
        q = torch.cat((q[..., :dn], q_pe), dim=-1)
        k = torch.cat((kv[..., :dn], k_pe.expand(B, T, H, dr)), dim=-1)
        v = kv[..., dn:]
        scale = (dn + dr) ** -0.5
        rs = c.get("rope_scaling")
        if rs and rope_type(c) != "default" and rs.get("mscale_all_dim"):
            # YaRN's temperature, applied to the whole score (DeepSeek's code; transformers PR #47435)
            m = yarn_mscale(rs["factor"], rs["mscale_all_dim"])
            scale = scale * m * m
        return q, k, v, scale

    def mlp(self, pre, h):
        """SwiGLU: down(silu(gate(h)) * up(h))."""
        mlp_bias = bool(self.cfg.get("mlp_bias"))
        g = self.linear(h, pre + "gate_proj", mlp_bias)
        u = self.linear(h, pre + "up_proj", mlp_bias)
        return self.linear(F.silu(g) * u, pre + "down_proj", mlp_bias)

    def moe(self, pre, h):
        """Qwen2MoeSparseMoeBlock / DeepseekV2MoE on h (B, T, C): router softmax in f32, top-k, each token's K
        experts weighted by its (renormalized or scaled) probabilities, plus the shared expert(s)."""
        c, shape = self.cfg, h.shape
        x = h.reshape(-1, shape[-1])
        logits = x.float() @ self.p(pre + "mlp.gate.weight").float().T  # (N, E)
        self.router_logits.append(logits)
        srt = logits.detach().sort(dim=-1, descending=True).values
        K = c["num_experts_per_tok"]
        if K < srt.shape[-1]:
            self.min_router_gap = min(self.min_router_gap, float((srt[:, K - 1] - srt[:, K]).min()))
        scores = logits.softmax(dim=-1, dtype=torch.float32)
        w, idx = torch.topk(scores, K, dim=-1)
        if self.kind == "qwen2_moe":
            if c.get("norm_topk_prob"):
                w = w / w.sum(dim=-1, keepdim=True)
        elif K > 1 and c.get("norm_topk_prob"):
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)  # MoEGate's denominator guard
        else:
            w = w * c.get("routed_scaling_factor", 1.0)
        y = torch.zeros_like(x)
        for e in range(scores.shape[-1]):  # each expert on the tokens that chose it, as the modeling code loops
            tok, slot = torch.where(idx == e)
            if len(tok):
                y = y.index_add(0, tok, self.mlp(pre + f"mlp.experts.{e}.", x[tok]) * w[tok, slot, None])
        if self.kind == "qwen2_moe":
            gate = torch.sigmoid(self.linear(x, pre + "mlp.shared_expert_gate"))  # (N, 1)
            y = y + gate * self.mlp(pre + "mlp.shared_expert.", x)
        elif c.get("n_shared_experts"):
            y = y + self.mlp(pre + "mlp.shared_experts.", x)
        return y.reshape(shape)

    def aux_loss(self):
        """The auxiliary loss of the last forward, coefficient included (None: no MoE layer or coefficient 0)."""
        c, L = self.cfg, self.router_logits
        if not L:
            return None
        if self.kind == "qwen2_moe":
            # load_balancing_loss_func without an attention mask: every layer's tokens as one set of rows;
            # tokens_per_expert (K, E) is a mean over the rows of the one-hot top-k, so its sum over K is
            # count_e / rows (no division by K)
            E, K = c["num_experts"], c["num_experts_per_tok"]
            probs = torch.cat(L, dim=0).softmax(dim=-1)
            _, sel = torch.topk(probs, K, dim=-1)
            tokens_per_expert = F.one_hot(sel, E).float().mean(dim=0)
            prob_per_expert = probs.mean(dim=0)
            return c["router_aux_loss_coef"] * (tokens_per_expert * prob_per_expert[None]).sum() * E
        # DeepSeek-V2's MoEGate, seq_aux false, one term per MoE layer: f_i = E · (slots of i) / (N · K)
        E, K, alpha = c["n_routed_experts"], c["num_experts_per_tok"], c.get("aux_loss_alpha", 0.001)
        if alpha <= 0:
            return None
        total = 0
        for logits in L:
            scores = logits.softmax(dim=-1, dtype=torch.float32)
            _, idx = torch.topk(scores, K, dim=-1)
            ce = F.one_hot(idx.reshape(-1), E).float().mean(0)
            total = total + (scores.mean(0) * ce * E).sum() * alpha
        return total

    def forward(self, ids, pos):
        B, T = ids.shape
        self.router_logits = []
        x = self.p("model.embed_tokens.weight")[ids]
        i = torch.arange(T)
        start = i[None, :] - pos  # (B, T): where each query's document starts
        causal_doc = (i[None, None, :] <= i[None, :, None]) & (i[None, None, :] >= start[:, :, None])  # (B, Tq, Tk)
        for l in range(self.L):
            pre = f"model.layers.{l}."
            h = self.rmsnorm(x, self.p(pre + "input_layernorm.weight"))
            q, k, v, scale = self.latent_qkv(pre, h, pos) if self.kind == "deepseek_v2" else self.gqa_qkv(pre, h, pos)
            allowed = causal_doc
            w = self.window(l)
            if w is not None:
                allowed = allowed & (i[None, :, None] - i[None, None, :] < w)
            s = torch.einsum("bihd,bjhd->bhij", q, k) * scale
            s = s.masked_fill(~allowed[:, None], float("-inf"))
            a = torch.einsum("bhij,bjhd->bihd", s.softmax(-1), v).reshape(B, T, -1)
            x = x + self.linear(a, pre + "self_attn.o_proj", self.biases()[1])
            h = self.rmsnorm(x, self.p(pre + "post_attention_layernorm.weight"))
            x = x + (self.moe(pre, h) if is_moe_layer(self.cfg, l) else self.mlp(pre + "mlp.", h))
        x = self.rmsnorm(x, self.p("model.norm.weight"))
        tied = self.cfg.get("tie_word_embeddings", False)
        head = self.p("model.embed_tokens.weight") if tied else self.p("lm_head.weight")
        return x @ head.T


def is_moe_layer(cfg, l):
    """Whether layer l's MLP is a mixture of experts, by each family's decoder-layer rule."""
    if cfg["model_type"] == "qwen2_moe":
        return (l not in cfg.get("mlp_only_layers", []) and cfg["num_experts"] > 0
                and (l + 1) % cfg.get("decoder_sparse_step", 1) == 0)
    if cfg["model_type"] == "deepseek_v2":
        return (cfg.get("n_routed_experts") is not None and l >= cfg.get("first_k_dense_replace", 0)
                and l % cfg.get("moe_layer_freq", 1) == 0)
    return False


def load(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = read_weights(model_dir)
    if cfg.get("tie_word_embeddings") and "lm_head.weight" in w:
        assert torch.equal(w["lm_head.weight"], w["model.embed_tokens.weight"]), "tied, yet lm_head differs"
        del w["lm_head.weight"]
    return Model(cfg, w)


# ---- the families' checkpoints ----

def llama_config(**over):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False, "attention_dropout": 0.0,
         "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "initializer_range": 0.02, "mlp_bias": False,
         "pretraining_tp": 1, "rms_norm_eps": 1e-5, "use_cache": True, "transformers_version": "4.46.1"}
    c.update(over)
    return c


def qwen_config(kind, **over):
    c = {"architectures": ["Qwen2ForCausalLM" if kind == "qwen2" else "Qwen3ForCausalLM"], "model_type": kind,
         "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "initializer_range": 0.02,
         "rms_norm_eps": 1e-6, "use_cache": True, "use_sliding_window": False}
    c.update(over)
    return c


FAMILIES = {
    # SmolLM2 / Llama 3.2 layout: tied embeddings, GQA, llama3 rope_scaling; with head_dim 8 and theta 1e4 the
    # wavelengths 6.3, 63 and 628 fall in the kept, blended and interpolated bands of original 128 / (4, 1)
    "llama3": lambda: (llama_config(
        vocab_size=72, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=1024, rope_theta=10000.0, tie_word_embeddings=True,
        rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 128, "rope_type": "llama3"},
        torch_dtype="bfloat16"), 1),
    # an older Llama checkpoint: linear scaling under the old key name "type", f16, untied
    "llama-linear": lambda: (llama_config(
        vocab_size=64, hidden_size=32, intermediate_size=56, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, max_position_embeddings=128, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling={"type": "linear", "factor": 2.0}, torch_dtype="float16", transformers_version="4.31.0"), 1),
    # Qwen2.5-0.5B's config keys (written by transformers 4.43): q/k/v biases, tied, sliding window off
    "qwen2": lambda: (qwen_config(
        "qwen2", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, max_window_layers=2, rope_theta=1000000.0,
        sliding_window=256, tie_word_embeddings=True, torch_dtype="float32", transformers_version="4.43.1"), 2),
    # Qwen3: q_norm/k_norm, head_dim 12 != 32 / 4, yarn (factor 4 over 64 positions: ramp 0, 0.5, 1, …),
    # saved by a recent transformers (layer_types)
    "qwen3": lambda: (qwen_config(
        "qwen3", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=12, attention_bias=False, max_position_embeddings=256, max_window_layers=2,
        layer_types=["full_attention", "full_attention"], rope_theta=1000000.0, sliding_window=None,
        rope_scaling={"factor": 4.0, "original_max_position_embeddings": 64, "rope_type": "yarn"},
        tie_word_embeddings=True, torch_dtype="bfloat16", transformers_version="4.56.1"), 1),
    # Mistral: a 5-token sliding window (rows of 14), head_dim 12 given (Mistral-Nemo style), untied, f32
    "mistral": lambda: ({
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "attention_dropout": 0.0, "bos_token_id": 1,
        "eos_token_id": 2, "head_dim": 12, "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
        "intermediate_size": 48, "max_position_embeddings": 256, "num_attention_heads": 4, "num_hidden_layers": 2,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 5,
        "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.46.1", "use_cache": True,
        "vocab_size": 64}, 1),
    # DeepSeek-V2-Lite's config keys (DeepSeek's own config class): no query latent, dense layers, yarn under
    # "type" with mscale != mscale_all_dim so both corrections (cos/sin and softmax scale) matter
    "deepseek-v2": lambda: ({
        "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "attention_bias": False,
        "attention_dropout": 0.0, "aux_loss_alpha": 0.001, "bos_token_id": 1, "eos_token_id": 2,
        "first_k_dense_replace": 2, "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
        "intermediate_size": 48, "kv_lora_rank": 12, "max_position_embeddings": 256, "moe_intermediate_size": 16,
        "moe_layer_freq": 1, "n_group": 1, "n_routed_experts": None, "n_shared_experts": None, "norm_topk_prob": False,
        "num_attention_heads": 4, "num_experts_per_tok": None, "num_hidden_layers": 2, "num_key_value_heads": 4,
        "pretraining_tp": 1, "q_lora_rank": None, "qk_nope_head_dim": 6, "qk_rope_head_dim": 8, "rms_norm_eps": 1e-6,
        "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 4, "mscale": 0.9, "mscale_all_dim": 0.6,
                         "original_max_position_embeddings": 64, "type": "yarn"},
        "rope_theta": 10000, "routed_scaling_factor": 1.0, "scoring_func": "softmax", "seq_aux": True,
        "tie_word_embeddings": False, "topk_group": 1, "topk_method": "greedy", "torch_dtype": "bfloat16",
        "transformers_version": "4.39.3", "use_cache": True, "v_head_dim": 5, "vocab_size": 64}, 1),
    # transformers' own DeepseekV2Config (4.5x): a query latent, head_dim = qk_rope_head_dim, no rope_scaling
    "deepseek-v2-qlora": lambda: ({
        "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "attention_bias": False,
        "attention_dropout": 0.0, "aux_loss_alpha": 0.001, "bos_token_id": 1, "eos_token_id": 2,
        "first_k_dense_replace": 2, "head_dim": 6, "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
        "intermediate_size": 48, "kv_lora_rank": 8, "max_position_embeddings": 128, "mlp_bias": False,
        "moe_intermediate_size": 16, "n_group": None, "n_routed_experts": None, "n_shared_experts": None,
        "norm_topk_prob": False, "num_attention_heads": 2, "num_experts_per_tok": None, "num_hidden_layers": 2,
        "num_key_value_heads": 2, "q_lora_rank": 10, "qk_nope_head_dim": 8, "qk_rope_head_dim": 6,
        "rms_norm_eps": 1e-6, "rope_scaling": None, "rope_theta": 10000.0, "routed_scaling_factor": 1.0,
        "seq_aux": True, "tie_word_embeddings": True, "topk_group": None, "topk_method": "greedy",
        "torch_dtype": "float32", "transformers_version": "4.57.1", "use_cache": True, "v_head_dim": 7,
        "vocab_size": 64}, 1),
    # Qwen1.5-MoE-A2.7B's config keys: 4 experts, top-2 without renormalization, a shared expert behind its
    # sigmoid gate; layer 1 dense (mlp_only_layers), so the load-balancing loss pools layers 0 and 2
    "qwen2-moe": lambda: (qwen_config(
        "qwen2_moe", architectures=["Qwen2MoeForCausalLM"], vocab_size=64, hidden_size=32, intermediate_size=48,
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        max_window_layers=3, rope_theta=1000000.0, sliding_window=256, tie_word_embeddings=False,
        decoder_sparse_step=1, mlp_only_layers=[1], moe_intermediate_size=16, shared_expert_intermediate_size=24,
        num_experts=4, num_experts_per_tok=2, norm_topk_prob=False, output_router_logits=True,
        router_aux_loss_coef=0.01, torch_dtype="bfloat16", transformers_version="4.40.0"), 1),
    # DeepSeek-V2-Lite's layout with experts: layer 0 dense (first_k_dense_replace), layers 1 and 2 with 4 routed
    # experts (top-2, scaled by routed_scaling_factor 1.5, not renormalized) and one shared expert
    "deepseek-v2-moe": lambda: ({
        "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "attention_bias": False,
        "attention_dropout": 0.0, "aux_loss_alpha": 0.001, "bos_token_id": 1, "eos_token_id": 2,
        "first_k_dense_replace": 1, "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
        "intermediate_size": 48, "kv_lora_rank": 12, "max_position_embeddings": 256, "moe_intermediate_size": 16,
        "moe_layer_freq": 1, "n_group": 1, "n_routed_experts": 4, "n_shared_experts": 1, "norm_topk_prob": False,
        "num_attention_heads": 4, "num_experts_per_tok": 2, "num_hidden_layers": 3, "num_key_value_heads": 4,
        "pretraining_tp": 1, "q_lora_rank": None, "qk_nope_head_dim": 6, "qk_rope_head_dim": 8, "rms_norm_eps": 1e-6,
        "rope_scaling": None, "rope_theta": 10000, "routed_scaling_factor": 1.5, "scoring_func": "softmax",
        "seq_aux": False, "tie_word_embeddings": False, "topk_group": 1, "topk_method": "greedy",
        "torch_dtype": "float32", "transformers_version": "4.39.3", "use_cache": True, "v_head_dim": 5,
        "vocab_size": 64}, 1),
}

# the smallest gap between a token's K-th and K+1-th router logit the fixtures accept: bunlm's logits differ
# from these by ~1e-6, so a gap this wide cannot reorder the experts at the top-k boundary
MIN_ROUTER_GAP = 1e-3


def moe_shapes(cfg, pre):
    """An MoE layer's weights in the order the family's module registers them."""
    C = cfg["hidden_size"]
    I = cfg["moe_intermediate_size"]
    expert = lambda p, n: [(p + "gate_proj.weight", [n, C]), (p + "up_proj.weight", [n, C]), (p + "down_proj.weight", [C, n])]
    if cfg["model_type"] == "qwen2_moe":  # gate, experts, shared_expert, shared_expert_gate
        out = [(pre + "mlp.gate.weight", [cfg["num_experts"], C])]
        for e in range(cfg["num_experts"]):
            out += expert(pre + f"mlp.experts.{e}.", I)
        return out + expert(pre + "mlp.shared_expert.", cfg["shared_expert_intermediate_size"]) + \
            [(pre + "mlp.shared_expert_gate.weight", [1, C])]
    out = []  # DeepseekV2MoE: experts, gate, shared_experts
    for e in range(cfg["n_routed_experts"]):
        out += expert(pre + f"mlp.experts.{e}.", I)
    out.append((pre + "mlp.gate.weight", [cfg["n_routed_experts"], C]))
    if cfg.get("n_shared_experts"):
        out += expert(pre + "mlp.shared_experts.", I * cfg["n_shared_experts"])
    return out


def param_shapes(cfg):
    """(HF name, shape) of every weight, in the order transformers' state dict lists them."""
    C, I, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or C // H
    kind = cfg["model_type"]
    out = [("model.embed_tokens.weight", [V, C])]
    for l in range(L):
        pre = f"model.layers.{l}."
        if kind == "deepseek_v2":
            dn, dr, dv, r, qr = (cfg[k] for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "kv_lora_rank", "q_lora_rank"))
            if qr:
                out += [(pre + "self_attn.q_a_proj.weight", [qr, C]), (pre + "self_attn.q_a_layernorm.weight", [qr]),
                        (pre + "self_attn.q_b_proj.weight", [H * (dn + dr), qr])]
            else:
                out += [(pre + "self_attn.q_proj.weight", [H * (dn + dr), C])]
            out += [(pre + "self_attn.kv_a_proj_with_mqa.weight", [r + dr, C]), (pre + "self_attn.kv_a_layernorm.weight", [r]),
                    (pre + "self_attn.kv_b_proj.weight", [H * (dn + dv), r]), (pre + "self_attn.o_proj.weight", [C, H * dv])]
        else:
            flag = bool(cfg.get("attention_bias"))
            bias, o_bias = {"qwen2": (True, False), "qwen2_moe": (cfg.get("qkv_bias", True), False),
                            "mistral": (False, False)}.get(kind, (flag, flag))
            for n, rows in (("q", H * D), ("k", KV * D), ("v", KV * D)):
                out.append((pre + f"self_attn.{n}_proj.weight", [rows, C]))
                if bias:
                    out.append((pre + f"self_attn.{n}_proj.bias", [rows]))
            out.append((pre + "self_attn.o_proj.weight", [C, H * D]))
            if o_bias:
                out.append((pre + "self_attn.o_proj.bias", [C]))
            if kind == "qwen3":
                out += [(pre + "self_attn.q_norm.weight", [D]), (pre + "self_attn.k_norm.weight", [D])]
        if is_moe_layer(cfg, l):
            out += moe_shapes(cfg, pre)
        else:
            out += [(pre + "mlp.gate_proj.weight", [I, C]), (pre + "mlp.up_proj.weight", [I, C]), (pre + "mlp.down_proj.weight", [C, I])]
        out += [(pre + "input_layernorm.weight", [C]), (pre + "post_attention_layernorm.weight", [C])]
    out.append(("model.norm.weight", [C]))
    if not cfg.get("tie_word_embeddings"):
        out.append(("lm_head.weight", [V, C]))
    return out


def make(family, out_dir, seed):
    cfg, shards = FAMILIES[family]()
    torch.manual_seed(int(seed))
    w = {}
    # large enough that every term moves the logits and gradients well above f32 noise: matrices N(0, 0.2),
    # the embedding N(0, 0.25), norm weights 1 + N(0, 0.15), biases N(0, 0.2)
    for name, shape in param_shapes(cfg):
        if name.endswith("norm.weight"):
            t = 1 + 0.15 * torch.randn(shape)
        elif name.endswith(".bias"):
            t = 0.2 * torch.randn(shape)
        elif "embed_tokens" in name:
            t = 0.25 * torch.randn(shape)
        else:
            t = 0.2 * torch.randn(shape)
        w[name] = t.to(TORCH_DTYPE[cfg["torch_dtype"]])
    save_pretrained(out_dir, cfg, w, shards)


# ---- what the fixtures hold ----

def run_batch(m, b):
    ids = torch.tensor(b["input_ids"], dtype=torch.int64)
    pos = torch.tensor(b["position_ids"], dtype=torch.int64)
    return m(ids, pos)


def grads(model_dir, batch_path, out_path):
    m = load(model_dir)
    b = json.load(open(batch_path))
    logits = run_batch(m, b)
    V = logits.shape[-1]
    tgt = torch.tensor(b["targets"], dtype=torch.int64)
    loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=-100)
    out = {"logits": logits.detach().reshape(-1, V), "loss": loss.detach().reshape(1)}
    aux = m.aux_loss()
    if aux is not None:
        check_router_gap(m, model_dir)
        routers = [k for k in m.w if k.endswith("mlp__gate__weight")]
        for k, g in zip(routers, torch.autograd.grad(aux, [m.w[k] for k in routers], retain_graph=True)):
            out["aux_grad." + k.replace("__", ".")] = g
        out["aux_loss"] = aux.detach().reshape(1)
        loss = loss + aux  # what training minimizes: the gradients below are of it
        out["loss_with_aux"] = loss.detach().reshape(1)
    loss.backward()
    for k, p in m.w.items():
        out["grad." + k.replace("__", ".")] = p.grad
    write_safetensors(out_path, out)


def check_router_gap(m, where):
    if m.min_router_gap < MIN_ROUTER_GAP:
        raise SystemExit(f"{where}: two router logits {m.min_router_gap:.2e} apart at the top-k boundary; pick another seed")
    print(f"{where}: smallest top-k router gap {m.min_router_gap:.4f}", file=sys.stderr)


@torch.no_grad()
def greedy(model_dir, prompt, n, out_path):
    m = load(model_dir)
    start = [int(x) for x in prompt.split(",")]
    ids, margins = list(start), []
    for _ in range(int(n)):
        logits = m(torch.tensor([ids]), torch.arange(len(ids))[None])[0, -1]
        top = logits.topk(2).values
        margins.append(float(top[0] - top[1]))
        ids.append(int(logits.argmax()))
    if m.router_logits:
        check_router_gap(m, model_dir)
    # the smallest gap between the best and second-best logit: a tie-break that rounding could flip shows here
    json.dump({"prompt": start, "ids": ids[len(start):], "min_margin": min(margins)}, open(out_path, "w"))
    print(f"greedy {model_dir}: smallest top-2 logit gap {min(margins):.4f}", file=sys.stderr)


@torch.no_grad()
def compare(dir_a, dir_b):
    a, b = load(dir_a), load(dir_b)
    shapes_a = {k.replace("__", "."): tuple(v.shape) for k, v in a.w.items()}
    shapes_b = {k.replace("__", "."): tuple(v.shape) for k, v in b.w.items()}
    if shapes_a != shapes_b:
        print(json.dumps({"same_weights": False, "only_a": sorted(set(shapes_a) - set(shapes_b)),
                          "only_b": sorted(set(shapes_b) - set(shapes_a))}))
        sys.exit(1)
    g = torch.Generator().manual_seed(0)
    V = min(a.cfg["vocab_size"], b.cfg["vocab_size"])
    batch = {"input_ids": torch.randint(0, V, (2, 12), generator=g).tolist(),
             "position_ids": [list(range(12)), list(range(7)) + list(range(5))]}
    la, lb = run_batch(a, batch), run_batch(b, batch)
    rel = float((la - lb).abs().max() / la.abs().max())
    differing = [k.replace("__", ".") for k in a.w if not torch.equal(a.w[k], b.w[k])]
    keys = sorted(set(a.cfg) | set(b.cfg))
    config_differing = [k for k in keys if a.cfg.get(k, "<absent>") != b.cfg.get(k, "<absent>")]
    print(json.dumps({"max_rel_diff": rel, "weights_differing": differing, "config_differing": config_differing}))
    sys.exit(0 if rel <= 1e-6 else 1)


if __name__ == "__main__":
    cmds = {"make": make, "grads": grads, "greedy": greedy, "compare": compare}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        raise SystemExit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
