"""Reading and validating result records: every ``*.json`` under the results folder.

A record that cannot be rendered (not JSON, a missing or mistyped key, an unknown task) is
never dropped silently and never stops the build: it becomes a :class:`Flagged` entry with
its file and the reason, which the build lists in ``README.md`` and on stderr.

Record formats: transfer records (``transfer/records.py``), pretraining records of a sweep
(task ``pretrain``) and collapse-ablation records (task ``ablation``, ``pretrain/ablate.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRANSFER_TASKS = ("knn", "linear", "lowshot", "fmnist_det", "voc_det", "coco_det")
KNOWN_TASKS = tuple(sorted((*TRANSFER_TASKS, "pretrain", "ablation")))

# Metrics a record of each task must hold as numbers (lowshot: at least one subset).
REQUIRED_METRICS: dict[str, tuple[str, ...]] = {
    "knn": ("top1_k20",),
    "linear": ("top1",),
    "lowshot": (),
    "fmnist_det": ("box_AP",),
    "voc_det": ("box_AP",),
    "coco_det": ("box_AP",),
    "pretrain": ("loss", "z_std_sqrt_d"),
}
ABLATION_NUMBERS = ("z_std_sqrt_d", "effective_rank", "m_o", "knn_z", "knn_h", "init_knn_h")
ABLATION_STRINGS = ("method", "variant", "expect")
ABLATION_BOOLS = ("collapsed", "reproduced")


class RecordError(ValueError):
    """Why a record cannot be rendered (the message is shown to the reader as is)."""


@dataclass(frozen=True)
class Record:
    """A valid record: its file (relative to the results folder), its content, its seeds.

    ``samples`` holds one ``(seed, metrics)`` pair per seed: one for an ordinary record, one
    per entry of ``metrics["per_seed"]`` for a record whose run aggregated several seeds.
    """

    path: str
    data: dict[str, Any]
    samples: tuple[tuple[int | None, dict[str, Any]], ...]

    @property
    def task(self) -> str:
        return self.data["task"]

    @property
    def run_id(self) -> str:
        return self.data.get("run_id") or Path(self.path).stem


@dataclass(frozen=True)
class Flagged:
    """A record that is not rendered, and why."""

    path: str
    reason: str


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _need(data: dict, key: str, types: type | tuple, what: str, where: str = "") -> Any:
    if key not in data:
        raise RecordError(f"missing key '{where}{key}'")
    value = data[key]
    if not isinstance(value, types) or (types is not bool and isinstance(value, bool)):
        raise RecordError(f"'{where}{key}' must be {what}, got {type(value).__name__} {value!r}")
    return value


def _need_number(data: dict, key: str, where: str = "") -> float:
    if key not in data:
        raise RecordError(f"missing key '{where}{key}'")
    if not is_number(data[key]):
        raise RecordError(
            f"'{where}{key}' must be a number, got {type(data[key]).__name__} {data[key]!r}"
        )
    return data[key]


def _optional(data: dict, key: str, types: type | tuple, what: str, where: str = "") -> None:
    if data.get(key) is not None:
        _need(data, key, types, what, where)


def _samples(data: dict) -> tuple[tuple[int | None, dict], ...]:
    """Split a record into per-seed metric dicts (``seed`` may be a list: see Record)."""
    seed, metrics = data.get("seed"), data["metrics"]
    if isinstance(seed, list):
        per_seed = metrics.get("per_seed")
        if not isinstance(per_seed, list) or len(per_seed) != len(seed):
            raise RecordError(
                f"'seed' is a list of {len(seed)} seeds but 'metrics.per_seed' is not a list of "
                f"{len(seed)} metric dicts (a multi-seed run must keep each seed's metrics)"
            )
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in seed):
            raise RecordError(f"'seed' must be an int or a list of ints, got {seed!r}")
        for i, m in enumerate(per_seed):
            if not isinstance(m, dict):
                raise RecordError(f"'metrics.per_seed[{i}]' must be an object, got {m!r}")
        return tuple(zip(seed, per_seed, strict=True))
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RecordError(f"'seed' must be an int or a list of ints, got {seed!r}")
    return ((seed, {k: v for k, v in metrics.items() if k != "per_seed"}),)


def _check_run(data: dict) -> None:
    """Transfer and pretraining records: the keys of ``transfer/records.py``."""
    task = data["task"]
    _need(data, "run_id", str, "a string")
    model = _need(data, "model", dict, "an object")
    _need(model, "kind", str, "a string", "model.")
    pretrain = _need(data, "pretrain", dict, "an object")
    _optional(pretrain, "backbone", dict, "an object", "pretrain.")
    _optional(pretrain, "method", str, "a string", "pretrain.")
    _need(data, "protocol", dict, "an object")
    _need(data, "metrics", dict, "an object")
    _optional(data, "git_sha", str, "a string")
    _optional(data, "hardware", dict, "an object")
    _optional(data, "finished_at", str, "a string")
    sweep = data.get("sweep")
    if sweep is not None:
        _need(data, "sweep", dict, "an object")
        _need(sweep, "id", str, "a string", "sweep.")
        _need(sweep, "axis", str, "a string", "sweep.")
        if "value" not in sweep:
            raise RecordError("missing key 'sweep.value'")
    multi = isinstance(data.get("seed"), list)
    for i, (_, metrics) in enumerate(_samples(data)):
        where = f"metrics.per_seed[{i}]." if multi else "metrics."
        for key in REQUIRED_METRICS[task]:
            _need_number(metrics, key, where)
        if task == "lowshot" and not any(
            is_number(metrics.get(k)) for k in ("top1_1pct", "top1_10pct")
        ):
            raise RecordError(f"missing key '{where}top1_1pct' (or '{where}top1_10pct')")


def _check_ablation(data: dict) -> None:
    """Collapse-ablation records of ``pretrain/ablate.py``."""
    for key in ABLATION_STRINGS:
        _need(data, key, str, "a string")
    for key in ABLATION_NUMBERS:
        _need_number(data, key)
    for key in ABLATION_BOOLS:
        _need(data, key, bool, "true or false")
    _need(data, "seed", int, "an int")
    for key in ("run_id", "claim", "source", "git_sha", "date"):
        _optional(data, key, str, "a string")
    for key in ("steps", "batch_size"):
        _optional(data, key, int, "an int")
    _optional(data, "knn_protocol", dict, "an object")
    _optional(data, "not_reproduced_because", list, "a list of strings")
    curve = data.get("curve")
    if curve is not None:
        if not isinstance(curve, list):
            raise RecordError(f"'curve' must be a list of rows, got {type(curve).__name__}")
        for i, row in enumerate(curve):
            if not isinstance(row, dict) or not is_number(row.get("step")):
                raise RecordError(f"'curve[{i}]' must be an object with a numeric 'step'")


def validate(data: Any) -> tuple[tuple[int | None, dict], ...]:
    """Check one parsed record; return its per-seed samples or raise RecordError."""
    if not isinstance(data, dict):
        raise RecordError(f"not a JSON object (the file holds a {type(data).__name__})")
    if "task" not in data:
        if data.get("kind") == "collapse_ablation":
            raise RecordError(
                "missing key 'task' (an old collapse_ablation record: regenerate it with "
                "python pretrain/ablate.py, which writes task 'ablation')"
            )
        raise RecordError(f"missing key 'task' (known: {', '.join(KNOWN_TASKS)})")
    task = data["task"]
    if task not in KNOWN_TASKS:
        raise RecordError(f"unknown task {task!r} (known: {', '.join(KNOWN_TASKS)})")
    if task == "ablation":
        _check_ablation(data)
        return ((data["seed"], {}),)
    _check_run(data)
    return _samples(data)


def read_records(results: Path) -> tuple[list[Record], list[Flagged]]:
    """Every ``*.json`` under ``results`` (recursively, sorted by path): valid and flagged."""
    records: list[Record] = []
    flagged: list[Flagged] = []
    for path in sorted(results.rglob("*.json"), key=lambda p: p.relative_to(results).as_posix()):
        if not path.is_file():
            continue
        rel = path.relative_to(results).as_posix()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            flagged.append(
                Flagged(rel, f"not valid JSON: {e.msg} (line {e.lineno}, col {e.colno})")
            )
            continue
        except UnicodeDecodeError as e:
            flagged.append(Flagged(rel, f"not UTF-8 text: {e.reason} at byte {e.start}"))
            continue
        try:
            samples = validate(data)
        except RecordError as e:
            flagged.append(Flagged(rel, str(e)))
            continue
        records.append(Record(rel, data, samples))
    return records, flagged
