"""What a run ran on and computed in: the ``hardware`` block of every result record.

A number moves with more than its configuration. On a CPU the thread count splits every float
reduction differently (BENCHMARKS.md: the main job's kNN top-1, seed 0, 82.84 at 1 thread and
81.59 at 2), the CPU's kernels differ, and a run in bf16 autocast or with TF32 matmuls computes
in fewer bits than one in float32. So the block names all three: ``torch_threads``,
``cpu_model`` and ``precision``, beside the device, the platform and the torch version
(``records.schema.HARDWARE_KEYS``: what every record written now must state).

``precision`` is what the caller computed in, never inferred here: the caller passes its
autocast dtype (``precision_label``); the label adds what torch allowed float32 math to do at
that moment (``torch.get_float32_matmul_precision()`` below "highest", and cuDNN's TF32
convolutions on a CUDA device).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

import torch

CPUINFO = Path("/proc/cpuinfo")
AUTOCAST_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


@functools.cache
def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name: ``model name`` in /proc/cpuinfo (Linux on x86), else what
    ``platform.processor()`` says, else the architecture (``platform.machine()``)."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:  # no /proc (macOS, Windows) or not readable
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(device: torch.device | str | None = None) -> str:
    """The device a run computed on: the GPU's name for a CUDA device (``None``: the first GPU
    where one is visible), ``cpu (<processor>)`` otherwise."""
    device = torch.device(device) if device is not None else None
    if device is None and torch.cuda.is_available():
        device = torch.device("cuda", 0)
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def precision_label(autocast: torch.dtype | None, device: torch.device | str) -> str:
    """What a run computed in, in words: ``fp32`` for plain float32, ``bf16 autocast`` /
    ``fp16 autocast`` where autocast was on (``autocast``: the dtype the caller ran it with,
    None for none); then, when float32 math was allowed fewer bits, the matmul precision
    (``torch.set_float32_matmul_precision`` below "highest": TF32 on a CUDA GPU) and, for a
    float32 run on CUDA, cuDNN's TF32 convolutions (``torch.backends.cudnn.allow_tf32``)."""
    cuda = torch.device(device).type == "cuda"
    if autocast is None or autocast == torch.float32:
        parts = ["fp32"]
    elif autocast in AUTOCAST_NAMES:
        parts = [f"{AUTOCAST_NAMES[autocast]} autocast"]
    else:
        raise ValueError(f"autocast must be None, torch.bfloat16 or torch.float16, got {autocast}")
    matmul = torch.get_float32_matmul_precision()
    if matmul != "highest":
        parts.append(f"fp32 matmul precision {matmul!r}" + (" (TF32)" if cuda else ""))
    if cuda and parts[0] == "fp32" and torch.backends.cudnn.allow_tf32:
        parts.append("cuDNN convolutions TF32")
    return ", ".join(parts)


def hardware(
    precision: str | None = None, device: torch.device | str | None = None
) -> dict[str, Any]:
    """The ``hardware`` block of a record: platform, CPU count and model, torch's intra-op
    threads now (call it when the run is done, in the process that ran it), torch version,
    the device (``device``: the one the run used) and, when the caller states it, the
    ``precision`` it computed in (``precision_label``). A record needs ``precision``
    (``records.schema.require_hardware``); a benchmark's printout may leave it out."""
    block: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device_name(device),
    }
    if precision is not None:
        block["precision"] = precision
    return block
