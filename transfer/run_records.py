"""Result records of transfer runs: one JSON file per run,
``leaderboards/results/<task>/<run id>.json``.

The contract (tasks, required keys, validated atomic write-once) lives in the ``records``
package; this module adds what needs torch: the hardware a run ran on. A record carries
everything that moves its number: model id and revision, the pretraining summary (configured
and trained length, and the encoder's identity ``pretrain.weights_sha256``, from
``transfer.models.load_model``: what a model card matches records by), the task, the full
protocol, metrics, seed, git sha, hardware, wall time.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from records.errors import RecordError, RecordExistsError
from records.write import new_run_id, results_root, write_record

__all__ = [
    "RESULTS_ROOT",
    "RecordError",
    "RecordExistsError",
    "hardware",
    "run_id",
    "write_record",
]

RESULTS_ROOT: Path = results_root()


def hardware() -> dict[str, Any]:
    """What the run ran on: device, CPU threads, torch version."""
    hw: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        hw["device"] = torch.cuda.get_device_name(0)
    else:
        hw["device"] = f"cpu ({platform.processor() or platform.machine()})"
    return hw


def run_id(task: str, model_id: str, seed: int) -> str:
    """A fresh run id (``records.write.new_run_id``; ``task`` kept for the callers)."""
    return new_run_id(model_id, seed)
