"""PyTorch reference for bunlm's --optimizer muon: three steps of Muon (KellerJordan/Muon muon.py's
zeropower_via_newtonschulz5 and muon_update, SingleDeviceMuonWithAuxAdam's step, written here from
that code) on the hidden matrices and torch.optim.AdamW on the rest, after global-norm clipping
(torch.nn.utils.clip_grad_norm_), on a fixed small set of parameters and three fixed gradients.

The reference orthogonalizes in bf16 on the GPU; bunlm does it in f32, so this runs it in f32
(DTYPE below) and the fixture holds the f32 answer: a bf16 one would differ from either by ~1e-2.

  python3 test/reference/muon_ref.py test/reference/fixtures/muon/expected.safetensors

writes init.NAME, grad{s}.NAME (s = 0, 1, 2: the raw gradient of step s + 1), step{s}.NAME (the
parameter after step s + 1) and muon_m.NAME (the momentum after the last step).
"""
import os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_ref import save_safetensors  # noqa: E402

DTYPE = torch.float32

# the settings test/optim/muon.test.ts gives bunlm's optimizer
MAX_LR = 1e-3
LRS = [1e-3, 5e-4, 2e-4]  # AdamW's lr per step (the schedule's)
MUON_LR = 0.02  # at MAX_LR; scaled with the schedule
MUON_MOMENTUM = 0.95
MUON_NS_STEPS = 5
MUON_WD = 0.1
ADAM_BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
ADAM_WD = 0.1
GRAD_CLIP = 1.0

# name, shape, Muon? (2-D matrices inside the layers); the rest is AdamW's, decayed when 2-D and not the embedding
PARAMS = [
    ("model.embed_tokens.weight", (16, 8)),
    ("model.layers.0.input_layernorm.weight", (8,)),
    ("model.layers.0.self_attn.q_proj.weight", (8, 8)),
    ("model.layers.0.self_attn.q_proj.bias", (8,)),
    ("model.layers.0.mlp.up_proj.weight", (24, 8)),  # tall: iterated transposed, update scaled by sqrt(3)
    ("model.layers.0.mlp.down_proj.weight", (8, 24)),  # wide
    ("lm_head.weight", (16, 8)),
]


def uses_muon(name, shape):
    return len(shape) == 2 and ".layers." in name


# ---- KellerJordan/Muon, in DTYPE instead of bf16 ----
def zeropower_via_newtonschulz5(G, steps):
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.to(DTYPE)
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


def muon_update(grad, momentum, beta=0.95, ns_steps=5, nesterov=True):
    momentum.lerp_(grad, 1 - beta)
    update = grad.lerp_(momentum, beta) if nesterov else momentum
    update = zeropower_via_newtonschulz5(update, steps=ns_steps)
    update *= max(1, grad.size(-2) / grad.size(-1)) ** 0.5
    return update


def main(out):
    g = torch.Generator().manual_seed(19)
    params = {n: torch.nn.Parameter(torch.randn(s, generator=g) * 0.5) for n, s in PARAMS}
    # three gradients; the first is large enough that clipping (max norm 1) scales it down
    grads = [{n: torch.randn(s, generator=g) * (3.0 if k == 0 else 0.05) for n, s in PARAMS} for k in range(3)]
    tensors = {f"init.{n}": p.detach().clone() for n, p in params.items()}
    for k in range(3):
        for n, gr in grads[k].items():
            tensors[f"grad{k}.{n}"] = gr.clone()

    muon = [(n, p) for n, p in params.items() if uses_muon(n, p.shape)]
    adam = [(n, p) for n, p in params.items() if not uses_muon(n, p.shape)]
    decay = lambda n, p: p.dim() >= 2 and "embed_tokens" not in n  # noqa: E731
    adamw = torch.optim.AdamW(
        [
            {"params": [p for n, p in adam if decay(n, p)], "weight_decay": ADAM_WD},
            {"params": [p for n, p in adam if not decay(n, p)], "weight_decay": 0.0},
        ],
        lr=LRS[0],
        betas=ADAM_BETAS,
        eps=ADAM_EPS,
    )
    momentum = {n: torch.zeros_like(p) for n, p in muon}
    for k in range(3):
        for n, p in params.items():
            p.grad = grads[k][n].clone()
        torch.nn.utils.clip_grad_norm_(list(params.values()), GRAD_CLIP)
        for group in adamw.param_groups:
            group["lr"] = LRS[k]
        adamw.step()
        lr = LRS[k] * MUON_LR / MAX_LR
        with torch.no_grad():
            for n, p in muon:
                update = muon_update(p.grad, momentum[n], beta=MUON_MOMENTUM, ns_steps=MUON_NS_STEPS)
                p.mul_(1 - lr * MUON_WD)
                p.add_(update.reshape(p.shape), alpha=-lr)
        for n, p in params.items():
            tensors[f"step{k}.{n}"] = p.detach().clone()
    for n, _ in muon:
        tensors[f"muon_m.{n}"] = momentum[n]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save_safetensors(out, tensors)


if __name__ == "__main__":
    main(sys.argv[1])
