"""Measured rows: records grouped so that the seeds of one configuration become one row.

Group key = task + model kind (trained / random init) + the pretraining signature without its
seed (method, recipe, backbone name and width, configured epochs and the trained steps of a
run stopped early, batch size, dataset, sweep id, axis and point) + the protocol id. Within
a group each seed counts once: when two records hold the same seed, the later one
(``finished_at``, then run id) is used and the other is listed as superseded. A row shows
mean ± sample standard deviation (ddof = 1) over its seeds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from leaderboards.protocols import protocol_id, protocol_label
from leaderboards.record_set import Record, is_number
from records.length import length_of


@dataclass(frozen=True)
class Stat:
    """Mean, sample std (None for one value) and count of one metric over a group's seeds."""

    mean: float
    std: float | None
    n: int

    def fmt(self, digits: int = 1) -> str:
        if self.std is None or self.n < 2:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


@dataclass
class Group:
    """One measured row: the records of one configuration and the statistics of its metrics."""

    key: str
    task: str
    records: list[Record]
    superseded: list[Record]
    seeds: list[int | None]
    stats: dict[str, Stat]
    flags: dict[str, tuple[int, int]] = field(default_factory=dict)  # bool metric -> (true, n)

    @property
    def first(self) -> dict[str, Any]:
        return self.records[0].data

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def random_init(self) -> bool:
        return is_random_init(self.first)

    @property
    def protocol_id(self) -> str:
        return protocol_id(self.first.get("protocol", {}))

    @property
    def protocol_label(self) -> str:
        return protocol_label(self.task, self.first.get("protocol", {}))

    def stat(self, metric: str) -> Stat | None:
        return self.stats.get(metric)


def is_random_init(data: dict[str, Any]) -> bool:
    """A random-init baseline: ``model.kind`` ends in ``+random_init``, or pretrain says so."""
    kind = str(data.get("model", {}).get("kind", ""))
    return kind.endswith("+random_init") or bool(data.get("pretrain", {}).get("random_init"))


def signature(data: dict[str, Any]) -> dict[str, Any]:
    """The pretraining signature without the seed, as shown in the config columns."""
    pre = data.get("pretrain", {}) or {}
    backbone = pre.get("backbone", {}) or {}
    sweep = data.get("sweep", {}) or {}
    return {
        "model": "random init" if is_random_init(data) else "trained",
        "method": pre.get("method"),
        "recipe": pre.get("recipe"),
        "backbone": backbone.get("name"),
        "width": backbone.get("width"),
        "epochs": pre.get("epochs"),
        "trained_steps": length_of(pre).key,  # None when the run trained its whole recipe
        "batch": pre.get("batch_size"),
        "dataset": pre.get("dataset"),
        "sweep_id": sweep.get("id"),
        "sweep_axis": sweep.get("axis"),
        "sweep_value": sweep.get("value"),
    }


def group_key(data: dict[str, Any]) -> str:
    key = {"task": data["task"], **signature(data), "protocol": protocol_id(data["protocol"])}
    return json.dumps(key, sort_keys=True, default=str)


def _order(record: Record) -> tuple[str, str]:
    return (str(record.data.get("finished_at") or ""), record.run_id)


def group_records(records: list[Record], task: str) -> list[Group]:
    """The measured rows of ``task``, sorted by group key (boards sort them further)."""
    rows = []
    for index, rec in enumerate(records):
        if rec.task != task:
            continue
        for seed, metrics in rec.samples:
            rows.append(
                {
                    "group": group_key(rec.data),
                    "record": index,
                    "seed": seed,
                    "order": _order(rec),
                    "metrics": {k: v for k, v in metrics.items() if v is not None},
                }
            )
    if not rows:
        return []
    df = pd.DataFrame(rows)
    df["seed_key"] = [
        f"s{s}" if s is not None and not (isinstance(s, float) and math.isnan(s)) else f"r{r}"
        for s, r in zip(df["seed"], df["record"], strict=True)
    ]
    # Stable sort: the later record of a seed is the last of its (group, seed).
    df = df.sort_values(["group", "seed_key", "order"], kind="mergesort")
    used = df.drop_duplicates(subset=["group", "seed_key"], keep="last")
    groups = []
    for key, part in used.groupby("group", sort=True):
        used_records = sorted(set(part["record"]), key=lambda i: records[i].path)
        all_records = sorted(
            set(df.loc[df["group"] == key, "record"]), key=lambda i: records[i].path
        )
        metrics = pd.json_normalize(list(part["metrics"]))
        stats, flags = {}, {}
        for col in sorted(metrics.columns):
            values = metrics[col].dropna()
            if len(values) and all(isinstance(v, bool) for v in values):
                flags[col] = (int(sum(values)), len(values))
            elif len(values) and all(is_number(v) for v in values):
                values = values.astype(float)
                std = float(values.std(ddof=1)) if len(values) > 1 else None
                stats[col] = Stat(float(values.mean()), std, len(values))
        groups.append(
            Group(
                key=key,
                task=task,
                records=[records[i] for i in used_records],
                superseded=[records[i] for i in all_records if i not in used_records],
                seeds=[None if s is None or s != s else int(s) for s in part["seed"]],
                stats=stats,
                flags=flags,
            )
        )
    return groups
