"""Validation of one result record: what the boards need to render it.

``validate(data)`` returns the record's per-seed samples or raises :class:`RecordError` with
the first problem in words (``missing key 'metrics.voc07_AP50'``, or an impossible value:
``protocol.schedule.iters=-1 is out of range: must be >= 1``, ``records/values.py``). The
boards flag a record that fails; ``records.write`` refuses to write one. A record being
written now must also state its threads, CPU model and precision (``require_hardware``,
``HARDWARE_KEYS``: each moves the number); older records without them are read as they are.
"""

from __future__ import annotations

from typing import Any

from records.errors import RecordError
from records.tasks import KNOWN_TASKS, get, is_number
from records.values import check_ablation_values, check_values
from records.verdict import NOT_JUDGED, OUTCOMES

ABLATION_STRINGS = ("method", "variant", "expect")
ABLATION_BOOLS = ("reproduced",)
REJUDGE = "python experiments/rejudge.py"  # rewrites older ablation records' verdicts
# ... and migrates older pretraining (sweep) records off their single-point flag
REJUDGE_PRETRAIN = f"{REJUDGE} --pretrain leaderboards/results/pretrain"

Samples = tuple[tuple[int | None, dict[str, Any]], ...]
# What a record written now states of the run's hardware (``common.hardware.hardware``): the
# thread count, the CPU and the precision each move the number. Older records lack some (the
# committed ones are history, read as they are); ``require_hardware`` is the writers' check.
HARDWARE_KEYS = ("torch_threads", "cpu_model", "precision")


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


def samples(data: dict) -> Samples:
    """Split a record into per-seed metric dicts (a list ``seed``: one per ``per_seed`` entry)."""
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


def _check_trained(pretrain: dict) -> None:
    trained = pretrain.get("trained")
    if trained is None:
        return
    _need(pretrain, "trained", dict, "an object", "pretrain.")
    _need(trained, "steps", int, "an int", "pretrain.trained.")
    _need_number(trained, "epochs", "pretrain.trained.")
    _need(trained, "stopped_early", bool, "true or false", "pretrain.trained.")


def _check_run(data: dict) -> None:
    """Transfer and pretraining records (``transfer/run.py``, ``experiments/sweep.py``)."""
    spec = get(data["task"])
    _need(data, "run_id", str, "a string")
    model = _need(data, "model", dict, "an object")
    _need(model, "kind", str, "a string", "model.")
    pretrain = _need(data, "pretrain", dict, "an object")
    _optional(pretrain, "backbone", dict, "an object", "pretrain.")
    _optional(pretrain, "method", str, "a string", "pretrain.")
    _check_trained(pretrain)
    _need(data, "protocol", dict, "an object")
    _need(data, "metrics", dict, "an object")
    _optional(data, "git_sha", str, "a string")
    _check_hardware(data)
    _optional(data, "finished_at", str, "a string")
    sweep = data.get("sweep")
    if sweep is not None:
        _need(data, "sweep", dict, "an object")
        _need(sweep, "id", str, "a string", "sweep.")
        _need(sweep, "axis", str, "a string", "sweep.")
        if "value" not in sweep:
            raise RecordError("missing key 'sweep.value'")
    multi = isinstance(data.get("seed"), list)
    for i, (_, metrics) in enumerate(samples(data)):
        where = f"metrics.per_seed[{i}]." if multi else "metrics."
        if "collapsed" in metrics:
            raise RecordError(
                f"'{where}collapsed' is a single-point flag from before the windowed verdict "
                f"(records.verdict, over the run's last fifth): migrate the record with "
                f"{REJUDGE_PRETRAIN}"
            )
        for keys in spec.required:
            if len(keys) == 1:
                _need_number(metrics, keys[0], where)
            elif not any(is_number(metrics.get(k)) for k in keys):
                first, *others = keys
                alternatives = ", ".join(f"'{where}{k}'" for k in others)
                raise RecordError(f"missing key '{where}{first}' (or {alternatives})")
    if data.get("verdict") is not None:  # a pretraining record's (experiments/sweep_job.py)
        _check_verdict(data["verdict"], judged_only=False)
    check_values(data, transfer=spec.kind == "transfer")


def _check_ablation(data: dict) -> None:
    """Collapse-ablation records (``experiments/ablate.py``): numbers at the top level."""
    for key in ABLATION_STRINGS:
        _need(data, key, str, "a string")
    if "verdict" not in data or "collapsed" in data:
        raise RecordError(
            "an ablation record from before the windowed verdict (a 'collapsed' flag, no "
            f"'verdict'): rewrite it with {REJUDGE}"
        )
    for (key,) in get("ablation").required:
        _need_number(data, key)
    for key in ABLATION_BOOLS:
        _need(data, key, bool, "true or false")
    _need(data, "seed", int, "an int")
    for key in ("run_id", "claim", "source", "git_sha", "date"):
        _optional(data, key, str, "a string")
    for key in ("steps", "batch_size"):
        _optional(data, key, int, "an int")
    _check_hardware(data)
    check_ablation_values(data)
    _optional(data, "knn_protocol", dict, "an object")
    _optional(data, "not_reproduced_because", list, "a list of strings")
    _check_verdict(data["verdict"])
    curve = data.get("curve")
    if curve is not None:
        if not isinstance(curve, list):
            raise RecordError(f"'curve' must be a list of rows, got {type(curve).__name__}")
        for i, row in enumerate(curve):
            if not isinstance(row, dict) or not is_number(row.get("step")):
                raise RecordError(f"'curve[{i}]' must be an object with a numeric 'step'")


def _check_threads(data: dict, key: str, where: str = "") -> None:
    if data.get(key) is not None and _need(data, key, int, "an int", where) < 1:
        raise RecordError(f"'{where}{key}'={data[key]} is out of range: must be >= 1")


def _check_hardware(data: dict) -> None:
    """The ``hardware`` block where there is one (an older record may have none, or lack the
    ``HARDWARE_KEYS`` added since), and an ablation record's older top-level ``threads``."""
    _check_threads(data, "threads")
    _optional(data, "machine", str, "a string")
    if data.get("hardware") is None:
        return
    hardware = _need(data, "hardware", dict, "an object")
    _check_threads(hardware, "torch_threads", "hardware.")
    for key in ("cpu_model", "precision", "device"):
        _optional(hardware, key, str, "a string", "hardware.")


def require_hardware(data: dict) -> dict:
    """A record being written now states every ``HARDWARE_KEYS`` entry (threads, CPU model,
    precision) in its ``hardware`` block; returns the record, or raises RecordError."""
    hardware = data.get("hardware")
    if not isinstance(hardware, dict):
        raise RecordError(
            f"{data.get('task')} record {data.get('run_id')!r} not written: missing key "
            "'hardware' (common.hardware.hardware: the threads, CPU and precision it ran with)"
        )
    for key in HARDWARE_KEYS:
        if hardware.get(key) in (None, ""):
            raise RecordError(
                f"{data.get('task')} record {data.get('run_id')!r} not written: missing key "
                f"'hardware.{key}' (every record written now states {', '.join(HARDWARE_KEYS)})"
            )
    _check_hardware(data)
    return data


def _check_verdict(verdict: Any, *, judged_only: bool = True) -> None:
    """A ``verdict`` block (``records.verdict.Verdict.as_record``; for a pretraining record,
    ``judged_only=False``, also ``records.verdict.not_judged``'s, which says why)."""
    if not isinstance(verdict, dict):
        raise RecordError(f"'verdict' must be an object, got {type(verdict).__name__}")
    allowed = OUTCOMES if judged_only else (*OUTCOMES, NOT_JUDGED)
    if verdict.get("outcome") not in allowed:
        raise RecordError(
            f"'verdict.outcome' must be one of {', '.join(allowed)}, got {verdict.get('outcome')!r}"
        )
    _need(verdict, "agree", list, "a list of strings", "verdict.")
    _need(verdict, "steps", list, "a list of steps", "verdict.")
    text = _need(verdict, "text", str, "a string", "verdict.")
    if verdict["outcome"] == NOT_JUDGED and not text.startswith(f"{NOT_JUDGED}: "):
        raise RecordError(f"'verdict.text' of a verdict {NOT_JUDGED} must say why, got {text!r}")


def validate(data: Any) -> Samples:
    """Check one parsed record; return its per-seed samples or raise RecordError."""
    if not isinstance(data, dict):
        raise RecordError(f"not a JSON object (the file holds a {type(data).__name__})")
    if "task" not in data:
        if data.get("kind") == "collapse_ablation":
            raise RecordError(
                "missing key 'task' (an old collapse_ablation record: regenerate it with "
                "python experiments/ablate.py, which writes task 'ablation')"
            )
        raise RecordError(f"missing key 'task' (known: {', '.join(KNOWN_TASKS)})")
    task = data["task"]
    if not isinstance(task, str) or task not in KNOWN_TASKS:
        raise RecordError(f"unknown task {task!r} (known: {', '.join(KNOWN_TASKS)})")
    if get(task).kind == "ablation":
        _check_ablation(data)
        return ((data["seed"], {}),)
    _check_run(data)
    return samples(data)
