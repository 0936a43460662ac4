"""``selection.md``: label-free selection — does RankMe pick the run kNN would pick?

Garrido et al. (ICML 2023, "RankMe: Assessing the downstream performance of pretrained
self-supervised representations by their rank") define RankMe as the effective rank of the
embeddings, eq. (1): exp of the entropy of the singular values normalised to sum to 1, and
propose it for choosing among runs without labels: keep the run with the highest RankMe
(their Fig. 4), which they find loses almost nothing against choosing by the labels. They
add, under eq. (1), that RankMe compares runs of one method only. This page checks the claim
on the project's own runs, per group of runs that one would choose between:

- **a sweep** (the ``pretrain`` records with a ``sweep`` block): a run is one pretraining
  record, the latest of its sweep id, point and seed. Its RankMe is ``metrics.rankme_eval``
  where every run of the sweep has it, else ``metrics.rankme`` (``pretrain/monitors.py``, on
  the projector's output z at the run's last monitor point). Its labels: the kNN top-1 on h of
  the pretraining's own monitor (``metrics.knn_h``), and the transfer records linked to it —
  the ``knn`` (``top1_k20``) and ``linear`` (``top1``) records with the same sweep id, sweep
  value and seed (the sweep job writes them from the point's run directory with the point's
  seed and the point's ``sweep`` block; random-init records are not runs of the sweep);
- **the collapse-ablation matrix**, one group per run length (steps, batch): a run is one
  ``ablation`` record (the latest per method, variant, length and seed); RankMe is its
  ``effective_rank`` (the last monitor point), the labels its ``knn_h`` and ``knn_z``. A run
  whose z collapsed has RankMe near 1, and where its kNN falls to chance with it RankMe is
  right for free, so each length is reported over all runs and over the healthy runs only
  (the one verdict, ``records.references.judged``, as the collapse-ablation and explanations
  boards read it; ``experiments/rejudge.py`` stores the same in each record's ``verdict``).

Per group and label: n, Spearman's ρ (Pearson's correlation of the average ranks), Kendall's
τ-b (Kendall 1945: ties counted in the denominator), RankMe's pick (the highest RankMe; a tie
goes against RankMe: the tied run with the lowest label), the best run by the label and the
points lost by picking with RankMe. The verdict is worded from those numbers alone
(:func:`verdict_words`). With fewer than ``MIN_RUNS`` runs nothing is correlated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from leaderboards.aggregate import is_random_init
from leaderboards.explanations_board import judge_records
from leaderboards.markdown import Paths, marker, num, table
from leaderboards.protocols import protocol_id
from leaderboards.readme import PageInfo
from leaderboards.record_set import Record, is_number
from leaderboards.sweeps import BATCH_AXIS
from records import verdict as V

PAGE = "selection.md"
TITLE = "Label-free selection: does RankMe pick the run kNN would pick?"
MIN_RUNS = 3  # below this a rank correlation is not reported
WEAK_BELOW = 0.4  # Spearman ρ below this: a weak correlation (below 0: against the label)
STRONG_FROM = 0.7  # Spearman ρ from this: a strong correlation
SEVERAL_POINTS = 2.0  # a pick this many points below the best picks badly
SWEEP_RANKME = ("rankme_eval", "rankme")  # metrics keys, in preference order
SWEEP_LABELS = (  # (task, metric, label); task "pretrain": the pretraining record itself
    ("pretrain", "knn_h", "kNN on h (pretraining monitor)"),
    ("knn", "top1_k20", "kNN top-1 k=20"),
    ("linear", "top1", "linear top-1"),
)
ABLATION_LABELS = (("knn_h", "kNN on h"), ("knn_z", "kNN on z"))
HEADERS = ["group", "label", "n runs", "Spearman ρ", "Kendall τ", "RankMe's pick"]
HEADERS += ["best by the label", "points lost", "verdict"]


@dataclass(frozen=True)
class Run:
    """One run of a group: its name on the page, RankMe, label value and the records behind
    them (the RankMe record first)."""

    name: str
    rankme: float
    label: float
    records: tuple[Record, ...]


@dataclass(frozen=True)
class Selection:
    """What picking by RankMe gives in one group for one label."""

    n: int
    spearman: float | None  # None: fewer than MIN_RUNS runs, or RankMe / label constant
    kendall: float | None
    pick: Run | None  # the highest RankMe (a tie: the lowest label of the tied)
    best: Run | None  # the highest label (a tie: the first in the group's order)
    lost: float | None  # best.label - pick.label, in the label's points
    words: str


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's ρ: Pearson's correlation of the average ranks (ties share their mean
    rank); None when either side is constant or has fewer than two values."""
    rx = pd.Series(list(x), dtype=float).rank(method="average")
    ry = pd.Series(list(y), dtype=float).rank(method="average")
    if len(rx) < 2 or rx.nunique() < 2 or ry.nunique() < 2:
        return None
    return float(rx.corr(ry))


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's τ-b = (concordant − discordant) / √((n0 − ties in x)(n0 − ties in y)),
    n0 = n(n−1)/2 pairs (Kendall 1945); None when either side is constant."""
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            ties_x += dx == 0
            ties_y += dy == 0
            concordant += dx * dy > 0
            discordant += dx * dy < 0
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y))
    return (concordant - discordant) / denominator if denominator > 0 else None


def _sign(d: float) -> int:
    return (d > 0) - (d < 0)


def select(runs: Sequence[Run]) -> Selection:
    """Rank ``runs`` by RankMe against their label: correlations, pick, best, points lost."""
    n = len(runs)
    if n == 0:
        return Selection(0, None, None, None, None, None, "no run has both RankMe and the label")
    pick = max(runs, key=lambda r: (r.rankme, -r.label))  # a tie goes against RankMe
    best = max(runs, key=lambda r: r.label)
    lost = best.label - pick.label
    rho = tau = None
    rankmes, labels = [r.rankme for r in runs], [r.label for r in runs]
    if n >= MIN_RUNS:
        rho, tau = spearman_rho(rankmes, labels), kendall_tau_b(rankmes, labels)
    constant = "RankMe" if len(set(rankmes)) < 2 else "label" if len(set(labels)) < 2 else ""
    return Selection(n, rho, tau, pick, best, lost, verdict_words(n, rho, lost, constant))


def verdict_words(n: int, rho: float | None, lost: float, constant: str = "") -> str:
    """The verdict in words, from n, Spearman's ρ and the points lost alone, as the page
    prints them (ρ to 2 decimals, points to 1): **picks badly** when ρ < ``WEAK_BELOW``
    (below 0: RankMe orders the runs against the label) or the pick is ``SEVERAL_POINTS`` or
    more below the best; ``constant`` names what every run shares when ρ is undefined."""
    lost = round(lost, 1)
    if n < MIN_RUNS:
        return f"too few runs to correlate (n = {n}); {_loss_words(lost)}"
    if rho is None:
        return f"no ranking: every run has the same {constant or 'value'}; {_loss_words(lost)}"
    rho = round(rho, 2)
    reasons = []
    if rho < 0:
        reasons.append(f"RankMe orders the runs against the label (ρ = {_signed(rho)})")
    elif rho < WEAK_BELOW:
        reasons.append(f"weak correlation (ρ = {_signed(rho)})")
    if lost >= SEVERAL_POINTS:
        reasons.append(_loss_words(lost))
    if reasons:
        text = "**picks badly**: " + "; ".join(reasons)
        return text if lost >= SEVERAL_POINTS else f"{text}, though {_loss_words(lost, 'only ')}"
    strength = "strong" if rho >= STRONG_FROM else "moderate"
    return f"picks well: {strength} correlation (ρ = {_signed(rho)}), {_loss_words(lost)}"


def _loss_words(lost: float, only: str = "") -> str:
    if lost <= 0:
        return "its pick is the best run"
    points = f"{lost:.1f} point{'s' * (f'{lost:.1f}' != '1.0')}"
    return f"its pick is {only}{points} below the best"


def _signed(value: float) -> str:
    """``+0.83`` / ``−0.40`` (a true minus sign; never ``-0.00``)."""
    text = f"{value:+.2f}"
    return "0.00" if text in ("+0.00", "-0.00") else text.replace("-", "−")


def _cell(value: float | None) -> str:
    return _signed(value) if value is not None else "–"


def _run_cell(run: Run | None, paths: Paths) -> str:
    if run is None:
        return "–"
    links = ", ".join(f"[{r.task}]({paths.link(r)})" for r in run.records)
    return f"{run.name}: RankMe {run.rankme:.1f}, label {run.label:.1f} ({links})"


def _row(group: str, label: str, sel: Selection, paths: Paths) -> list[str]:
    return [
        group,
        label,
        str(sel.n),
        _cell(sel.spearman),
        _cell(sel.kendall),
        _run_cell(sel.pick, paths),
        _run_cell(sel.best, paths),
        f"{sel.lost:.1f}" if sel.lost is not None else "–",
        sel.words,
    ]


def _order(record: Record) -> tuple[str, str]:
    return (str(record.data.get("finished_at") or record.data.get("date") or ""), record.run_id)


def _latest(items: list[tuple[Any, Record, Any]]) -> dict[Any, tuple[Record, Any]]:
    """The latest record (finish time, then run id) per key of ``(key, record, payload)``."""
    out: dict[Any, tuple[Record, Any]] = {}
    for key, record, payload in sorted(items, key=lambda t: _order(t[1])):
        out[key] = (record, payload)
    return out


# --- sweeps ------------------------------------------------------------------------------


def _sweep(data: dict[str, Any]) -> dict[str, Any]:
    sweep = data.get("sweep")
    return sweep if isinstance(sweep, dict) else {}


def _point_key(data: dict[str, Any], seed: Any) -> tuple[str, str, str]:
    sweep = _sweep(data)
    return (str(sweep.get("id")), json.dumps(sweep.get("value"), sort_keys=True), str(seed))


def _value_order(value: Any) -> tuple[int, float, str]:
    if is_number(value):
        return (0, float(value), "")
    return (1, 0.0, json.dumps(value, sort_keys=True, default=str))


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its pretraining record, seed and that seed's metrics."""

    record: Record
    seed: Any
    metrics: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        return _point_key(self.record.data, self.seed)

    @property
    def name(self) -> str:
        sweep = _sweep(self.record.data)
        point = sweep.get("point") or f"{sweep.get('axis')}={num(sweep.get('value'))}"
        return f"{point} s{self.seed}"


Getter = Callable[[SweepRun], "tuple[Record, float] | None"]


def sweep_runs(records: list[Record]) -> dict[tuple[str, str], list[SweepRun]]:
    """Per sweep (axis, id), batch size first: its runs in value then seed order; a sweep
    known only from transfer records has none."""
    tasks = {t for t, _, _ in SWEEP_LABELS}
    pre, sweeps = [], {}
    for r in records:
        sweep = _sweep(r.data)
        if not sweep or is_random_init(r.data) or r.task not in tasks:
            continue
        sweeps.setdefault((str(sweep.get("axis")), str(sweep.get("id"))), [])
        if r.task == "pretrain":
            pre += [(_point_key(r.data, seed), r, SweepRun(r, seed, m)) for seed, m in r.samples]
    for _, run in _latest(pre).values():
        sweep = _sweep(run.record.data)
        sweeps[(str(sweep.get("axis")), str(sweep.get("id")))].append(run)
    return {
        k: sorted(v, key=lambda run: (_value_order(_sweep(run.record.data).get("value")),
                                      str(run.seed)))
        for k, v in sorted(sweeps.items(), key=lambda kv: (kv[0][0] != BATCH_AXIS, kv[0]))
    }  # fmt: skip


def transfer_labels(
    records: list[Record], task: str, metric: str
) -> dict[str, dict[tuple[str, str, str], tuple[Record, float]]]:
    """Per protocol id: the latest ``task`` record's ``metric`` per (sweep id, value, seed)."""
    items = [
        ((protocol_id(r.data.get("protocol", {})), _point_key(r.data, seed)), r, m.get(metric))
        for r in records
        if r.task == task and _sweep(r.data) and not is_random_init(r.data)
        for seed, m in r.samples
    ]
    out: dict[str, dict[tuple[str, str, str], tuple[Record, float]]] = {}
    for (pid, key), (record, value) in _latest(items).items():
        if is_number(value):
            out.setdefault(pid, {})[key] = (record, float(value))
    return out


def _rankme_key(runs: list[SweepRun]) -> str:
    """``rankme_eval`` where every run has it, else ``rankme``."""
    for key in SWEEP_RANKME:
        if runs and all(is_number(run.metrics.get(key)) for run in runs):
            return key
    return SWEEP_RANKME[-1]


def _columns(records: list[Record], runs: list[SweepRun]) -> list[tuple[str, Getter]]:
    """A sweep's labels: its own monitor's, then each transfer label its runs have (one per
    protocol id, named by it where the sweep's records were measured several ways)."""
    columns: list[tuple[str, Getter]] = []
    for task, metric, label in SWEEP_LABELS:
        if task == "pretrain":
            columns.append((label, _own(metric)))
            continue
        by_protocol = transfer_labels(records, task, metric)
        mine = sorted(p for p, found in by_protocol.items() if any(r.key in found for r in runs))
        for pid in mine:
            name = f"{label} (protocol {pid})" if len(mine) > 1 else label
            columns.append((name, _linked(by_protocol[pid])))
    return columns


def _own(metric: str) -> Getter:
    def get(run: SweepRun) -> tuple[Record, float] | None:
        value = run.metrics.get(metric)
        return (run.record, float(value)) if is_number(value) else None

    return get


def _linked(found: dict[tuple[str, str, str], tuple[Record, float]]) -> Getter:
    def get(run: SweepRun) -> tuple[Record, float] | None:
        return found.get(run.key)

    return get


def sweep_rows(records: list[Record], paths: Paths) -> tuple[list[list[str]], list[str]]:
    """The sweeps' table rows (one per sweep and label) and each sweep's runs table."""
    rows, details = [], []
    for (axis, sweep_id), runs in sweep_runs(records).items():
        group = f"`{sweep_id}` ({axis})"
        if not runs:
            words = "no pretraining record of this sweep: no RankMe to pick with"
            rows.append([group, "–", "0", "–", "–", "–", "–", "–", words])
            continue
        rank_key = _rankme_key(runs)
        columns = _columns(records, runs)
        for label, get in columns:
            group_runs = []
            for run in runs:
                found = get(run)
                if found is not None and is_number(run.metrics.get(rank_key)):
                    recs = (run.record,) if found[0] is run.record else (run.record, found[0])
                    rank = float(run.metrics[rank_key])
                    group_runs.append(Run(run.name, rank, found[1], recs))
            rows.append(_row(group, label, select(group_runs), paths))
        details.append(_runs_table(axis, sweep_id, runs, rank_key, columns, paths))
    return rows, details


def _runs_table(
    axis: str,
    sweep_id: str,
    runs: list[SweepRun],
    rank_key: str,
    columns: list[tuple[str, Getter]],
    paths: Paths,
) -> str:
    """One line per run of a sweep: RankMe, its rank (1 = RankMe's pick), every label, the
    records."""
    values = [run.metrics.get(rank_key) for run in runs]
    ranks = pd.Series([float(v) if is_number(v) else math.nan for v in values])
    ranks = ranks.rank(ascending=False, method="min")
    headers = ["run", f"RankMe (`{rank_key}`)", "rank by RankMe", *(c for c, _ in columns)]
    headers.append("records")
    rows = []
    for run, rank in zip(runs, ranks, strict=True):
        found = [get(run) for _, get in columns]
        recs = list({r.path: r for r in [run.record, *(f[0] for f in found if f)]}.values())
        value = run.metrics.get(rank_key)
        rows.append(
            [
                run.name,
                num(value, 1) if is_number(value) else "–",
                "–" if math.isnan(rank) else str(int(rank)),
                *(f"{f[1]:.1f}" if f is not None else "–" for f in found),
                ", ".join(f"[{r.task}]({paths.link(r)})" for r in recs),
            ]
        )
    return f"#### `{sweep_id}` ({axis}): the runs\n\n" + table(headers, rows)


# --- the collapse-ablation matrix -----------------------------------------------------------


def ablation_groups(records: list[Record]) -> dict[tuple[Any, Any], list[Record]]:
    """Per (steps, batch): the latest ablation record per method, variant and seed."""
    items = [
        ((r.data.get("steps"), r.data.get("batch_size"), r.data.get("method"),
          r.data.get("variant"), r.data.get("seed")), r, None)
        for r in records
        if r.task == "ablation"
    ]  # fmt: skip
    groups: dict[tuple[Any, Any], list[Record]] = {}
    for key, (record, _) in sorted(_latest(items).items(), key=lambda kv: kv[1][0].path):
        groups.setdefault(key[:2], []).append(record)
    return dict(sorted(groups.items(), key=lambda kv: tuple(map(_value_order, kv[0]))))


def ablation_rows(records: list[Record], paths: Paths) -> tuple[list[list[str]], list[str]]:
    """The matrix's table rows (all runs, then the healthy ones, per length and label) and a
    sentence per length comparing the two."""
    verdicts = judge_records(records)
    rows, notes = [], []
    for (steps, batch), recs in ablation_groups(records).items():
        healthy = [r for r in recs if verdicts[r.path].outcome == V.HEALTHY]
        length = f"{num(steps)} steps, batch {num(batch)}"
        for key, label in ABLATION_LABELS:
            found: dict[str, Selection] = {}
            for subset, chosen in (("all runs", recs), ("healthy runs", healthy)):
                runs = [
                    Run(
                        f"{r.data.get('method')} {r.data.get('variant')} s{r.data.get('seed')}",
                        float(r.data["effective_rank"]),
                        float(r.data[key]),
                        (r,),
                    )
                    for r in chosen
                    if is_number(r.data.get("effective_rank")) and is_number(r.data.get(key))
                ]
                found[subset] = sel = select(runs)
                rows.append(_row(f"{length}: {subset}", label, sel, paths))
            notes.append(_compare(length, label, found["all runs"], found["healthy runs"]))
    return rows, notes


def _compare(length: str, label: str, every: Selection, healthy: Selection) -> str:
    """One sentence: the correlation over all runs against the healthy runs only."""

    def rho(sel: Selection) -> str:
        return f"ρ = {_signed(sel.spearman)}" if sel.spearman is not None else "no ρ"

    text = (
        f"{length}, {label}: {rho(every)} over all {every.n} runs, {rho(healthy)} over the "
        f"{healthy.n} healthy runs"
    )
    if every.spearman is not None and healthy.spearman is not None:
        change = round(healthy.spearman, 2) - round(every.spearman, 2)
        if abs(change) < 0.2:
            text += ": about the same without the runs that are not healthy"
        else:
            way = "falls" if change < 0 else "rises"
            text += f": without the runs that are not healthy ρ {way} by {abs(change):.2f}"
    return text + "."


# --- the page ------------------------------------------------------------------------------


def _methods(recs: list[Record]) -> list[str]:
    return sorted({str((r.data.get("pretrain") or {}).get("method") or r.data.get("method"))
                   for r in recs})  # fmt: skip


def render_selection(records: list[Record], paths: Paths) -> tuple[str, PageInfo]:
    """The page and its entry in the boards' index (measured rows: the tables' rows)."""
    sweep_table, details = sweep_rows(records, paths)
    ablation_table, notes = ablation_rows(records, paths)
    parts = [marker(paths), "", f"# {TITLE}", ""]
    parts += [
        'Garrido et al. (ICML 2023, "RankMe") propose the effective rank of the embeddings '
        "(their eq. 1) as a label-free way to choose among runs: keep the run with the highest "
        "RankMe (their Fig. 4). Here each group of runs one would choose between is ranked by "
        "RankMe and compared with the labels: Spearman's ρ and Kendall's τ-b between RankMe "
        "and the label, the run RankMe picks (the highest RankMe; a tie counts against it), "
        "the best run by the label, and the points the label loses by picking with RankMe. "
        f"The verdict follows from the numbers: **picks badly** when ρ < {WEAK_BELOW} "
        f"(negative: RankMe orders the runs against the label) or the pick is "
        f"{SEVERAL_POINTS:g} points or more below the best; picks well otherwise (strong from "
        f"ρ = {STRONG_FROM}). Fewer than {MIN_RUNS} runs: too few runs to correlate, no "
        "number. RankMe is the collapse monitor's (`pretrain/monitors.py`), on the "
        "projector's output z at the run's last monitor point. A run is one seed: with one "
        "seed per point, the label's differences between runs include run-to-run noise.",
        "",
        "## Sweeps",
        "",
    ]
    if sweep_table:
        parts += [
            "A run is one pretraining record of the sweep; its labels are its own monitor's "
            "kNN on h and the kNN and linear records written from the same sweep point and "
            "seed (same sweep id, value and seed).",
            "",
            table(HEADERS, sweep_table),
            "",
        ]
        mixed = _mixed_sweeps(records)
        if mixed:
            parts += [mixed, ""]
        for md in details:
            parts += [md, ""]
    else:
        parts += [f"No sweep records in `{paths.results_rel}/` yet.", ""]
    parts += ["## The collapse-ablation matrix", ""]
    if ablation_table:
        parts += [
            "One group per run length, every method and variant of the "
            "[collapse-ablation board](collapse_ablation.md) together (one run per seed). "
            "A run whose z collapsed has RankMe near 1; where its kNN falls to chance with it, "
            "RankMe is right about it for free. So each length is reported over all runs and "
            "over the runs whose verdict is healthy only (the verdict the collapse-ablation "
            "board shows), with n for each; n counts each seed as a run. The groups mix "
            "methods, which Garrido et al. compare only within one.",
            "",
            table(HEADERS, ablation_table),
            "",
            *(f"- {note}" for note in notes),
            "",
        ]
    else:
        parts += [f"No ablation records in `{paths.results_rel}/` yet.", ""]
    measured = len(sweep_table) + len(ablation_table)
    return "\n".join(parts).rstrip("\n") + "\n", PageInfo(PAGE, TITLE, measured, 0)


def _mixed_sweeps(records: list[Record]) -> str:
    """A sentence naming the sweeps whose runs span several methods (Garrido et al., under
    their eq. 1: compare runs of one method only)."""
    mixed = []
    for (_, sweep_id), runs in sweep_runs(records).items():
        methods = _methods([run.record for run in runs])
        if len(methods) > 1:
            mixed.append(f"`{sweep_id}` ({', '.join(methods)})")
    if not mixed:
        return ""
    return (
        "Sweeps whose runs are different methods: " + ", ".join(mixed) + ". Garrido et al. "
        "(under their eq. 1) use RankMe to compare runs of one method only."
    )
