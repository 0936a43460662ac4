"""Self-describing, atomic training checkpoints.

A checkpoint holds the model, the optimizer, the step and epoch, every RNG state and the full
config. It is written to a temporary file in the same folder, flushed to disk and renamed over
the old one, so a crash or a full disk mid-write never leaves a broken ``last.pt``.
"""

from __future__ import annotations

import errno
import os
import random
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

LAST = "last.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or does not fit the model being trained."""


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = f"the previous checkpoint {path} is intact" if path.exists() else "none existed"
            raise CheckpointError(
                f"no space left on the device while writing {path} ({kept}); free some space "
                "or point the run directory elsewhere, then resume"
            ) from e
        raise


# Method keys that change the objective or the target's dynamics, not the parameter shapes.
NOT_ARCHITECTURE = {
    "stop_grad",
    "loss",
    "symmetric_predictor",
    "mirror",
    "momentum_base",
    "momentum_schedule",
    "temperature",
}


def architecture_of(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config that decide the parameter shapes (missing keys: their defaults)."""
    from hub.backbones import BackboneSpec
    from pretrain.config import MethodConfig

    model = {**asdict(BackboneSpec()), **config["model"]}
    method = {**asdict(MethodConfig()), **config["method"]}
    method = {k: v for k, v in method.items() if k not in NOT_ARCHITECTURE}
    return {"model": model, "method": method}


def load_checkpoint(path: Path, model: nn.Module, config: dict[str, Any]) -> dict[str, Any]:
    """Load ``path`` into ``model`` strictly, after checking it was made for this architecture."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no model/config)")
    theirs, ours = architecture_of(ckpt["config"]), architecture_of(config)
    if theirs != ours:
        diff = [
            f"{section}.{k}: checkpoint {theirs[section].get(k)!r}, config {ours[section].get(k)!r}"
            for section in ours
            for k in sorted(set(ours[section]) | set(theirs[section]))
            if ours[section].get(k) != theirs[section].get(k)
        ]
        raise CheckpointError(
            f"checkpoint {path} was made for another architecture ({'; '.join(diff)}); "
            "use a new run directory, or the recipe that made it"
        )
    model.load_state_dict(ckpt["model"], strict=True)
    return ckpt
