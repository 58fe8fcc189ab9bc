"""Reference matmul GFLOPS for bench/matmul.ts: PyTorch f32, on the GPU when CUDA is there (TF32 off),
else on the CPU with 2 threads (Debian's python3-torch over OpenBLAS). Prints one JSON object."""
import json, sys, time
import torch
from torch_device import pick, sync

sizes = json.loads(sys.argv[1])  # [[M, K, N], ...]
dev, cuda, name = pick()
out = {"device": name,
       "blas": "cublas" if cuda else torch.__config__.show().split("BLAS_INFO=")[-1].split(",")[0].strip(), "gflops": {}}
for M, K, N in sizes:
    a = torch.randn(M, K, device=dev)
    b = torch.randn(K, N, device=dev)
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
    out["gflops"][f"{M}x{K}x{N}"] = 2 * M * K * N * reps / t / 1e9
print(json.dumps(out))
