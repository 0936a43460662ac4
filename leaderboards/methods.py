"""The methods board: SimSiam, BYOL and MoCo v3 side by side, and the random-init baseline.

One row per pretraining signature (method, recipe, backbone, epochs, batch, data) with the
kNN, linear, low-shot and fmnist_det numbers of its transfer records; rows are ordered by
budget (data, backbone, epochs, batch) so methods with the same backbone and budget stand
together. Points of a sweep over a key are left to the sweep board; a sweep over recipes
(methods side by side) is shown here. Also draws the AP-per-method plot.
"""

from __future__ import annotations

import json
from typing import Any

from leaderboards.aggregate import Group, group_records, signature
from leaderboards.boards import (
    HOW_TO_READ,
    Column,
    config_cells,
    reported_table,
    row_slug,
    row_title,
    sources,
)
from leaderboards.markdown import Paths, marker, table
from leaderboards.plots import Point, ap_by_method_plot
from leaderboards.record_set import Record
from leaderboards.reported import ReportedRow, rows_for
from leaderboards.rows import RowPages, latest_date
from records.length import length_of
from records.methods import DISPLAY
from records.tasks import DETECTION_TASKS, TASKS

PLOT = "ap_by_method.png"
TITLE = "Methods side by side"
CELLS = (
    ("knn", "top1_k20", "kNN top-1 k=20"),
    ("linear", "top1", "linear top-1"),
    ("lowshot", "top1_1pct", "low-shot 1%"),
    ("lowshot", "top1_10pct", "low-shot 10%"),
    ("fmnist_det", "box_AP", "fmnist_det box AP"),
)
AP_CAPTION = (
    "The primary AP of each detection board per pretraining (not the sweep points); error bars "
    "(std over seeds) only where a bar has more than one seed; axes start at 0."
)
METRIC_NAMES = {"box_AP": "box AP, COCO metric", "voc07_AP50": "VOC07 AP50"}


def _budget(group: Group) -> str:
    """The signature without the sweep: what makes two rows comparable."""
    sig = {k: v for k, v in signature(group.first).items() if not k.startswith("sweep")}
    return json.dumps(sig, sort_keys=True, default=str)


def _sort_key(sig: dict[str, Any]) -> tuple:
    return (
        str(sig["dataset"]),
        str(sig["backbone"]),
        json.dumps([sig["width"], sig["epochs"], sig["trained_steps"], sig["batch"]], default=str),
        sig["model"] == "random init",
        str(sig["method"]),
        str(sig["recipe"]),
    )


def _config(groups: list[Group]) -> list[str]:
    """The config cells of a methods row; its method cell names the sweeps among its records
    (a row joins the runs of one budget, in a sweep over recipes or not)."""
    cells = config_cells(groups[0])
    cells[1] = cells[1].split(", sweep ")[0]
    swept = [g for g in groups if g.first.get("sweep")]
    sweeps = sorted({str(g.first["sweep"].get("id")) for g in swept})
    if sweeps and not groups[0].random_init:
        some = "" if len(swept) == len(groups) else "incl. "
        cells[1] += f", {some}sweep {', '.join(sweeps)}"
    return cells


def page_title(groups: list[Group]) -> str:
    """``Methods side by side: <the methods measured>`` (known methods in a fixed order)."""
    methods = {str((g.first.get("pretrain") or {}).get("method")) for g in groups}
    methods -= {"None", "none"}
    names = [DISPLAY[m] for m in DISPLAY if m in methods] + sorted(methods - set(DISPLAY))
    return f"{TITLE}: {', '.join(names)}" if names else TITLE


def _cell(groups: list[Group], metric: str) -> str:
    """``mean ± std (n)`` per protocol; several protocols each get a line with their id, and
    a recipe sweep's point beside the same budget's other runs says so."""
    cells = []
    for g in groups:
        stat = g.stat(metric)
        if stat:
            tag = f" `{g.protocol_id}`" if len(groups) > 1 else ""
            sweep = g.first.get("sweep") or {}
            if tag and sweep:
                tag += f" sweep {sweep.get('id')}"
            cells.append(f"{stat.fmt()} ({stat.n}){tag}")
    return "<br>".join(cells) or "–"


def _sweep_point(group: Group) -> bool:
    """A point of a sweep over a key (batch size, lr, ...): the sweep board's. A sweep over
    recipes (``--recipe a,b,c``) is a method comparison and belongs here."""
    sweep = group.first.get("sweep") or {}
    return bool(sweep) and sweep.get("axis") != "recipe"


def _label(group: Group) -> str:
    pre = group.first.get("pretrain", {}) or {}
    bb = pre.get("backbone", {}) or {}
    arch = f"{bb.get('name', '?')} w{bb.get('width', '?')}"
    if group.random_init:
        return f"random init\n{arch} ({pre.get('recipe', '?')})"
    budget = length_of(pre).label  # trained: "12 ep", or "20 steps (0.09 ep)" stopped early
    return f"{pre.get('method', '?')}\n{arch}, {budget}"


def ap_panels(records: list[Record]) -> dict[str, dict[str, Point]]:
    """The primary AP (``records.tasks``: box AP, VOC07 AP50 for VOC) per pretraining method
    for every detection task with measured rows; panels are titled ``task (metric)``."""
    panels: dict[str, dict[str, Point]] = {}
    for task in DETECTION_TASKS:
        metric = TASKS[task].primary
        for g in group_records(records, task):
            stat = g.stat(metric)
            if _sweep_point(g) or not stat:
                continue
            bars = panels.setdefault(f"{task} ({METRIC_NAMES.get(metric, metric)})", {})
            label = _label(g)
            sweep = g.first.get("sweep") or {}
            if sweep:  # a recipe sweep's point beside the same budget's other runs
                label += f"\nsweep {sweep.get('id')}"
            if label in bars:  # same method and budget, another protocol
                label += f"\nprotocol {g.protocol_id}"
            bars[label] = Point(0.0, stat.mean, stat.std or 0.0, stat.n)
    return panels


def render_methods(
    records: list[Record],
    reported: list[ReportedRow],
    papers: dict[str, str],
    paths: Paths,
) -> tuple[str, int, list[str]]:
    """The methods page, its number of measured rows and the PNGs it wrote."""
    by_sig: dict[str, dict[str, list[Group]]] = {}
    for task in unique_tasks():
        for g in group_records(records, task):
            if _sweep_point(g):
                continue
            by_sig.setdefault(_budget(g), {}).setdefault(task, []).append(g)
    headers = ["model", "method (recipe)", "backbone", "epochs", "batch", "pretrain data"]
    headers += [h for _, _, h in CELLS]
    details = RowPages(paths, "methods", TITLE, "methods.md")
    rows = []
    for sig in sorted(by_sig, key=lambda s: _sort_key(json.loads(s))):
        tasks = by_sig[sig]
        groups = [g for task in sorted(tasks) for g in tasks[task]]
        cells = _config(groups)
        cells += [_cell(tasks.get(task, []), metric) for task, metric, _ in CELLS]
        recs = sorted({r.path: r for g in groups for r in g.records}.values(), key=lambda r: r.path)
        old = sorted(
            {r.path: r for g in groups for r in g.superseded}.values(), key=lambda r: r.path
        )
        title = row_title(groups[0]).rsplit(", protocol ", 1)[0]  # a row has several protocols
        named = list(zip(headers, cells, strict=True))
        link = details.link(sig, title, named, recs, old, row_slug(groups[0]))
        rows.append([*cells, link, latest_date(recs)])
    headers += ["runs", "date"]
    rep = rows_for(reported, "methods")
    trained = [g for sig in by_sig.values() for gs in sig.values() for g in gs]
    trained = [g for g in trained if not g.random_init]
    parts = [marker(paths), "", f"# {page_title(trained)}", ""]
    parts += [
        "One row per pretraining (method, recipe, backbone, epochs, batch, data), ordered so "
        "that the same backbone and budget stand together, with the random-init baseline of "
        "each backbone. Cells: mean ± std (n seeds); a cell with several protocols lists each "
        "with its protocol id (the task pages name the protocols). Points of a sweep over "
        "batch size or another key are on the [sweep board](batch_size_sweep.md); a sweep "
        "over recipes is a comparison of methods and shows here. " + HOW_TO_READ + ".",
        "",
        "## Measured",
        "",
    ]
    if rows:
        parts += [table(headers, rows), ""]
    else:
        parts += [f"Nothing measured yet: no transfer records in `{paths.results_rel}/`.", ""]
    plots = []
    panels = ap_panels(records)
    if panels:
        ap_by_method_plot(panels, paths.out / PLOT)
        plots.append(PLOT)
        parts += [f"![AP per pretraining method]({PLOT})", "", AP_CAPTION, ""]
    parts += ["## Reported by the papers (ImageNet-1k linear top-1)", ""]
    if rep:
        parts += [reported_table(rep, (Column("top1", "linear top-1"),)), "", sources(rep, papers)]
    else:
        parts.append("No reported numbers.")
    details.write()
    return "\n".join(parts) + "\n", len(rows), plots


def unique_tasks() -> list[str]:
    return list(dict.fromkeys(task for task, _, _ in CELLS))
