"""Result records: one JSON file per transfer run, ``leaderboards/results/<task>/<run id>.json``.

A record is immutable once written (temp file + ``os.replace``, so a crash never leaves half a
record) and carries everything that moves its number: model id and revision, the pretraining
summary from the encoder's config, the task, the full protocol, metrics, seed, git sha,
hardware and wall time (DESIGN.md, "Result").
"""

from __future__ import annotations

import os
import platform
import secrets
import time
from pathlib import Path
from typing import Any

import torch

from hub.provenance import write_json_atomic

RESULTS_ROOT = Path(os.environ.get("SIAMHUB_RESULTS", "leaderboards/results"))


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
    """``<time>-<model>-s<seed>-<random>``: sortable, safe as a file name, and unique even for
    runs of the same model and seed finishing in the same second (a sweep's array tasks)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-s{seed}-{secrets.token_hex(3)}"


def write_record(record: dict[str, Any], root: Path | None = None) -> Path:
    """Write ``record`` atomically to ``<root>/<task>/<run_id>.json`` and return the path."""
    for key in ("task", "run_id", "model", "protocol", "metrics"):
        if key not in record:
            raise ValueError(f"result record lacks '{key}'")
    folder = Path(root or RESULTS_ROOT) / record["task"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['run_id']}.json"
    if path.exists():  # records are immutable: never overwrite another run's
        raise FileExistsError(f"result record {path} exists already; give the run a new run_id")
    return write_json_atomic(path, record, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable: {value!r}")
