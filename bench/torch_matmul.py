"""Reference matmul GFLOPS for bench/matmul.ts and bench/gpu.sh: PyTorch on the GPU when CUDA is there,
else on the CPU with 2 threads (Debian's python3-torch over OpenBLAS). Modes (second argument, comma-
separated, default f32): f32 (TF32 off: f32 means f32), tf32 (f32 tensors, TF32 tensor cores) and bf16
(bf16 operands, f32 accumulation in cuBLAS); tf32 and bf16 are CUDA figures. Prints one JSON object:
`gflops` for the first mode (size "MxKxN" -> GFLOPS), `by_mode` for all of them."""
import json, sys, time
import torch
from torch_device import pick, set_tf32, sync

sizes = json.loads(sys.argv[1])  # [[M, K, N], ...]
modes = (sys.argv[2] if len(sys.argv) > 2 else "f32").split(",")
dev, cuda, name = pick()
for mode in modes:
    if mode not in ("f32", "tf32", "bf16"):
        sys.exit(f"torch_matmul.py: mode {mode!r}: expected f32, tf32 or bf16")
    if mode != "f32" and not cuda:
        sys.exit(f"torch_matmul.py: mode {mode} is a CUDA figure and PyTorch has no CUDA device here")
out = {"device": name,
       "blas": "cublas" if cuda else torch.__config__.show().split("BLAS_INFO=")[-1].split(",")[0].strip(),
       "by_mode": {}}
for mode in modes:
    if cuda:
        set_tf32(mode == "tf32")
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    res = out["by_mode"][mode] = {}
    for M, K, N in sizes:
        a = torch.randn(M, K, device=dev, dtype=dtype)
        b = torch.randn(K, N, device=dev, dtype=dtype)
        def run(n):
            for _ in range(n):
                c = a @ b
            sync(cuda)
        run(2)
        reps, t = 1, 0.0
        while True:  # enough repetitions for ~0.5 s, so the figure is not one noisy sample
            t0 = time.perf_counter(); run(reps); t = time.perf_counter() - t0
            if t > 0.5: break
            reps *= 2
        res[f"{M}x{K}x{N}"] = 2 * M * K * N * reps / t / 1e9
out["gflops"] = out["by_mode"][modes[0]]
print(json.dumps(out))
