"""Result records of transfer runs: one JSON file per run,
``leaderboards/results/<task>/<run id>.json``.

The contract (tasks, required keys, validated atomic write-once) lives in the ``records``
package; the hardware block (threads, CPU model, precision, device) in ``common.hardware``,
which pretraining's summary shares. A record carries everything that moves its number: model
id and revision, the pretraining summary (configured and trained length, and the encoder's
identity ``pretrain.weights_sha256``, from ``transfer.models.load_model``: what a model card
matches records by), the task, the full protocol, metrics, seed, git sha, hardware, wall time.

A transfer run computes in float32 (feature extraction, kNN, the probes' weights, detection;
no autocast): ``precision`` says so, and names the probe grid's bf16 matmuls where the task ran
them (``protocol.grid.precision``, ``transfer.probe.resolve_precision``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from common.hardware import hardware, precision_label
from records.errors import RecordError, RecordExistsError
from records.schema import require_hardware
from records.write import new_run_id, results_root, write_record

__all__ = [
    "RESULTS_ROOT",
    "RecordError",
    "RecordExistsError",
    "hardware",
    "require_hardware",
    "run_id",
    "run_precision",
    "write_record",
]

RESULTS_ROOT: Path = results_root()


def run_precision(device: torch.device, protocol: dict[str, Any]) -> str:
    """What a transfer run computed in (``common.hardware.precision_label`` without autocast),
    plus ``probe grid matmuls bf16`` where its protocol says the grid ran them in bf16."""
    label = precision_label(None, device)
    grid = protocol.get("grid")
    if isinstance(grid, dict) and grid.get("precision") == "bf16":
        label += ", probe grid matmuls bf16"
    return label


def run_id(task: str, model_id: str, seed: int) -> str:
    """A fresh run id (``records.write.new_run_id``; ``task`` kept for the callers)."""
    return new_run_id(model_id, seed)
