"""Reading result records: every ``*.json`` under the results folder, checked against the
record contract (``records.schema``, the one definition of tasks and required keys).

A record that cannot be rendered (not JSON, a missing or mistyped key, an unknown task) is
never dropped silently and never stops the build: it becomes a :class:`Flagged` entry with
its file and the reason, which the build lists in ``README.md`` and on stderr.

A record's artifacts (``<task>/<run_id>/``, beside ``<task>/<run_id>.json``: the raw
predictions behind its numbers, ``transfer/artifacts.py``) are not records and are not read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from records.errors import RecordError
from records.schema import validate
from records.tasks import KNOWN_TASKS, TRANSFER_TASKS, is_number

__all__ = [
    "KNOWN_TASKS",
    "TRANSFER_TASKS",
    "Flagged",
    "Record",
    "RecordError",
    "is_number",
    "read_records",
    "validate",
]


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


def is_artifact(path: Path, results: Path) -> bool:
    """Whether ``path`` lies in a record's artifact folder: some folder ``<x>/<name>/`` above
    it (below ``results``) has a sibling record ``<x>/<name>.json``."""
    for folder in path.relative_to(results).parents:
        if folder != Path(".") and (results / folder.parent / f"{folder.name}.json").is_file():
            return True
    return False


def read_records(results: Path) -> tuple[list[Record], list[Flagged]]:
    """Every ``*.json`` under ``results`` (recursively, sorted by path; a record's artifact
    folder left out): valid and flagged."""
    records: list[Record] = []
    flagged: list[Flagged] = []
    for path in sorted(results.rglob("*.json"), key=lambda p: p.relative_to(results).as_posix()):
        if not path.is_file() or is_artifact(path, results):
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
