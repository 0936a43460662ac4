"""The sweep board: one table per sweep (batch size first, other axes under their name).

A sweep point is a pretraining record (task ``pretrain``) with a ``sweep`` block {id, axis,
value, values}; the transfer records run on that point carry the same block. A row per point
shows the pretraining (lr, accumulation, steps, loss, z-std × √d, the run's verdict,
throughput) and the kNN / linear top-1 of the transfer records of the same sweep id and value.
The verdict column counts the seeds' ``verdict`` outcomes (``records.verdict``: the windowed
verdict over the run's last fifth, the one ``summary.json`` holds). A record written before the
verdict was migrated off its single-point flag (``python experiments/rejudge.py --pretrain``;
the schema refuses ``metrics.collapsed``) to a verdict "not judged" that says why; a record
with no verdict at all counts as "not judged" too.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from leaderboards.aggregate import Group, group_records
from leaderboards.boards import HOW_TO_READ, Column, reported_table, sources
from leaderboards.markdown import Paths, marker, num, table, unique
from leaderboards.plots import Point, batch_sweep_plot
from leaderboards.record_set import Record
from leaderboards.reported import ReportedRow, rows_for
from leaderboards.rows import RowPages, latest_date
from records.length import length_of
from records.verdict import NOT_JUDGED

BATCH_AXIS = "train.batch_size"
PLOT = "batch_size_sweep.png"
TITLE = "Sweeps: batch size (and other axes)"
SAME_ON_METHODS = (
    "A sweep over recipes compares methods: its points are also rows of the "
    "[methods board](methods.md), beside the other transfer tasks."
)
TRANSFER_COLUMNS = (("knn", "top1_k20", "kNN top-1 k=20"), ("linear", "top1", "linear top-1"))


def _sweep_of(group: Group) -> tuple[str, str]:
    sweep = group.first.get("sweep") or {}
    return str(sweep.get("axis")), str(sweep.get("id"))


def _value(group: Group) -> Any:
    return (group.first.get("sweep") or {}).get("value")


def _value_key(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, then anything else by its text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, json.dumps(value, sort_keys=True, default=str))


def _stat(groups: list[Group], metric: str, digits: int = 1) -> str:
    cells = [g.stat(metric).fmt(digits) for g in groups if g.stat(metric)]
    return "<br>".join(cells) or "–"


def _verdicts(groups: list[Group]) -> str:
    """Per group, the seeds' verdict outcomes: ``healthy 2/3, borderline 1/3``."""
    cells = []
    for g in groups:
        outcomes = [(r.data.get("verdict") or {}).get("outcome") or NOT_JUDGED for r in g.records]
        n = len(outcomes)
        cells.append(", ".join(f"{o} {c}/{n}" for o, c in Counter(outcomes).items()))
    return "<br>".join(cells) or "–"


def _protocol(groups: list[Group], key: str) -> str:
    return ", ".join(unique(num(g.first["protocol"].get(key)) for g in groups)) or "–"


def sweep_tables(
    pretrain: list[Group], transfer: dict[str, list[Group]], details: RowPages
) -> list[tuple[str, str, str, list[tuple[Any, dict[str, Group | None]]]]]:
    """(axis, id, markdown, [(value, {task: group})]) for every sweep, batch-size axis first."""
    sweeps: dict[tuple[str, str], dict[str, list[Group]]] = {}
    for g in pretrain:
        sweeps.setdefault(_sweep_of(g), {}).setdefault("pretrain", []).append(g)
    for task, groups in transfer.items():
        for g in groups:
            if not g.random_init:
                sweeps.setdefault(_sweep_of(g), {}).setdefault(task, []).append(g)
    order = sorted(sweeps, key=lambda k: (k[0] != BATCH_AXIS, k[0], k[1]))
    out = []
    for axis, sweep_id in order:
        by_task = sweeps[(axis, sweep_id)]
        values = sorted(
            {json.dumps(_value(g), sort_keys=True): _value(g) for g in _flat(by_task)}.values(),
            key=_value_key,
        )  # fmt: skip
        headers = [axis, "lr", "accum steps", "steps", "loss", "z-std × √d", "verdict"]
        headers += ["img/s", *(h for _, _, h in TRANSFER_COLUMNS), "n seeds", "runs", "date"]
        rows, points = [], []
        for value in values:

            def at(task: str, value: Any = value, by_task: dict = by_task) -> list[Group]:
                return [g for g in by_task.get(task, []) if _value(g) == value]

            pre = at("pretrain")
            cells = [
                num(value),
                _protocol(pre, "lr"),
                _protocol(pre, "accum_steps"),
                _protocol(pre, "steps"),
                _stat(pre, "loss", 3),
                _stat(pre, "z_std_sqrt_d", 3),
                _verdicts(pre),
                _stat(pre, "images_per_second", 0),
            ]
            found: dict[str, Group | None] = {}
            for task, metric, _ in TRANSFER_COLUMNS:
                groups = at(task)
                cells.append(_stat(groups, metric))
                found[task] = groups[0] if groups else None
            everything = [g for task in ("pretrain", *transfer) for g in at(task)]
            records: list[Record] = [r for g in everything for r in g.records]
            superseded = [r for g in everything for r in g.superseded]
            cells.append(", ".join(unique(str(g.n) for g in pre)) or "–")
            key = json.dumps([axis, sweep_id, value], sort_keys=True, default=str)
            title = f"sweep {sweep_id}, {axis}={num(value)}"
            named = list(zip(headers, cells, strict=False))
            link = details.link(key, title, named, records, superseded, f"{sweep_id} {num(value)}")
            cells += [link, latest_date(records)]
            rows.append(cells)
            points.append((value, found))
        out.append((axis, sweep_id, table(headers, rows), points))
    return out


def _flat(by_task: dict[str, list[Group]]) -> list[Group]:
    return [g for groups in by_task.values() for g in groups]


def _facts(group: Group) -> dict[str, str]:
    """What a sweep's description states of one point, by name."""
    pre = group.first.get("pretrain", {}) or {}
    backbone = pre.get("backbone", {}) or {}
    proto = group.first.get("protocol", {}) or {}
    return {
        "method (recipe)": f"{pre.get('method', '?')} ({pre.get('recipe', '?')})",
        "backbone": f"{backbone.get('name', '?')} w{backbone.get('width', '?')}",
        "data": str(pre.get("dataset", "?")),
        "length": _length(pre),
        "lr scaling": f"lr scaling {proto.get('lr_scaling', '?')}",
        "base lr": f"base lr {num(proto.get('base_lr'))}",
    }


def _describe(groups: list[Group]) -> str:
    """What the points of a sweep share, then what differs between them besides the axis
    (a sweep over recipes changes the method and its base lr with the recipe)."""
    if not groups:
        return ""
    facts = [_facts(g) for g in groups]
    common = [v for k, v in facts[0].items() if all(f[k] == v for f in facts)]
    varying = [k for k in facts[0] if any(f[k] != facts[0][k] for f in facts)]
    text = "All points: " + ", ".join(common) + "." if common else ""
    if varying:
        text += f" Set by each point: {', '.join(varying)}."
    return text.strip()


def _length(pre: dict[str, Any]) -> str:
    """``3 epochs``, or the trained length of points stopped early (``20 steps (0.09 ep)``)."""
    length = length_of(pre)
    return length.label if length.stopped_early else f"{num(pre.get('epochs'))} epochs"


def render_sweeps(
    records: list[Record],
    reported: list[ReportedRow],
    papers: dict[str, str],
    paths: Paths,
) -> tuple[str, int, list[str]]:
    """The sweep page, its number of measured rows, and the PNGs it wrote."""
    pretrain = [g for g in group_records(records, "pretrain") if g.first.get("sweep")]
    transfer = {
        task: [g for g in group_records(records, task) if g.first.get("sweep")]
        for task, _, _ in TRANSFER_COLUMNS
    }
    details = RowPages(paths, "sweep", TITLE, "batch_size_sweep.md")
    tables = sweep_tables(pretrain, transfer, details)
    rep = rows_for(reported, "batch_size_sweep")
    parts = [marker(paths), "", f"# {TITLE}", ""]
    parts += [
        "One row per sweep point: the pretraining at that point (lr after the recipe's scaling "
        "rule, gradient-accumulation steps, optimizer steps, final loss, z-std × √d, the "
        "seeds' verdicts, images per second) and the kNN and linear top-1 of the transfer runs "
        "on that point's encoder. The verdict is `records/verdict.py`'s over the last fifth of "
        "the run (healthy, complete collapse, failed to converge or borderline; dimensional "
        "collapse needs a healthy reference of the same configuration, which a sweep point "
        f"does not have); a record from before it is {NOT_JUDGED!r}. Cells hold mean ± std "
        "over seeds; " + HOW_TO_READ + ".",
        "",
        "## Measured",
        "",
    ]
    plots: list[str] = []
    rows = 0
    if not tables:
        parts += [f"Nothing measured yet: no sweep records in `{paths.results_rel}/`.", ""]
    for axis, sweep_id, md, points in tables:
        pre = [g for g in pretrain if _sweep_of(g) == (axis, sweep_id)]
        parts += [f"### `{axis}`, sweep `{sweep_id}`", ""]
        if pre:
            parts += [_describe(pre), ""]
        if axis == "recipe":
            parts += [SAME_ON_METHODS, ""]
        parts += [md, ""]
        rows += len(points)
    measured = _plot_series(tables)
    if measured:
        dataset = ", ".join(unique(_dataset(p) for p in pretrain)) or "?"
        rep_points = [Point(r.batch, r.metrics["top1"]) for r in rep if r.batch and r.metrics]
        source = ", ".join(unique(r.source for r in rep)) or "none"
        batch_sweep_plot(
            measured,
            f"measured: {dataset} (this project)",
            rep_points,
            f"reported: {source}, ImageNet-1k linear top-1",
            paths.out / PLOT,
        )
        plots.append(PLOT)
        parts += [
            f"![accuracy against batch size]({PLOT})",
            "",
            "Left: the measured sweep(s); right: the paper's table. Different datasets and "
            "scales: compare the shape of the curves, not the numbers.",
            "",
        ]
    parts += ["## Reported by the papers", ""]
    if rep:
        columns = (Column("top1", "linear top-1"),)
        parts += [reported_table(rep, columns), "", sources(rep, papers)]
    else:
        parts.append("No reported numbers for sweeps.")
    details.write()
    return "\n".join(parts) + "\n", rows, plots


def _dataset(group: Group) -> str:
    return str((group.first.get("pretrain") or {}).get("dataset", "?"))


def _plot_series(tables: list) -> dict[str, list[Point]]:
    """kNN and linear top-1 against batch size, one series per (sweep, task)."""
    series: dict[str, list[Point]] = {}
    for axis, sweep_id, _, points in tables:
        if axis != BATCH_AXIS:
            continue
        for value, found in points:
            for task, metric, header in TRANSFER_COLUMNS:
                g = found.get(task)
                stat = g.stat(metric) if g else None
                if stat and isinstance(value, int | float):
                    series.setdefault(f"{sweep_id}: {header}", []).append(
                        Point(float(value), stat.mean, stat.std or 0.0, stat.n)
                    )
    return series
