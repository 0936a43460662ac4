"""Self-describing, atomic training checkpoints, and what else a run directory records.

A checkpoint holds the model, the optimizer, the step and epoch, every RNG state and the full
config. It is written with ``common.files.atomic_write`` (a temporary file in the same folder,
flushed to disk and renamed over the old one), so a crash or a full disk mid-write never
leaves a broken ``last.pt``.

Loading uses ``torch.load(weights_only=True)``: no pickled code runs, whoever wrote the file.
Everything a checkpoint holds is tensors and plain data; the RNG states are stored as tensors
and lists (``rng_state``). Checkpoints of older versions hold NumPy's RNG state as a NumPy
array: they still load, by allowing exactly the NumPy globals an ``uint32`` array needs
(``LEGACY_RNG_GLOBALS``), which construct arrays and run no other code. Any other object in a
file is refused with a ``CheckpointError``.

The run directory also holds ``config.json`` (the run's config, as the checkpoints store it)
and the event log ``job_events.jsonl`` (one JSON row per job start, preemption checkpoint and
config change on resume; ``append_event`` / ``read_events``).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import pickle
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.errors import UserError
from common.files import atomic_write

LAST = "last.pt"
CONFIG_JSON = "config.json"
EVENTS = "job_events.jsonl"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be written or does not fit the model being trained."""


# ---------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """Every RNG the run draws from, as tensors and plain data (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),  # (624,) uint32 values
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore ``rng_state()``'s states (also the NumPy tuple of older checkpoints)."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        keys = numpy_state["keys"]
        keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
        numpy_state = (
            numpy_state["kind"],
            keys.astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    np.random.set_state(numpy_state)
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


NUMPY_CORES = ("numpy._core", "numpy.core")


def _legacy_rng_globals() -> list[Any]:
    """The NumPy globals an older checkpoint's ``np.random.get_state()`` array pickles to."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy 2
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct
    # a file pickled under numpy 1 names numpy.core, under numpy 2 numpy._core
    names: list[Any] = [(_reconstruct, f"{m}.multiarray._reconstruct") for m in NUMPY_CORES]
    names += [np.ndarray, np.dtype]
    dtype_class = getattr(getattr(np, "dtypes", None), "UInt32DType", None)
    if dtype_class is not None:
        names.append(dtype_class)
    return names


LEGACY_RNG_GLOBALS = _legacy_rng_globals()


# ---------------------------------------------------------------------------- write and read


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then rename over ``path``."""
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = f"the previous checkpoint {path} is intact" if path.exists() else "none existed"
            raise CheckpointError(
                f"no space left on the device while writing {path} ({kept}); free some space "
                "or point the run directory elsewhere, then resume"
            ) from e
        raise


def read_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """A checkpoint's content, loaded with ``weights_only=True`` (see the module doc)."""
    try:
        with torch.serialization.safe_globals(LEGACY_RNG_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"the global {found.group(1)}" if found else "objects weights_only refuses"
        raise CheckpointError(
            f"{path} holds pickled Python objects ({what}) beyond the tensors and plain data "
            "this project's checkpoints hold; it is not loaded (weights_only=True), since "
            "unpickling can run any code. Use a checkpoint written by pretrain/train.py"
        ) from e
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no model/config)")
    return ckpt


@functools.lru_cache(maxsize=32)
def _shapes(config_json: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from pretrain.config import from_dict
    from pretrain.methods import build_method

    cfg = from_dict(json.loads(config_json))
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = build_method(cfg)
    except NotImplementedError:  # a builder reads a value back (DINO's drop-path rates)
        with torch.random.fork_rng(devices=[]):  # the run's RNG stays as it was
            model = build_method(cfg)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def architecture_of(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """What a config's weights look like: the state-dict keys and shapes of the method it
    builds (``pretrain.methods.build_method``, on the meta device; missing keys: their
    defaults). Two configs are the same architecture when these are equal, whatever else
    differs (DINO's temperatures and clipping, SimSiam's loss switches, ...)."""
    return dict(_shapes(json.dumps(config, sort_keys=True)))


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _with(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(config))
    node = out
    *sections, last = dotted.split(".")
    for part in sections:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def _normalized(config: dict[str, Any], what: str) -> dict[str, Any]:
    """The config with every key (missing ones: their defaults), as a checkpoint stores it."""
    from pretrain.config import ConfigError, from_dict

    try:
        return from_dict(config).to_dict()
    except ConfigError as e:
        raise CheckpointError(f"{what} no longer loads as a config: {e}") from e


def check_architecture(stored: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """Raise a CheckpointError when the two configs build weights of other names or shapes,
    naming each config key whose change alone reshapes them (all differing keys if none
    does alone). Keys that shape nothing (DINO's temperatures, clip_grad ...) pass here; what
    a resumed run may change is ``pretrain.resume.RESUME_MUTABLE``'s to say."""
    theirs = _normalized(stored, f"the config stored in {path}")
    ours = _normalized(config, "the config")
    flat_theirs, flat_ours = _flat(theirs), _flat(ours)
    differing = sorted(k for k in flat_ours if flat_ours[k] != flat_theirs.get(k))
    if not differing:
        return
    shapes = architecture_of(ours)  # a config its method refuses: that ConfigError
    try:
        stored_shapes = architecture_of(theirs)
    except Exception as e:
        raise CheckpointError(
            f"the config stored in {path} no longer builds its method ({e}); use a new run "
            "directory"
        ) from e
    if stored_shapes == shapes:
        return

    def reshapes(key: str) -> bool:
        try:
            return architecture_of(_with(ours, key, flat_theirs[key])) != shapes
        except Exception:  # the method refuses that value beside ours: it may be the one
            return True

    named = [k for k in differing if reshapes(k)] or differing
    diff = [f"{k}: checkpoint {flat_theirs[k]!r}, config {flat_ours[k]!r}" for k in named]
    raise CheckpointError(
        f"checkpoint {path} was made for another architecture ({'; '.join(diff)}); "
        "use a new run directory, or the recipe that made it"
    )


def check_same_run(run_dir: Path, ckpt_config: dict[str, Any], path: Path) -> None:
    """Refuse a ``last.pt`` whose config disagrees with the run directory's ``config.json``
    beyond what a resume may change and log (``pretrain.resume.RESUME_MUTABLE``): a
    checkpoint of another run, dropped or copied here. Resuming it would train the
    checkpoint's config and leave config.json saying another (the directory inconsistent)."""
    from pretrain.resume import RESUME_MUTABLE

    json_path = run_dir / CONFIG_JSON
    if not json_path.is_file():
        return
    run = _flat(_normalized(_read_config_json(json_path), str(json_path)))
    ckpt = _flat(_normalized(ckpt_config, f"the config stored in {path}"))
    differing = [
        k for k in run if run[k] != ckpt.get(k) and k not in RESUME_MUTABLE
    ]  # keys in the config's order
    if differing:
        listed = "; ".join(
            f"{k}: {CONFIG_JSON} {run[k]!r}, checkpoint {ckpt.get(k)!r}" for k in differing
        )
        raise CheckpointError(
            f"{path} is not this run's checkpoint: its config disagrees with {json_path} "
            f"({listed}); move the checkpoint back to its own run directory, or start a "
            "new --run-dir"
        )


def load_checkpoint(path: Path, model: nn.Module, config: dict[str, Any]) -> dict[str, Any]:
    """Load ``path`` into ``model`` strictly, after checking it was made for this architecture."""
    ckpt = read_checkpoint(path)
    check_architecture(ckpt["config"], config, path)
    model.load_state_dict(ckpt["model"], strict=True)
    return ckpt


# ---------------------------------------------------------------------------- the run directory


def _read_config_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"cannot read {path} ({e}); restore it, or start a new run directory"
        ) from e


def stored_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The config a run directory was started with: its checkpoint's (after checking that it
    is this run's: ``check_same_run``), else its config.json; None for a new run directory."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / LAST
    if ckpt.is_file():
        config = read_checkpoint(ckpt, mmap=True)["config"]
        check_same_run(run_dir, config, ckpt)
        return config
    path = run_dir / CONFIG_JSON
    return _read_config_json(path) if path.is_file() else None


def append_event(run_dir: str | Path, **row: Any) -> None:
    """Append one row (time, job id and ``row``) to the run's event log."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    row = {"time": time.time(), "job_id": os.environ.get("SLURM_JOB_ID", ""), **row}
    with (run_dir / EVENTS).open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's event log, oldest first."""
    path = Path(run_dir) / EVENTS
    return [json.loads(r) for r in path.read_text().splitlines() if r] if path.exists() else []
