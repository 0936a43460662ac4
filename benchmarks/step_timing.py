"""Timing and FLOP counting for the throughput benchmarks, and the same-run ceiling.

``time_steps`` gives seconds per step (synchronizing a CUDA device around them),
``count_flops`` one step's FLOPs as ``FlopCounterMode`` counts them, and ``measure_ceiling``
the GFLOP/s of a large matmul and a channels_last 3×3 conv2d in each dtype; ``device_name``
names the device the figures come from.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

Step = Callable[[], Any]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Step, n: int, device: torch.device) -> float:
    """Seconds per step over ``n`` consecutive steps."""
    sync(device)
    started = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return (time.perf_counter() - started) / n


def count_flops(step: Step) -> int:
    """FLOPs of one training step (forward + backward) as FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def best_seconds(fn: Callable[[], Any], device: torch.device, reps: int) -> float:
    """The fastest of ``reps`` timed calls, after two untimed ones."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return min(times)


def measure_ceiling(
    device: torch.device, dtypes: list[torch.dtype], reps: int = 5
) -> list[dict[str, Any]]:
    """GFLOP/s of a large matmul and a channels_last 3×3 conv2d in each dtype."""
    cuda = device.type == "cuda"
    n = 8192 if cuda else 2048
    conv_shape = (128, 256, 56, 56) if cuda else (32, 128, 28, 28)  # N, C (= C_out), H, W
    results = []
    for dtype in dtypes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        secs = best_seconds(lambda a=a, b=b: a @ b, device, reps)
        results.append(
            {"kernel": f"matmul {n}x{n}x{n}", "dtype": str(dtype), "gflops": 2 * n**3 / secs / 1e9}
        )
        bs, c, h, w = conv_shape
        x = torch.randn(conv_shape, device=device, dtype=dtype).to(
            memory_format=torch.channels_last
        )
        weight = torch.randn(c, c, 3, 3, device=device, dtype=dtype).to(
            memory_format=torch.channels_last
        )
        secs = best_seconds(lambda x=x, weight=weight: F.conv2d(x, weight, padding=1), device, reps)
        flops = 2 * bs * c * c * 9 * h * w
        results.append(
            {
                "kernel": f"conv3x3 {c}->{c} on {bs}x{h}x{w} channels_last",
                "dtype": str(dtype),
                "gflops": flops / secs / 1e9,
            }
        )
        del a, b, x, weight
    return results


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} CPUs)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)"
