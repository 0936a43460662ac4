"""The collapse-ablation board: a view of the explanations board's records and verdicts.

One row per variant and run length (the seeds of the same method, steps and batch): mean ±
std of the final monitors (z-std × √d and m_o in eval mode where every seed logs them, RankMe,
kNN on z and h, kNN on h at init, r/o of the bank's z), each seed's outcome from the one
verdict (``records.references.judged``, the same the explanations board reads; no flag stored in
a record is read), how many seeds show what the variant's source reports
(``records/explanations.py``'s ``expect``), and the variant's kind on the explanations board.
The reported table beside it holds the papers' linear top-1 of the same ablations (SimSiam
Fig. 2, Tables 1 and 3; BYOL Table 5a).
"""

from __future__ import annotations

import json
import statistics

from leaderboards.aggregate import Stat
from leaderboards.boards import HOW_TO_READ, Column, sources
from leaderboards.explanations_board import SHORT, judge_records
from leaderboards.markdown import Paths, marker, num, provenance, run_links, table, unique
from leaderboards.plots import collapse_curves_plot
from leaderboards.record_set import Record
from leaderboards.reported import ReportedRow, rows_for
from records import verdict as V
from records.explanations import BY_NAME

PLOT = "collapse_curves.png"
EXPLANATIONS_PAGE = "explanations.md"
NUMBERS = (  # (keys in preference order, header, digits)
    (("z_std_sqrt_d_eval", "z_std_sqrt_d"), "z-std × √d", 3),
    (("effective_rank",), "RankMe", 1),
    (("m_o_eval", "m_o"), "m_o", 2),
    (("knn_z",), "kNN z", 1),
    (("knn_h",), "kNN h", 1),
    (("init_knn_h",), "init kNN h", 1),
    (("r_over_o_eval",), "r/o", 2),
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


def _stat(recs: list[Record], keys: tuple[str, ...], digits: int) -> str:
    """mean ± std of the first key every record has as a number; "–" when none does."""
    for key in keys:
        if all(V.is_finite_number(r.data.get(key)) for r in recs):
            values = [float(r.data[key]) for r in recs]
            std = statistics.stdev(values) if len(values) > 1 else None
            cell = Stat(statistics.fmean(values), std, len(values)).fmt(digits)
            return cell + (" (eval)" if key.endswith("_eval") and "r_over" not in key else "")
    return "–"


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
    verdicts = judge_records(records)
    headers = ["variant", "method", "what its source reports", "source", "steps", "batch"]
    headers += ["n seeds", *(h for _, h, _ in NUMBERS)]
    headers += ["seeds' outcomes", "as the source reports", "on the explanations board"]
    headers += ["runs", "git", "date"]
    rows, curves, knn_protocols = [], {}, []
    longest: dict[tuple, int] = {}
    for method, variant, steps, _ in groups:
        if isinstance(steps, int):
            longest[(method, variant)] = max(steps, longest.get((method, variant), 0))
    for key in sorted(groups, key=_row_order):
        used, superseded = _latest_per_seed(groups[key])
        first = used[0].data
        n = len(used)
        var = BY_NAME.get(first["variant"])
        outcomes = [verdicts[r.path].outcome for r in used]
        seen = ", ".join(
            f"{SHORT.get(o, o)} {outcomes.count(o)}/{n}" for o in dict.fromkeys(outcomes)
        )
        if var is not None and var.expect:
            reports = f"{' or '.join(var.expect)}: {var.claim}"
            matches = f"{sum(o in var.expect for o in outcomes)}/{n}"
            kind = f"[{var.kind}]({EXPLANATIONS_PAGE})"
        else:
            reports = var.claim if var is not None else str(first.get("claim", "–"))
            matches, kind = "–", (f"[{var.kind}]({EXPLANATIONS_PAGE})" if var else "–")
        rows.append(
            [
                first["variant"],
                first["method"],
                reports,
                var.source if var is not None else first.get("source", "?"),
                num(first.get("steps")),
                num(first.get("batch_size")),
                str(n),
                *(_stat(used, keys, d) for keys, _, d in NUMBERS),
                seen,
                matches,
                kind,
                run_links(paths, used, superseded),
                *provenance(used)[0:1],
                provenance(used)[2],
            ]
        )
        with_curves = [r.data["curve"] for r in used if r.data.get("curve")]
        if with_curves and first.get("steps") == longest.get((first["method"], first["variant"])):
            curves[f"{first['method']}/{first['variant']}"] = with_curves
        kp = first.get("knn_protocol")
        if kp:
            knn_protocols.append(json.dumps(kp, sort_keys=True))
    rep = rows_for(reported, "collapse_ablation")
    parts = [marker(paths), "", "# Collapse ablations", ""]
    parts += [
        "Each variant removes or changes one piece of SimSiam (or BYOL, MoCo v3, DINO). This "
        "page is a view of the same records and the same verdicts as the "
        f"[explanations board]({EXPLANATIONS_PAGE}), which says what each explanation of "
        "non-collapse predicts for each variant and what follows. The monitors are taken at the "
        "end of training (mean ± std over seeds): z-std × √d (≈1 healthy, →0 collapsed; eval "
        "mode where logged), RankMe effective rank, m_o (the batch center's share of z), kNN "
        "top-1 on z and on h, kNN on h at random init, and r/o (the residual's size over the "
        "center's, median over the bank; cosine kNN on z still resolves the residual's "
        "direction while it is well above 1e-4). `seeds' outcomes`: each seed's verdict "
        "(`records/verdict.py`: complete or dimensional collapse, failed to converge, healthy, "
        "borderline; over the last fifth of the run, with the method's healthy reference at "
        "the same length). `as the source reports`: seeds whose outcome is the one the "
        "variant's source reports. " + HOW_TO_READ + ".",
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
