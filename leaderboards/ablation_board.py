"""The collapse-ablation board: one row per variant of ``experiments/ablate.py``'s matrix.

A row aggregates the seeds of a variant (same method, steps, batch): mean ± std of the final
monitors (z-std × √d, RankMe, m_o, kNN on z and h, kNN on h at init), how many seeds
collapsed and how many reproduced the paper's claim, and why the others did not. The
reported table beside it holds the papers' linear top-1 of the same ablations (SimSiam Fig. 2,
Tables 1 and 3; BYOL Table 5a).
"""

from __future__ import annotations

import json
import statistics

from leaderboards.aggregate import Stat
from leaderboards.boards import HOW_TO_READ, Column, sources
from leaderboards.markdown import Paths, marker, num, provenance, run_links, table, unique
from leaderboards.plots import collapse_curves_plot
from leaderboards.record_set import Record
from leaderboards.reported import ReportedRow, rows_for

PLOT = "collapse_curves.png"
NUMBERS = (
    ("z_std_sqrt_d", "z-std × √d", 3),
    ("effective_rank", "rank", 1),
    ("m_o", "m_o", 2),
    ("knn_z", "kNN z", 1),
    ("knn_h", "kNN h", 1),
    ("init_knn_h", "init kNN h", 1),
)


def _key(data: dict) -> tuple:
    return (data["method"], data["variant"], data.get("steps"), data.get("batch_size"))


def _latest_per_seed(recs: list[Record]) -> tuple[list[Record], list[Record]]:
    """One record per seed (the latest), and the superseded ones."""
    by_seed: dict[int, Record] = {}
    for r in sorted(recs, key=lambda r: (str(r.data.get("date") or ""), r.run_id)):
        by_seed[r.data["seed"]] = r
    used = sorted(by_seed.values(), key=lambda r: r.path)
    return used, sorted((r for r in recs if r not in used), key=lambda r: r.path)


def _stat(recs: list[Record], key: str) -> Stat:
    values = [float(r.data[key]) for r in recs]
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values))


def _row_order(key: tuple) -> tuple:
    method, variant, steps, batch = key
    return (method, variant, json.dumps([steps, batch]))


def render_ablation(
    records: list[Record],
    reported: list[ReportedRow],
    papers: dict[str, str],
    paths: Paths,
) -> tuple[str, int, list[str]]:
    """The collapse-ablation page, its number of measured rows and the PNGs it wrote."""
    groups: dict[tuple, list[Record]] = {}
    for r in records:
        if r.task == "ablation":
            groups.setdefault(_key(r.data), []).append(r)
    headers = ["variant", "method", "claim", "source", "steps", "batch", "n seeds"]
    headers += [h for _, h, _ in NUMBERS]
    headers += ["collapsed", "reproduced", "not reproduced because", "runs", "git", "date"]
    rows, curves, knn_protocols = [], {}, []
    for key in sorted(groups, key=_row_order):
        used, superseded = _latest_per_seed(groups[key])
        first = used[0].data
        n = len(used)
        reasons = [
            f"seed {r.data['seed']}: {why}"
            for r in used
            for why in r.data.get("not_reproduced_because") or []
        ]
        claim = f"{first['expect']}: {first.get('claim', '')}".rstrip(": ")
        rows.append(
            [
                first["variant"],
                first["method"],
                claim,
                first.get("source", "?"),
                num(first.get("steps")),
                num(first.get("batch_size")),
                str(n),
                *(_stat(used, k).fmt(d) for k, _, d in NUMBERS),
                f"{sum(r.data['collapsed'] for r in used)}/{n}",
                f"{sum(r.data['reproduced'] for r in used)}/{n}",
                "<br>".join(reasons) or "–",
                run_links(paths, used, superseded),
                *provenance(used)[0:1],
                provenance(used)[2],
            ]
        )
        with_curves = [r.data["curve"] for r in used if r.data.get("curve")]
        if with_curves:
            curves[f"{first['method']}/{first['variant']}"] = with_curves
        kp = first.get("knn_protocol")
        if kp:
            knn_protocols.append(json.dumps(kp, sort_keys=True))
    rep = rows_for(reported, "collapse_ablation")
    parts = [marker(paths), "", "# Collapse ablations", ""]
    parts += [
        "Each variant removes or changes one piece of SimSiam (or BYOL / MoCo v3) and states "
        "the paper's claim: `collapse` or `no_collapse`. The monitors are taken at the end of "
        "training (mean ± std over seeds): z-std × √d (≈1 healthy, →0 collapsed), RankMe "
        "effective rank, m_o (the batch center's share of z), kNN top-1 on z and on h, and kNN "
        "on h at random init. `reproduced k/n`: seeds whose run agreed with the claim; the "
        "reasons list what failed on the others. " + HOW_TO_READ + ".",
        "",
        "## Measured",
        "",
    ]
    if rows:
        parts += [table(headers, rows), ""]
        for kp in unique(knn_protocols):
            p = json.loads(kp)
            parts.append(
                f"kNN monitor: bank {num(p.get('bank'))} training images, "
                f"{num(p.get('queries'))} test queries, k={num(p.get('k'))}, T={num(p.get('t'))}."
            )
        parts.append("")
    else:
        parts += [f"Nothing measured yet: no `ablation` records in `{paths.results_rel}/`.", ""]
    plots = []
    if curves:
        has_z = any(r.get("knn_z") is not None for cs in curves.values() for c in cs for r in c)
        collapse_curves_plot(curves, "knn_z" if has_z else "knn_h", paths.out / PLOT)
        plots.append(PLOT)
        parts += [f"![collapse curves per variant]({PLOT})", ""]
    elif rows:
        parts += ["No training curves in these records (no `curve` key): no plot.", ""]
    parts += ["## Reported by the papers", ""]
    if rep:
        rep_headers = ["", "source", "method", "setting", "matching variant", "backbone"]
        rep_headers += ["pretrain data", "epochs", "batch", "linear top-1", "note"]
        col = Column("top1", "linear top-1")
        rep_rows = [
            [
                "**reported**",
                r.source,
                r.method,
                r.setting,
                r.variant or "–",
                r.backbone,
                r.dataset,
                num(r.epochs) if r.epochs is not None else "–",
                num(r.batch) if r.batch is not None else "–",
                r.value(col.metric) or "–",
                r.note,
            ]
            for r in rep
        ]
        parts += [table(rep_headers, rep_rows), "", sources(rep, papers)]
    else:
        parts.append("No reported numbers for these ablations.")
    return "\n".join(parts) + "\n", len(rows), plots
