"""The PyTorch side of every benchmark: CUDA with TF32 off (f32 means f32) when there is a GPU, else
the CPU with 2 threads; and the device's name for the JSON line."""
import time

import torch


def pick(tf32=False):
    cuda = torch.cuda.is_available()
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
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
