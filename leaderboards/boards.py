"""The transfer boards (linear, kNN, low-shot, detection): one page each.

A page holds the measured rows (one per configuration, seeds aggregated, best first) and,
in a table of its own, the papers' reported rows for the same task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leaderboards.aggregate import Group, group_records
from leaderboards.eval_split import TRAINING_NOTE, on_training_split, split_cell
from leaderboards.markdown import Paths, marker, num, table, unique
from leaderboards.raw_pixels import raw_pixels_section
from leaderboards.record_set import Record
from leaderboards.reported import ReportedRow, rows_for
from leaderboards.rows import RowPages, latest_date, threads_note
from records.length import length_of
from records.tasks import TASKS


@dataclass(frozen=True)
class Column:
    """A metric column: the record's metric name, its header, its decimals."""

    metric: str
    header: str
    digits: int = 1


@dataclass(frozen=True)
class Board:
    """A transfer board: its page name, title, what it measures and its metric columns."""

    name: str
    title: str
    about: str
    columns: tuple[Column, ...]
    plot: str = ""  # a PNG (in the pages' folder) shown under the tables

    @property
    def page(self) -> str:
        return f"{self.name}.md"

    @property
    def primary(self) -> str:
        """The metric rows are ranked by: the task registry's (``records.tasks``)."""
        return TASKS[self.name].primary


DET_BOXES = (
    Column("box_AP", "box AP"),
    Column("box_AP50", "box AP50"),
    Column("box_AP75", "box AP75"),
)
TRANSFER_BOARDS: tuple[Board, ...] = (
    Board(
        "linear",
        "Linear probe",
        "Top-1 accuracy (%) of a linear classifier on the frozen, pooled backbone features "
        "(test split); the lr and BN grid is searched on a held-out part of the training set.",
        (Column("top1", "linear top-1"), Column("val_top1", "val top-1")),
    ),
    Board(
        "knn",
        "kNN classifier",
        "Top-1 accuracy (%) of a weighted kNN classifier (cosine similarity, exp(sim / T) "
        "vote) on the frozen, pooled backbone features: the bank is the training split, the "
        "queries the test split.",
        (Column("top1_k20", "kNN top-1 k=20"), Column("top1_k200", "kNN top-1 k=200")),
    ),
    Board(
        "lowshot",
        "Low-shot linear probe",
        "Top-1 accuracy (%) of a linear classifier on frozen features trained on 1% and 10% "
        "of the labels (fixed, checksummed subsets).",
        (Column("top1_1pct", "top-1, 1% labels"), Column("top1_10pct", "top-1, 10% labels")),
    ),
    Board(
        "fmnist_det",
        "Detection on the embedded set (fmnist_det)",
        "Box AP (COCO metric, pycocotools) and VOC07 AP50 of a detector fine-tuned from the "
        "encoder on fmnist_det, the embedded detection set built from Fashion-MNIST items.",
        (*DET_BOXES, Column("voc07_AP50", "VOC07 AP50")),
        plot="ap_by_method.png",
    ),
    Board(
        "voc_det",
        "PASCAL VOC detection",
        "Faster R-CNN fine-tuned from the encoder (MoCo protocol): VOC metric AP50 / AP / AP75 "
        "on VOC07 test, and the COCO-style box AP.",
        (
            Column("voc07_AP50", "AP50 (VOC)"),
            Column("voc07_AP", "AP (VOC)"),
            Column("voc07_AP75", "AP75 (VOC)"),
            Column("box_AP", "box AP (COCO metric)"),
        ),
        plot="ap_by_method.png",
    ),
    Board(
        "coco_det",
        "COCO detection and instance segmentation",
        "Mask R-CNN fine-tuned from the encoder: box AP and mask AP (COCO metric).",
        (
            *DET_BOXES,
            Column("mask_AP", "mask AP"),
            Column("mask_AP50", "mask AP50"),
            Column("mask_AP75", "mask AP75"),
        ),
        plot="ap_by_method.png",
    ),
)

HOW_TO_READ = "[how to read the tables](README.md#how-to-read-the-tables)"
SHOWN_AXES = ("recipe", "train.batch_size")


def config_cells(group: Group) -> list[str]:
    """model, method (recipe), backbone, epochs, batch, pretraining data of a measured row."""
    pre = group.first.get("pretrain", {}) or {}
    backbone = pre.get("backbone", {}) or {}
    name = backbone.get("name", "?")
    width = backbone.get("width")
    arch = f"{name} w{width}" if width else str(name)
    method = f"{pre.get('method', '?')} ({pre.get('recipe', '?')}){sweep_note(group.first)}"
    if group.random_init:
        return ["random init", f"none ({pre.get('recipe', '?')} backbone)", arch, "–", "–", "–"]
    return [
        "trained",
        method,
        arch,
        length_of(pre).cell,  # the trained length: "20 steps (0.09 ep)" when stopped early
        num(pre.get("batch_size")),
        str(pre.get("dataset", "?")),
    ]


def sweep_note(data: dict[str, Any]) -> str:
    """``, sweep <id>`` for a sweep point, with ``axis=value`` unless a column already shows
    the value (the recipe beside the method, the batch size in its column)."""
    sweep = data.get("sweep")
    if not isinstance(sweep, dict) or not sweep:
        return ""
    note = f", sweep {sweep.get('id')}"
    if sweep.get("axis") not in SHOWN_AXES:
        note += f" ({sweep.get('axis')}={num(sweep.get('value'))})"
    return note


def row_title(group: Group) -> str:
    """A row in words, the title of its detail page."""
    pre = group.first.get("pretrain", {}) or {}
    model, method, arch, epochs, batch, data = config_cells(group)
    if group.random_init:
        recipe = pre.get("recipe", "?")
        return f"random init {arch} ({recipe} backbone), protocol {group.protocol_id}"
    budget = f"{epochs} ep" if epochs.replace(".", "", 1).isdigit() else epochs  # or "20 steps"
    return f"{method}, {arch}, {budget}, batch {batch}, {data}, protocol {group.protocol_id}"


def row_slug(group: Group) -> str:
    """A few words for a row's page name: method (or random init) and backbone."""
    pre = group.first.get("pretrain", {}) or {}
    arch = config_cells(group)[2]
    return f"random init {arch}" if group.random_init else f"{pre.get('method', '?')} {arch}"


def protocol_cell(group: Group) -> str:
    return f"{group.protocol_label} `{group.protocol_id}`"


def stat_cell(group: Group, column: Column) -> str:
    stat = group.stat(column.metric)
    return stat.fmt(column.digits) if stat else "–"


def _best_lr(group: Group) -> str:
    """The lr (and BN) the grid picked, per seed, distinct values."""
    picks = []
    for rec in group.records:
        for _, m in rec.samples:
            if "best_lr" in m:
                picks.append(f"{num(m['best_lr'])}{' +BN' if m.get('best_bn') else ''}")
    return ", ".join(unique(picks)) or "–"


def measured_table(board: Board, groups: list[Group], details: RowPages) -> str:
    """One line per row; its ``runs`` cell links the row's detail page (records, git sha,
    threads, CPU model, precision, device, dates, artifacts); ``n seeds`` names the thread
    counts where the row's records differ in them."""
    headers = ["model", "method (recipe)", "backbone", "epochs", "batch", "pretrain data"]
    headers += ["protocol", "evaluated on", *(c.header for c in board.columns), "n seeds"]
    if board.name == "linear":
        headers.append("picked lr")
    rows = []
    for g in groups:
        row = [*config_cells(g), protocol_cell(g), split_cell(g.first)]
        row += [stat_cell(g, c) for c in board.columns]
        note = threads_note(g.records)  # seeds run with different thread counts: say so
        row.append(f"{g.n} ({note})" if note else str(g.n))
        if board.name == "linear":
            row.append(_best_lr(g))
        cells = list(zip(headers, row, strict=True))
        link = details.link(g.key, row_title(g), cells, g.records, g.superseded, row_slug(g))
        rows.append([*row, link, latest_date(g.records)])
    return table([*headers, "runs", "date"], rows)


def reported_table(rows: list[ReportedRow], columns: tuple[Column, ...]) -> str:
    headers = ["", "source", "method", "setting", "backbone", "pretrain data", "epochs"]
    headers += ["batch", "protocol", *(c.header for c in columns), "note"]
    body = [
        [
            "**reported**",
            r.source,
            r.method,
            r.setting,
            r.backbone,
            r.dataset,
            num(r.epochs) if r.epochs is not None else "–",
            num(r.batch) if r.batch is not None else "–",
            r.protocol,
            *(r.value(c.metric, c.digits) or "–" for c in columns),
            r.note,
        ]
        for r in rows
    ]
    return table(headers, body)


def sources(rows: list[ReportedRow], papers: dict[str, str]) -> str:
    names = unique(r.paper for r in rows)
    return "\n".join(f"- {n}: {papers[n]}" for n in names)


def eval_dataset(group: Group) -> str:
    """The data the number was measured on (the protocol's dataset), for the subsections."""
    data = (group.first.get("protocol") or {}).get("dataset")
    if isinstance(data, dict):
        data = data.get("name")
    return str(data or group.task)


def sort_best_first(groups: list[Group], metric: str) -> list[Group]:
    """Best primary metric first; rows without it last; ties by the stable group key."""

    def key(g: Group) -> tuple[Any, ...]:
        stat = g.stat(metric)
        return (stat is None, -(stat.mean if stat else 0.0), g.key)

    return sorted(groups, key=key)


def render_board(
    board: Board,
    records: list[Record],
    reported: list[ReportedRow],
    papers: dict[str, str],
    paths: Paths,
    plots: set[str],
) -> tuple[str, int]:
    """The page of a transfer board and its number of measured rows."""
    groups = sort_best_first(group_records(records, board.name), board.primary)
    rep = rows_for(reported, board.name)
    parts = [marker(paths), "", f"# {board.title}", "", board.about, ""]
    parts += [
        "Measured rows aggregate the seeds of one configuration (mean ± std, n seeds); "
        f"reported rows are the papers' numbers, in a table of their own; {HOW_TO_READ}.",
        "",
        "## Measured",
        "",
    ]
    details = RowPages(paths, board.name, board.title, board.page)
    for data in sorted({eval_dataset(g) for g in groups}):
        parts += [f"### Evaluated on {data}", ""]
        at = [g for g in groups if eval_dataset(g) == data]
        parts += [measured_table(board, at, details), ""]
        if any(on_training_split(g.first) for g in at):
            parts += [TRAINING_NOTE, ""]
    if board.name == "knn":
        parts += raw_pixels_section(records, details)
    if not groups:
        parts.append(f"Nothing measured yet: no `{board.name}` records in `{paths.results_rel}/`.")
        parts.append("")
    if board.plot and board.plot in plots:
        parts += [f"![AP per pretraining method]({board.plot})", ""]
    parts += ["## Reported by the papers", ""]
    if rep:
        parts += [reported_table(rep, board.columns), "", sources(rep, papers)]
    else:
        parts.append("No reported numbers for this task.")
    details.write()
    return "\n".join(parts) + "\n", len(groups)
