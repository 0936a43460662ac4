"""Writing a result record: validated, atomic and immutable.

``write_record(record, root)`` writes ``<root>/<task>/<run_id>.json``. The record is checked
against the contract (``records.schema.validate``) on its JSON form first: a record the boards
could not render is never written (:class:`RecordError`, naming the key). The write is atomic
(temp file + fsync + rename: a crash never leaves half a record) and never replaces another
run's record (:class:`RecordExistsError`).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from common.files import atomic_write_text
from records.errors import RecordError, RecordExistsError
from records.schema import validate

RESULTS_ENV = "SIAMHUB_RESULTS"
DEFAULT_RESULTS = Path("leaderboards/results")


def results_root() -> Path:
    """Where records go: ``$SIAMHUB_RESULTS``, else ``leaderboards/results``."""
    return Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


def new_run_id(model_id: str, seed: int) -> str:
    """``<time>-<model>-s<seed>-<random>``: sortable, safe as a file name, and unique even for
    runs of the same model and seed finishing in the same second (a sweep's array tasks)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-s{seed}-{secrets.token_hex(3)}"


def to_json(record: dict[str, Any]) -> str:
    """The record as the indented JSON text it is stored as (tensors and arrays as lists,
    numpy / torch scalars as numbers, paths as strings)."""
    return json.dumps(record, indent=2, default=_jsonable) + "\n"


def write_record_at(path: Path, record: dict[str, Any], replace: bool = False) -> Path:
    """Validate ``record`` and write it to ``path`` atomically; an existing file is an error
    unless ``replace`` (a collapse-ablation reading, which a re-run of the matrix replaces)."""
    text = to_json(record)
    try:
        validate(json.loads(text))
    except RecordError as e:
        raise RecordError(
            f"{record.get('task')} record {record.get('run_id')!r} not written: {e} "
            "(the boards could not render it)"
        ) from None
    if path.exists() and not replace:
        raise RecordExistsError(
            f"result record {path} exists already; records are written once: give the run a "
            "new run_id"
        )
    return atomic_write_text(path, text)


def write_record(record: dict[str, Any], root: Path | None = None) -> Path:
    """Write ``record`` to ``<root>/<task>/<run_id>.json`` (validated, atomic, once)."""
    for key in ("task", "run_id"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise RecordError(f"result record lacks a '{key}' string; nothing written")
    if "/" in record["run_id"] or record["run_id"].startswith("."):
        raise RecordError(f"run_id {record['run_id']!r} is not a file name; nothing written")
    folder = Path(root or results_root()) / record["task"]
    return write_record_at(folder / f"{record['run_id']}.json", record)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # torch tensors, numpy arrays and scalars
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable: {value!r}")
