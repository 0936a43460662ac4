"""The papers' reported numbers (``leaderboards/reported.toml``), as rows of their own.

They are rendered in tables of their own, marked **reported** with paper and table, and
never pass through the aggregation of measured records (``aggregate.py``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORTED_TOML = Path(__file__).resolve().parent / "reported.toml"
REQUIRED = ("boards", "paper", "table", "method", "setting", "dataset", "backbone", "protocol")


@dataclass(frozen=True)
class ReportedRow:
    """One number (or a few metrics of one setting) that a paper reports."""

    boards: tuple[str, ...]
    paper: str
    table: str
    method: str
    setting: str
    dataset: str
    backbone: str
    protocol: str
    metrics: dict[str, float]
    epochs: int | None = None
    batch: int | None = None
    std: dict[str, float] = field(default_factory=dict)
    runs: int | None = None
    variant: str | None = None
    note: str = ""

    @property
    def source(self) -> str:
        """``"SimSiam Table 2"``: the paper's short name and its table."""
        return f"{self.paper} {self.table}"

    def value(self, metric: str, digits: int = 1) -> str:
        """The number as the paper gives it, with its spread when the paper gives one."""
        if metric not in self.metrics:
            return ""
        text = f"{self.metrics[metric]:.{digits}f}"
        if metric in self.std:
            text += f" ± {self.std[metric]:.{digits}f}"
        if self.runs:
            text += f" ({self.runs} runs)"
        return text


def load_reported(path: Path = REPORTED_TOML) -> tuple[dict[str, str], list[ReportedRow]]:
    """The papers (short name -> citation) and every reported row, in file order.

    A malformed row raises ValueError naming the row and the key: the file is ours, so a
    mistake in it must stop the build rather than hide a number.
    """
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    papers: dict[str, str] = dict(data.get("papers", {}))
    rows = []
    for i, raw in enumerate(data.get("reported", [])):
        where = f"{path.name}: [[reported]] #{i + 1}"
        for key in REQUIRED:
            if key not in raw:
                raise ValueError(f"{where} lacks '{key}'")
        if raw["paper"] not in papers:
            raise ValueError(f"{where}: paper {raw['paper']!r} is not listed under [papers]")
        metrics: dict[str, Any] = raw.get("metrics", {})
        bad = {k: v for k, v in metrics.items() if not isinstance(v, int | float)}
        if bad:
            raise ValueError(f"{where}: metrics must be numbers, got {bad}")
        rows.append(
            ReportedRow(
                boards=tuple(raw["boards"]),
                paper=raw["paper"],
                table=raw["table"],
                method=raw["method"],
                setting=raw["setting"],
                dataset=raw["dataset"],
                backbone=raw["backbone"],
                protocol=raw["protocol"],
                metrics={k: float(v) for k, v in metrics.items()},
                epochs=raw.get("epochs"),
                batch=raw.get("batch"),
                std={k: float(v) for k, v in raw.get("std", {}).items()},
                runs=raw.get("runs"),
                variant=raw.get("variant"),
                note=raw.get("note", ""),
            )
        )
    return papers, rows


def rows_for(rows: list[ReportedRow], board: str) -> list[ReportedRow]:
    """The reported rows that belong on ``board``, in file order."""
    return [r for r in rows if board in r.boards]
