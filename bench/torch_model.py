"""PyTorch figure for bench/model.ts: forward+backward tokens/s of the same Llama (test/reference/
llama_ref.py's model, loaded from the checkpoint bench/model.ts wrote), same batch shape, in f32 — on
the GPU with TF32 off when CUDA is there, else on the CPU with 2 threads."""
import json, os, sys
import torch
import torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "reference"))
from llama_ref import load  # noqa: E402
from torch_device import pick, seconds_per_step  # noqa: E402

ckpt, B, T, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dev, cuda, name = pick()
m = load(ckpt).to(dev)
V = m.cfg["vocab_size"]
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, V, (B, T), generator=g).to(dev)
tgt = torch.randint(0, V, (B, T), generator=g).to(dev)
pos = torch.arange(T, device=dev)[None].expand(B, T)


def step():
    loss = F.cross_entropy(m(ids, pos).reshape(-1, V), tgt.reshape(-1))
    loss.backward()
    for p in m.parameters():
        p.grad = None
    return loss


dt = seconds_per_step(step, steps, cuda)
print(json.dumps({"torch_tokens_per_s": B * T / dt, "torch_device": name}))
