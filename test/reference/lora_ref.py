"""PyTorch reference for bunlm's LoRA (Hu et al. 2021) as PEFT's LoraLayer computes it
(huggingface/peft, src/peft/tuners/lora/layer.py, Linear.forward):
    result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling,   scaling = lora_alpha / r
with dropout 0, on every target projection of a Llama from llama_ref.py. The base weights are frozen;
A and B are the only leaves that take gradients. A second pass with the base weights unfrozen gives the
full gradient dL/dW of the same adapted model, which the test checks the projection identity against
(dL/dA = s·Bᵀ·dL/dW, dL/dB = s·dL/dW·Aᵀ).

  python3 lora_ref.py MODEL_DIR BATCH.json OUT_DIR RANK ALPHA SEED
      writes OUT_DIR/adapter_model.safetensors + adapter_config.json (PEFT's names; A and B both
      non-zero, so every gradient is non-zero) and OUT_DIR/expected.safetensors: the loss, the
      adapters' gradients (grad.<PEFT name>) and the full gradients of the adapted weights (grad.<HF name>)

Regenerate with (from test/reference): /usr/bin/python3 lora_ref.py fixtures/tiny-untied \
  fixtures/tiny-untied/batch.json fixtures/lora-tiny 4 8 0
"""
import json, math, sys
import torch
import torch.nn.functional as F
from llama_ref import Llama, load_safetensors, save_safetensors

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MODULE = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
          "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


class LoraLlama(Llama):
    """llama_ref's Llama, whose target projections h @ W.T become PEFT's base(x) + B(A(x))·s."""

    def __init__(self, cfg, weights, adapters, scaling):
        super().__init__(cfg, weights)
        self.adapters = adapters  # HF weight name -> (A (r, in), B (out, r))
        self.scaling = scaling

    def p(self, name):
        w = super().p(name)
        if name not in self.adapters:
            return w
        return _Adapted(w, *self.adapters[name], self.scaling)


class _Adapted:
    """Stands in for a weight W in `h @ W.T`: (h @ W.T) + ((h @ A.T) @ B.T) * s, PEFT's order of operations."""

    def __init__(self, w, a, b, s):
        self.w, self.a, self.b, self.s = w, a, b, s

    @property
    def T(self):
        return self

    def __rmatmul__(self, h):
        return h @ self.w.T + ((h @ self.a.T) @ self.b.T) * self.s


def main(model_dir, batch_path, out_dir, rank, alpha, seed):
    cfg = json.load(open(f"{model_dir}/config.json"))
    weights = load_safetensors(f"{model_dir}/model.safetensors")
    g = torch.Generator().manual_seed(seed)
    adapters, peft = {}, {}
    for l in range(cfg["num_hidden_layers"]):
        for t in TARGETS:
            name = f"model.layers.{l}.{MODULE[t]}.{t}.weight"
            out_f, in_f = weights[name].shape
            # PEFT: kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in)); B is zeros there, here
            # random too so that A's gradient is not zero
            bound = 1 / math.sqrt(in_f)
            a = ((torch.rand(rank, in_f, generator=g) * 2 - 1) * bound).requires_grad_()
            b = (torch.randn(out_f, rank, generator=g) * 0.05).requires_grad_()
            adapters[name] = (a, b)
            stem = "base_model.model." + name[: -len(".weight")]
            peft[stem + ".lora_A.weight"], peft[stem + ".lora_B.weight"] = a, b
    m = LoraLlama(cfg, weights, adapters, alpha / rank)
    bt = json.load(open(batch_path))
    ids = torch.tensor(bt["input_ids"], dtype=torch.int64)
    tgt = torch.tensor(bt["targets"], dtype=torch.int64)
    pos = torch.tensor(bt["position_ids"], dtype=torch.int64)

    def loss_of():
        logits = m(ids, pos)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)

    for w in m.w.values():
        w.requires_grad_(False)
    loss = loss_of()
    loss.backward()
    out = {"loss": loss.detach().reshape(1)}
    for k, t in peft.items():
        out["grad." + k] = t.grad.clone()
    # the same model with the adapted weights unfrozen: dL/dW of the adapted layer
    for name in adapters:
        m.w[name.replace(".", "__")].requires_grad_(True)
    loss_of().backward()
    for name in adapters:
        out["grad." + name] = m.w[name.replace(".", "__")].grad.clone()
    save_safetensors(f"{out_dir}/expected.safetensors", out)
    save_safetensors(f"{out_dir}/adapter_model.safetensors", {k: v.detach() for k, v in peft.items()})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "../tiny-untied",
              "r": rank, "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": TARGETS, "bias": "none",
              "fan_in_fan_out": False, "use_rslora": False, "use_dora": False}
    json.dump(config, open(f"{out_dir}/adapter_config.json", "w"), indent=2)
    print(json.dumps({"loss": loss.item()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
