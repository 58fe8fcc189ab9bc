"""PyTorch figure for bench/train.ts: training tokens/s of the same Llama (test/reference/llama_ref.py)
with torch.optim.AdamW (betas 0.9/0.95, weight decay 0.1), gradient clipping at 1.0, same batch shape,
in f32 — on the GPU with TF32 off when CUDA is there, else on the CPU with 2 threads. The fifth
argument lists modes, comma-separated (default f32): f32, tf32 (TF32 tensor cores for f32 matmuls)
and bf16 (bf16 autocast), the last two CUDA figures; one model and optimizer serve them all, one
JSON line per mode, with the peak bytes PyTorch's allocator reserved during that mode's steps on
CUDA. Weights are random (same shapes); speed does not depend on their values."""
import contextlib, json, os, sys
import torch
import torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "reference"))
from llama_ref import Llama  # noqa: E402
from torch_device import pick, seconds_per_step, set_tf32  # noqa: E402

cfg = json.loads(sys.argv[1])
B, T, steps = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
modes = (sys.argv[5] if len(sys.argv) > 5 else "f32").split(",")
dev, cuda, name = pick()
for mode in modes:
    if mode not in ("f32", "tf32", "bf16"):
        sys.exit(f"torch_train.py: mode {mode!r}: expected f32, tf32 or bf16")
    if mode != "f32" and not cuda:
        sys.exit(f"torch_train.py: mode {mode} is a CUDA figure and PyTorch has no CUDA device here")
C, H = cfg["hidden_size"], cfg["num_attention_heads"]
KV, I, V, Lyr = cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
D = C // H
w = {"model.embed_tokens.weight": torch.randn(V, C) * 0.02, "model.norm.weight": torch.ones(C)}
for l in range(Lyr):
    p = f"model.layers.{l}."
    w.update({p + "input_layernorm.weight": torch.ones(C), p + "post_attention_layernorm.weight": torch.ones(C),
              p + "self_attn.q_proj.weight": torch.randn(H * D, C) * 0.02, p + "self_attn.k_proj.weight": torch.randn(KV * D, C) * 0.02,
              p + "self_attn.v_proj.weight": torch.randn(KV * D, C) * 0.02, p + "self_attn.o_proj.weight": torch.randn(C, H * D) * 0.02,
              p + "mlp.gate_proj.weight": torch.randn(I, C) * 0.02, p + "mlp.up_proj.weight": torch.randn(I, C) * 0.02,
              p + "mlp.down_proj.weight": torch.randn(C, I) * 0.02})
if not cfg.get("tie_word_embeddings"):
    w["lm_head.weight"] = torch.randn(V, C) * 0.02
m = Llama(cfg, w).to(dev)
opt = torch.optim.AdamW(m.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
ids = torch.randint(0, V, (B, T), device=dev)
tgt = torch.randint(0, V, (B, T), device=dev)
pos = torch.arange(T, device=dev)[None].expand(B, T)


def step(mode):
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()
    with ctx:
        logits = m(ids, pos)
    loss = F.cross_entropy(logits.float().reshape(-1, V), tgt.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


for mode in modes:
    if cuda:
        set_tf32(mode == "tf32")
        torch.cuda.reset_peak_memory_stats()
    dt = seconds_per_step(lambda: step(mode), steps, cuda)
    peak = torch.cuda.max_memory_reserved() if cuda else None
    print(json.dumps({"torch_tokens_per_s": B * T / dt, "mode": mode, "torch_device": name, "torch_peak_bytes": peak}),
          flush=True)
