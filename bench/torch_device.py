"""The PyTorch side of every benchmark: CUDA with TF32 off (f32 means f32) when there is a GPU, else
the CPU with 2 threads; and the device's name for the JSON line. Run as a script, it prints what
bench/gpu.sh needs to know before asking for figures: {"torch", "cuda", "device"} as one JSON line."""
import json
import time

import torch


def set_tf32(on):
    """TF32 (10-bit mantissa products on tensor cores) for f32 matmuls and convolutions, or exact f32."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def pick(tf32=False):
    cuda = torch.cuda.is_available()
    if cuda:
        set_tf32(tf32)
    else:
        torch.set_num_threads(2)
    name = torch.cuda.get_device_name(0) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    return ("cuda" if cuda else "cpu"), cuda, name


def sync(cuda):
    if cuda:
        torch.cuda.synchronize()


def seconds_per_step(step, steps, cuda):
    """One warm-up call, then the mean time of `steps` calls, the device drained before each clock read."""
    step()
    sync(cuda)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(cuda)
    return (time.perf_counter() - t0) / steps


if __name__ == "__main__":
    _, cuda, name = pick()
    print(json.dumps({"torch": torch.__version__, "cuda": cuda, "device": name}))
