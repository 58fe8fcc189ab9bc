"""PyTorch reference for bunlm's transformer: a Llama (Hugging Face LlamaForCausalLM semantics: RMSNorm
in f32, rotate-half RoPE, grouped-query attention, SwiGLU, tied or untied head) built from a checkpoint
directory (config.json + model.safetensors), written from the papers and HF's modeling code's
documented behaviour, with no dependency beyond torch (Debian's python3-torch).

  python3 llama_ref.py grads MODEL_DIR BATCH.json OUT.safetensors
      logits, loss and every parameter's gradient for one batch
  python3 llama_ref.py greedy MODEL_DIR PROMPT_IDS N OUT.json
      N greedy tokens after the prompt, recomputing the full sequence each step
  python3 llama_ref.py make-hf OUT_DIR SEED
      a small Llama checkpoint saved the way transformers saves one (bf16 weights, HF config fields)

Regenerate every fixture with: bun test/reference/make_fixtures.ts
"""
import json, math, struct, sys
import torch
import torch.nn.functional as F

DT = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2), "I32": (torch.int32, 4), "I64": (torch.int64, 8)}


def load_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        dtype, _ = DT[t["dtype"]]
        raw = bytearray(buf[8 + n + a:8 + n + b])
        out[name] = torch.frombuffer(raw, dtype=dtype).reshape(t["shape"]).clone() if b > a else torch.zeros(t["shape"], dtype=dtype)
    return out


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int32: "I32"}
    for name, t in tensors.items():
        t = t.contiguous()
        data = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Llama(torch.nn.Module):
    def __init__(self, cfg, weights):
        super().__init__()
        self.cfg = cfg
        self.H = cfg["num_attention_heads"]
        self.KV = cfg.get("num_key_value_heads") or self.H
        self.D = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        if cfg.get("attn_type") == "mla":
            self.KV = self.H
        self.w = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v.float()) for k, v in weights.items()})

    def p(self, name):
        return self.w[name.replace(".", "__")]

    def rmsnorm(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.cfg["rms_norm_eps"]))

    def rope(self, x, pos):  # x (B, T, nh, D), pos (B, T)
        D = self.D
        inv_freq = 1.0 / (self.cfg["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
        freqs = pos[..., None].float() * inv_freq  # (B, T, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[:, :, None, :], emb.sin()[:, :, None, :]
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        rot = torch.cat((-x2, x1), dim=-1)
        return x * cos + rot * sin

    def rope_part(self, x, pos, dims):  # rotate-half RoPE on the last `dims` channels of x (B, T, nh, d)
        keep, rot = x[..., : x.shape[-1] - dims], x[..., x.shape[-1] - dims:]
        saved = self.D
        self.D = dims
        rot = self.rope(rot, pos)
        self.D = saved
        return torch.cat((keep, rot), dim=-1)

    def latent_qkv(self, pre, h, pos):
        """DeepSeek-V2's multi-head latent attention, with RoPE in the rotate-half layout."""
        c = self.cfg
        B, T, _ = h.shape
        H, dn, dr, dv, r = self.H, c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
        if c.get("q_lora_rank"):
            qa = self.rmsnorm(h @ self.p(pre + "self_attn.q_a_proj.weight").T, self.p(pre + "self_attn.q_a_layernorm.weight"))
            q = qa @ self.p(pre + "self_attn.q_b_proj.weight").T
        else:
            q = h @ self.p(pre + "self_attn.q_proj.weight").T
        q = self.rope_part(q.view(B, T, H, dn + dr), pos, dr)
        ckv = (h @ self.p(pre + "self_attn.kv_a_proj_with_mqa.weight").T).view(B, T, 1, r + dr)
        ckv = self.rope_part(ckv, pos, dr)
        latent = self.rmsnorm(ckv[..., :r].reshape(B, T, r), self.p(pre + "self_attn.kv_a_layernorm.weight"))
        k_rope = ckv[..., r:]  # (B, T, 1, dr), shared by every head
        kv = (latent @ self.p(pre + "self_attn.kv_b_proj.weight").T).view(B, T, H, dn + dv)
        k = torch.cat((kv[..., :dn], k_rope.expand(B, T, H, dr)), dim=-1)
        v = kv[..., dn:]
        return q, k, v, 1 / math.sqrt(dn + dr)

    def forward(self, ids, pos):
        B, T = ids.shape
        H, KV, D = self.H, self.KV, self.D
        x = self.p("model.embed_tokens.weight")[ids]
        i = torch.arange(T)
        # key j visible to query i iff i - pos_i <= j <= i (positions restart at document starts)
        lo = i[None, :] - pos  # (B, T)
        allowed = (i[None, None, :] <= i[None, :, None]) & (i[None, None, :] >= lo[:, :, None])  # (B, Tq, Tk)
        for l in range(self.cfg["num_hidden_layers"]):
            pre = f"model.layers.{l}."
            h = self.rmsnorm(x, self.p(pre + "input_layernorm.weight"))
            if self.cfg.get("attn_type") == "mla":
                q, k, v, scale = self.latent_qkv(pre, h, pos)
            else:
                q = (h @ self.p(pre + "self_attn.q_proj.weight").T).view(B, T, H, D)
                k = (h @ self.p(pre + "self_attn.k_proj.weight").T).view(B, T, KV, D)
                v = (h @ self.p(pre + "self_attn.v_proj.weight").T).view(B, T, KV, D)
                q, k = self.rope(q, pos), self.rope(k, pos)
                k = k.repeat_interleave(H // KV, dim=2)
                v = v.repeat_interleave(H // KV, dim=2)
                scale = 1 / math.sqrt(D)
            s = torch.einsum("bihd,bjhd->bhij", q, k) * scale
            s = s.masked_fill(~allowed[:, None], float("-inf"))
            a = torch.einsum("bhij,bjhd->bihd", s.softmax(-1), v).reshape(B, T, -1)
            x = x + a @ self.p(pre + "self_attn.o_proj.weight").T
            h = self.rmsnorm(x, self.p(pre + "post_attention_layernorm.weight"))
            g = h @ self.p(pre + "mlp.gate_proj.weight").T
            u = h @ self.p(pre + "mlp.up_proj.weight").T
            x = x + (F.silu(g) * u) @ self.p(pre + "mlp.down_proj.weight").T
        x = self.rmsnorm(x, self.p("model.norm.weight"))
        head = self.p("model.embed_tokens.weight") if self.cfg.get("tie_word_embeddings") else self.p("lm_head.weight")
        return x @ head.T


def load(model_dir):
    cfg = json.load(open(f"{model_dir}/config.json"))
    return Llama(cfg, load_safetensors(f"{model_dir}/model.safetensors"))


def grads(model_dir, batch_path, out_path):
    m = load(model_dir)
    b = json.load(open(batch_path))
    ids = torch.tensor(b["input_ids"], dtype=torch.int64)
    tgt = torch.tensor(b["targets"], dtype=torch.int64)
    pos = torch.tensor(b["position_ids"], dtype=torch.int64)
    logits = m(ids, pos)
    V = logits.shape[-1]
    loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=-100, label_smoothing=b.get("label_smoothing", 0.0))
    loss.backward()
    out = {"logits": logits.detach().reshape(-1, V), "loss": loss.detach().reshape(1)}
    for k, p in m.w.items():
        out["grad." + k.replace("__", ".")] = p.grad
    save_safetensors(out_path, out)


@torch.no_grad()
def greedy(model_dir, prompt, n, out_path):
    m = load(model_dir)
    ids = [int(x) for x in prompt.split(",")]
    for _ in range(int(n)):
        t = torch.tensor([ids])
        logits = m(t, torch.arange(len(ids))[None])
        ids.append(int(logits[0, -1].argmax()))
    json.dump({"prompt": [int(x) for x in prompt.split(",")], "ids": ids[len(prompt.split(",")):]}, open(out_path, "w"))


def make_hf(out_dir, seed):
    import os
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(int(seed))
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 97, "hidden_size": 48,
           "intermediate_size": 112, "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2,
           "max_position_embeddings": 256, "rope_theta": 500000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
           "hidden_act": "silu", "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False, "rope_scaling": None,
           "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None, "torch_dtype": "bfloat16",
           "transformers_version": "4.46.0", "use_cache": True, "pretraining_tp": 1}
    C, I, V, H, KV = 48, 112, 97, 6, 2
    D = C // H
    w = {"model.embed_tokens.weight": torch.randn(V, C) * 0.5, "model.norm.weight": 1 + 0.1 * torch.randn(C), "lm_head.weight": torch.randn(V, C) * 0.2}
    for l in range(2):
        pre = f"model.layers.{l}."
        w[pre + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(C)
        w[pre + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(C)
        w[pre + "self_attn.q_proj.weight"] = torch.randn(H * D, C) * 0.2
        w[pre + "self_attn.k_proj.weight"] = torch.randn(KV * D, C) * 0.2
        w[pre + "self_attn.v_proj.weight"] = torch.randn(KV * D, C) * 0.2
        w[pre + "self_attn.o_proj.weight"] = torch.randn(C, H * D) * 0.2
        w[pre + "mlp.gate_proj.weight"] = torch.randn(I, C) * 0.2
        w[pre + "mlp.up_proj.weight"] = torch.randn(I, C) * 0.2
        w[pre + "mlp.down_proj.weight"] = torch.randn(C, I) * 0.2
    save_safetensors(f"{out_dir}/model.safetensors", {k: v.to(torch.bfloat16) for k, v in w.items()})
    json.dump(cfg, open(f"{out_dir}/config.json", "w"), indent=2)


if __name__ == "__main__":
    cmd = sys.argv[1]
    {"grads": grads, "greedy": greedy, "make-hf": make_hf}[cmd](*sys.argv[2:])
