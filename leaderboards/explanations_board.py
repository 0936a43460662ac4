"""The explanations board: which explanation of non-collapse do the experiments tell apart?

``python leaderboards/explanations_board.py`` writes ``explanations.md`` and its plots
(``explanations_<name>.png``, and ``explanations_dino_teacher.png``) only;
``leaderboards/build.py`` renders it with every board.

Everything it states comes from two places: the science as data (``records/explanations.py``:
the explanations, their atomic claims, what each predicts for every experiment, the judging and
labelling rules) and one verdict per run (``records.references.judged``: ``records/verdict.py``'s
outcome with the run's healthy reference; the collapse-ablation page reads the same). No flag
stored in a record is read.

- An experiment (a variant) is judged at its longest run length that has all seeds; shorter
  lengths are shown as history. A variant whose baseline (the unablated recipe at the same
  length) is not healthy on every seed is inconclusive: there is nothing to compare it with.
- A variant judged on z and p (``on``) takes each seed's more collapsed outcome of the two;
  without p monitors it is inconclusive ("p not monitored").
- Per explanation: its atomic claims, each experiment with what it and its rivals predicted and
  what happened, the tally of discriminating experiments, and the label that follows from it
  (``records.explanations.label``), always "at this scale" with the scale named.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from leaderboards import dino_modes_section
from leaderboards.markdown import Paths, marker, table
from leaderboards.plots import explanation_curves_plot
from leaderboards.record_set import Record, read_records
from records import explanations as X
from records import references
from records import verdict as V
from records.errors import RecordError

PAGE = "explanations.md"
ABLATION_PAGE = "collapse_ablation.md"
MAX_PLOTTED = 8  # lines per panel (leaderboards/README.md)
LEARNED_LITTLE_BELOW = 5.0  # kNN-on-h points over the random init: a baseline that learned little
SEVERITY = (V.COMPLETE, V.DIMENSIONAL, V.FAILED, V.HEALTHY)  # most collapsed first
SHORT = {
    V.COMPLETE: "complete",
    V.DIMENSIONAL: "dimensional",
    V.FAILED: "failed",
    V.HEALTHY: "healthy",
    V.BORDERLINE: "borderline",
}


def plot_name(explanation: X.Explanation) -> str:
    return f"explanations_{explanation.name}.png"


def plot_names() -> list[str]:
    """Every PNG the page may write (one per explanation, and DINO's teacher plot)."""
    return [plot_name(ex) for ex in X.EXPLANATIONS] + [dino_modes_section.PLOT]


def by_variant(records: list[Record]) -> dict[str, dict[int, list[Record]]]:
    """variant -> steps -> the latest record per seed (in seed order)."""
    out: dict[str, dict[int, dict[int, Record]]] = {}
    for r in sorted(records, key=lambda r: (str(r.data.get("date") or ""), r.path)):
        if r.task != "ablation":
            continue
        d = r.data
        out.setdefault(d["variant"], {}).setdefault(_steps(d), {})[d["seed"]] = r
    return {
        v: {s: [per[k] for k in sorted(per)] for s, per in by_steps.items()}
        for v, by_steps in out.items()
    }


def _has_p(record: dict) -> bool:
    return bool(V.monitor_points(V.record_trace(record), "p")[0])


def judge_records(records: list[Record], on: str = "z") -> dict[str, V.Verdict]:
    """``records.references.judged`` over the ablation records, keyed by each record's file
    (its ``path``: unique, where two files may carry the same run_id)."""
    data = [
        {**r.data, "run_id": r.path, "steps": _steps(r.data)}
        for r in records
        if r.task == "ablation"
    ]
    return references.judged(data, on=on)


def _steps(data: dict) -> int:
    """A record's run length as the boards group it (0 where it does not say)."""
    steps = data.get("steps")
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else 0


def verdicts(records: list[Record]) -> tuple[dict[str, V.Verdict], dict[str, V.Verdict]]:
    """Every ablation record's verdict on z, and on p where p is monitored, by path
    (``records.references.judged``: the one verdict, with the run's healthy reference)."""
    on_z = judge_records(records)
    try:
        on_p = judge_records([r for r in records if _has_p(r.data)], on="p")
    except RecordError:  # a record whose p readings are not numbers: p is not judged
        on_p = {}
    return on_z, on_p


def _span(values: Sequence[float], fmt: str = ".2f") -> str:
    lo, hi = min(values), max(values)
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}–{hi:{fmt}}"


def why_borderline(verdicts: Sequence[V.Verdict]) -> str:
    """What the borderline verdicts straddle, measured over all of them: one clause per
    question left open ("complete collapse vs healthy: m_o 0.93–0.95 straddles 0.95")."""
    clauses: dict[tuple[str, ...], dict[str, list[float]]] = {}
    for v in verdicts:
        if v.outcome != V.BORDERLINE or not v.between:
            continue
        readings = clauses.setdefault(v.between, {})
        if V.COMPLETE in v.between:
            for x in v.votes:
                if x.vote == V.STRADDLES:
                    name = f"{x.name}{' (eval)' if x.key.endswith('_eval') else ''}"
                    readings.setdefault(f"{name}|{x.threshold:g}", []).extend(x.values)
        elif V.DIMENSIONAL in v.between:
            readings.setdefault(f"RankMe ratio|{V.DIM_RATIO:g}", []).extend(v.rank_ratio)
        elif V.FAILED in v.between:
            readings.setdefault("loss gap left|", []).extend(v.loss_gap)
            readings.setdefault("kNN on h vs init (points)|", []).extend(v.knn_delta)
    out = []
    for between, readings in clauses.items():
        parts = []
        for key, values in readings.items():
            if not values:
                continue
            name, threshold = key.split("|")
            fmt = "+.1f" if name.startswith("kNN") else ".3g"
            if name in ("RankMe ratio", "loss gap left"):
                fmt = ".2f"
            parts.append(
                f"{name} {_span(values, fmt)}" + (f" straddles {threshold}" if threshold else "")
            )
        what = " vs ".join(between)
        out.append(f"{what}: {', '.join(parts)}" if parts else what)
    return "; ".join(out)


def combined(z: V.Verdict, p: V.Verdict | None) -> str:
    """A seed's outcome judged on z and p: the more collapsed of the two. A borderline verdict
    stands for each outcome it lies between; the seed is borderline only when that choice
    changes the answer (z between dimensional collapse and healthy beside a completely
    collapsed p is a complete collapse either way)."""
    choices = []
    for v in (z, p):
        if v is None:
            continue
        if v.outcome != V.BORDERLINE:
            choices.append((v.outcome,))
        elif v.between and set(v.between) <= set(SEVERITY):
            choices.append(v.between)
        else:
            return V.BORDERLINE
    worst = {min(pick, key=SEVERITY.index) for pick in itertools.product(*choices)}
    return worst.pop() if len(worst) == 1 else V.BORDERLINE


@dataclass
class Experiment:
    """One variant judged: its records at the judged length, their verdicts, the judgements."""

    variant: X.ExplanationVariant
    steps: int = 0  # the judged length (0: not run)
    records: list[Record] = field(default_factory=list)
    z: list[V.Verdict] = field(default_factory=list)
    p: list[V.Verdict | None] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    gate: str = ""  # why it cannot be judged at all (baseline, p not monitored)
    judgements: dict[str, X.Judgement] = field(default_factory=dict)
    history: list[tuple[int, list[str]]] = field(default_factory=list)  # shorter lengths

    @property
    def run(self) -> bool:
        return bool(self.records)


def _judged_length(lengths: dict[int, list[Record]]) -> int:
    full = [s for s, recs in lengths.items() if len(recs) >= X.SEEDS]
    return max(full) if full else max(lengths)


def _outcomes(recs: list[Record], on_z: dict, on_p: dict, on: tuple[str, ...]) -> list[str]:
    zs = [on_z[r.path] for r in recs]
    if "p" not in on:
        return [v.outcome for v in zs]
    return [combined(z, on_p.get(r.path)) for r, z in zip(recs, zs, strict=True)]


def experiments(records: list[Record]) -> dict[str, Experiment]:
    """Every variant of ``records.explanations.VARIANTS`` judged for every explanation."""
    grouped = by_variant(records)
    on_z, on_p = verdicts(records)
    out: dict[str, Experiment] = {}
    for var in X.VARIANTS:
        ex = Experiment(var)
        out[var.name] = ex
        lengths = grouped.get(var.name, {})
        if not lengths:
            continue
        ex.steps = _judged_length(lengths)
        ex.records = lengths[ex.steps]
        ex.z = [on_z[r.path] for r in ex.records]
        ex.p = [on_p.get(r.path) for r in ex.records]
        ex.outcomes = _outcomes(ex.records, on_z, on_p, var.on)
        ex.history = [
            (s, _outcomes(lengths[s], on_z, on_p, var.on)) for s in sorted(lengths) if s != ex.steps
        ]
        if "p" in var.on and any(p is None for p in ex.p):
            n = sum(p is None for p in ex.p)
            on_z_only = counts([v.outcome for v in ex.z])
            why = why_borderline(ex.z)
            ex.gate = (
                f"p not monitored ({n} of {len(ex.p)} seeds' records have no p readings); on z "
                f"alone: {on_z_only}" + (f" ({why})" if why else "")
            )
        base = grouped.get(var.baseline, {}).get(ex.steps, []) if var.baseline else None
        if base is not None and not ex.gate:
            base_out = [on_z[r.path].outcome for r in base]
            if len(base) < X.SEEDS or any(o != V.HEALTHY for o in base_out):
                seen = ", ".join(base_out) or "no runs"
                ex.gate = (
                    f"the baseline `{var.baseline}` at {ex.steps} steps is not healthy on "
                    f"{X.SEEDS} seeds ({seen}){_knn_vs_init(base)}: nothing to compare with"
                )
        ps = [p for p in ex.p if p is not None] if "p" in var.on else []
        details = [why_borderline(ex.z)] + ([f"p: {why_borderline(ps)}"] if ps else [])
        details = ["; ".join(d for d in details if d and d != "p: ")] * len(ex.outcomes)
        for name, pred in var.predictions:
            if ex.gate and pred.predicts:
                ex.judgements[name] = X.Judgement(X.INCONCLUSIVE, ex.gate)
            else:
                ex.judgements[name] = X.judge_seeds(
                    pred, ex.outcomes, details, between=_between(ex)
                )
    return out


def _between(ex: Experiment) -> list[tuple[str, ...]]:
    """Per seed, the outcomes its borderline verdict lies between (z's; a seed judged on z
    and p whose combined outcome is borderline is left open)."""
    if "p" in ex.variant.on:
        return [() for _ in ex.outcomes]
    return [tuple(v.between) if v.outcome == V.BORDERLINE else () for v in ex.z]


def _knn_vs_init(recs: list[Record]) -> str:
    pairs = [
        (float(r.data["knn_h"]), float(r.data["init_knn_h"]))
        for r in recs
        if V.is_finite_number(r.data.get("knn_h")) and V.is_finite_number(r.data.get("init_knn_h"))
    ]
    if not pairs:
        return ""
    knn = statistics.fmean(k for k, _ in pairs)
    init = statistics.fmean(i for _, i in pairs)
    return f"; kNN on h {knn:.1f} vs its random init {init:.1f}"


def counts(outcomes: Sequence[str]) -> str:
    """ "complete collapse on 3 of 3 seeds" / "healthy 2, borderline 1 of 3 seeds"."""
    n = len(outcomes)
    seen = {o: outcomes.count(o) for o in dict.fromkeys(outcomes)}
    if len(seen) == 1:
        return f"{outcomes[0]} on {n} of {n} seeds"
    return ", ".join(f"{o} {c}" for o, c in seen.items()) + f" of {n} seeds"


def what_happened(ex: Experiment) -> str:
    """The observed outcomes and the figures behind them (not the rule)."""
    if not ex.run:
        return "not run yet" + (
            f" (needs key {', '.join(f'`{k}`' for k in ex.variant.needs_key)})"
            if ex.variant.needs_key
            else ""
        )
    parts = [f"{counts(ex.outcomes)} at {ex.steps} steps"]
    if "p" in ex.variant.on:
        ps = [p for p in ex.p if p is not None]
        parts[0] += f" (the more collapsed of z and p); on z: {counts([v.outcome for v in ex.z])}"
        on_p = f"on p: {counts([p.outcome for p in ps])}" if ps else "p not monitored"
        for name in ("p-std·√d", "m_o(p)"):
            values = [x for p in ps for vote in p.votes if vote.name == name for x in vote.values]
            on_p += f", {name} {_span(values, '.3g')}" if values else ""
        parts.append(on_p)
    ratios = [x for v in ex.z for x in v.rank_ratio]
    if ratios:
        ref = ex.z[0].reference_rankme
        parts.append(f"RankMe {_span(ratios)} of the reference {ref:.3g}")
    for name in ("z-std·√d", "m_o", V.OUTPUT):
        values = [x for v in ex.z for vote in v.votes if vote.name == name for x in vote.values]
        if values:
            parts.append(f"{name} {_span(values, '.3g')}")
    modes = [v.output_mode for v in ex.z if v.output_mode]
    if modes:  # DINO §5.3's collapse mode of each seed's output
        parts.append("output " + ", ".join(modes))
    deltas = [
        float(r.data["knn_h"]) - float(r.data["init_knn_h"])
        for r in ex.records
        if V.is_finite_number(r.data.get("knn_h")) and V.is_finite_number(r.data.get("init_knn_h"))
    ]
    if deltas:
        parts.append(f"kNN on h {_span(deltas, '+.1f')} points vs random init")
    return "; ".join(parts)


def history_text(ex: Experiment) -> str:
    return (
        "<br>".join(f"{s} steps: {', '.join(SHORT[o] for o in outs)}" for s, outs in ex.history)
        or "–"
    )


def judgement_cell(ex: Experiment, explanation: str) -> str:
    pred = ex.variant.prediction(explanation)
    if not pred.predicts:
        return "–"
    if not ex.run:
        return f"{pred.text()} → not run"
    j = ex.judgements[explanation]
    word = f"**{j.word}**" if j.word in (X.CONSISTENT, X.INCONSISTENT) else j.word
    return f"{pred.text()} → {word}" + (f" ({j.reason})" if j.reason else "")


def kind_text(var: X.ExplanationVariant) -> str:
    if var.kind == X.NO_PREDICTION:
        n = sum(p.predicts for _, p in var.predictions)
        return "not discriminating (only one account predicts)" if n else "no prediction"
    return var.kind


# ---------------------------------------------------------------------------------------------
# Tallies, labels and the scale


def all_judgements(exps: dict[str, Experiment]) -> dict[str, dict[str, X.Judgement]]:
    return {name: ex.judgements for name, ex in exps.items() if ex.run}


def scale(exps: dict[str, Experiment], names: Sequence[str]) -> str:
    """The scale the named experiments ran at: "(1500 steps, Fashion-MNIST, ResNet-18 width 16,
    batch 128)"."""
    recs = [r for n in names for r in exps[n].records]
    if not recs:
        return ""
    steps = sorted({exps[n].steps for n in names if exps[n].run})
    batches = sorted({str(r.data.get("batch_size")) for r in recs})
    models, data = set(), set()
    for r in recs:
        config = r.data.get("config") if isinstance(r.data.get("config"), dict) else {}
        model = config.get("model") if isinstance(config.get("model"), dict) else {}
        name = str(model.get("name", "?")).replace("resnet", "ResNet-")
        models.add(f"{name} width {model['width']}" if model.get("width") else name)
        dataset = (config.get("data") or {}).get("dataset") if config else None
        data.add("Fashion-MNIST" if dataset == "fashion_mnist" else str(dataset or "?"))
    length = "/".join(str(s) for s in steps)
    return (
        f"({length} steps, {', '.join(sorted(data))}, {', '.join(sorted(models))}, "
        f"batch {'/'.join(batches)})"
    )


def label_text(t: X.Tally, exps: dict[str, Experiment], explanation: str) -> str:
    """The label with its scale, and what it rests on."""
    word = X.label(t)
    deciding = list(t.supports) + list(t.against)
    shown = deciding or list(t.inconclusive) + list(t.alike)
    text = word + (f" {scale(exps, shown)}" if shown else "")
    if not (t.supports or t.against or t.inconclusive or t.alike):
        return text + ": no discriminating experiment has run"
    read = [n for n in deciding if X.BY_NAME[n].prediction(explanation).reading]
    if deciding and len(read) == len(deciding):
        text += "; every deciding prediction is a reading, not the source's statement"
    return text


def controls_text(
    tested: Sequence[X.ExplanationVariant], exps: dict[str, Experiment], explanation: str
) -> str:
    """What a claim's controls showed: they judge the claim on its own (its prediction came
    true or not) without telling the explanations apart, so they never enter the label."""
    cells = []
    for v in tested:
        ex = exps.get(v.name)
        if v.kind != X.CONTROL or ex is None or not ex.run:
            continue
        cells.append(f"`{v.name}` {ex.judgements[explanation].word}")
    return f"; its controls (every explanation predicts them): {', '.join(cells)}" if cells else ""


def deciding_text(t: X.Tally, explanation: str) -> str:
    """The experiments that decided a label, which way, and whose reading each rests on."""
    cells = []
    for n in t.supports + t.against:
        reading = X.BY_NAME[n].prediction(explanation).reading_text()
        way = "for" if n in t.supports else "against"
        cells.append(f"`{n}` ({way}{'; ' + reading if reading else ''})")
    return ", ".join(cells) or "–"


# ---------------------------------------------------------------------------------------------
# The page


MATRIX_NAMES = {X.E1: "stop-gradient", X.E2: "dynamics", X.E3: "de-centering", X.E4: "DINO"}


def _overview(exps: dict[str, Experiment]) -> list[str]:
    judg = all_judgements(exps)
    rows = []
    for ex in X.EXPLANATIONS:
        t = X.tally(ex.name, judg)
        rows.append(
            [
                f"[{ex.title}](#{anchor(ex.title)})",
                ex.source,
                f"**{label_text(t, exps, ex.name)}**",
                t.text(),
                deciding_text(t, ex.name),
            ]
        )
    headers = ["explanation", "source", "label", "discriminating experiments", "deciding"]
    return [table(headers, rows), ""]


def summary_table(records: list[Record]) -> str:
    """The labels in one table (explanation, label with its scale, tally, deciding
    experiments): the README carries it, and ``tests/test_readme_explanations.py`` checks that
    the README's copy is what the committed records give."""
    exps = experiments(records)
    judg = all_judgements(exps)
    rows = []
    for ex in X.EXPLANATIONS:
        t = X.tally(ex.name, judg)
        rows.append([ex.title, label_text(t, exps, ex.name), t.text(), deciding_text(t, ex.name)])
    return table(["explanation", "label", "discriminating experiments", "deciding"], rows)


def _matrix(exps: dict[str, Experiment]) -> list[str]:
    headers = ["experiment", "kind", "judged at"]
    headers += [f"{MATRIX_NAMES[ex.name]} predicts → judgement" for ex in X.EXPLANATIONS]
    headers += ["what happened"]
    rows = []
    order = (X.DISCRIMINATING, X.CONTROL, X.NO_PREDICTION)
    for var in sorted(X.VARIANTS, key=lambda v: order.index(v.kind)):
        ex = exps[var.name]
        rows.append(
            [f"`{var.name}`", kind_text(var), f"{ex.steps} steps" if ex.run else "–"]
            + [judgement_cell(ex, e.name) for e in X.EXPLANATIONS]
            + [what_happened(ex)]
        )
    return [table(headers, rows), ""]


def _section(
    ex: X.Explanation, exps: dict[str, Experiment], paths: Paths
) -> tuple[list[str], list[str]]:
    """The explanation's section and the PNGs it wrote."""
    judg = all_judgements(exps)
    t = X.tally(ex.name, judg)
    parts = [f"## {ex.title}", "", f"**Account.** {ex.claim} ({ex.source})", ""]
    parts += [
        f"**Label: {label_text(t, exps, ex.name)}.** Discriminating experiments: {t.text()}; "
        f"deciding: {deciding_text(t, ex.name)}."
    ]
    if t.alike:
        parts[-1] += (
            f" Consistent but not counted ({', '.join(f'`{n}`' for n in t.alike)}): no rival's "
            "prediction failed on it (each allowed the outcome or was inconclusive), so it did "
            "not tell them apart."
        )
    parts += [""]
    parts += [f"Note: {n}" for n in ex.notes] + ([""] if ex.notes else [])
    claim_rows = []
    for c in ex.claims:
        tc = X.tally(ex.name, judg, claim=c.id)
        tested = [v for v in X.VARIANTS if v.prediction(ex.name).claim == c.id]
        names = ", ".join(f"`{v.name}` ({kind_text(v)})" for v in tested) or "–"
        text = label_text(tc, exps, ex.name) + controls_text(tested, exps, ex.name)
        claim_rows.append([c.text, c.source, names, text])
    parts += [table(["atomic claim", "source", "experiments", "label"], claim_rows), ""]
    rows = []
    for name in ex.variants:
        e = exps[name]
        var = e.variant
        pred = var.prediction(ex.name)
        rivals = "<br>".join(
            f"{MATRIX_NAMES[r]}: {p.text()}"
            for r, p in var.predictions
            if r != ex.name and p.predicts
        )
        j = e.judgements.get(ex.name)
        verdict = "not run yet" if not e.run else j.word + (f": {j.reason}" if j.reason else "")
        rows.append(
            [f"`{name}`", kind_text(var), f"{pred.text()} ({pred.source})", rivals or "–",
             verdict, what_happened(e), history_text(e)]
        )  # fmt: skip
    headers = ["experiment", "kind", "predicted here (where)", "rivals predicted", "judgement"]
    headers += ["what happened", "shorter runs"]
    parts += [table(headers, rows), ""]
    notes = [f"- `{n}`: {exps[n].variant.note}" for n in ex.variants if exps[n].variant.note]
    parts += notes + ([""] if notes else [])
    written = []
    curves = {n: [r.data for r in exps[n].records] for n in ex.variants if exps[n].run}
    if ex.name == dino_modes_section.EXPLANATION and curves:  # DINO §5.3's two modes
        modes, modes_plot, written = dino_modes_section.dino_modes_parts(curves, paths.out)
        parts += modes
    else:
        modes_plot = []
    plotted = _plotted(ex, exps)
    if plotted:
        refs = {n: exps[n].z[0].reference_rankme for n in plotted}
        explanation_curves_plot(
            {n: [r.data for r in exps[n].records] for n in plotted},
            refs,
            f"{ex.title}: baselines and discriminating experiments (mean over seeds)",
            paths.out / plot_name(ex),
        )
        written.insert(0, plot_name(ex))
        parts += [f"![{ex.title}: the curves that decide it]({plot_name(ex)})", ""]
    parts += modes_plot
    return parts, written


def _plotted(ex: X.Explanation, exps: dict[str, Experiment]) -> list[str]:
    """The baselines and discriminating experiments of the explanation that ran (≤ 8); DINO's
    runs only in DINO's section (another method, another healthy reference)."""
    ran = [
        n
        for n in ex.variants
        if exps[n].run and (exps[n].variant.method == "dino") == (ex.name == X.E4)
    ]
    names = [n for n in ran if not exps[n].variant.baseline]
    names += [n for n in ran if exps[n].variant.kind == X.DISCRIMINATING]
    if ex.name == X.E4:  # DINO's own ablations are all its section has
        names += ran
    return list(dict.fromkeys(names))[:MAX_PLOTTED]


def _knn_section(exps: dict[str, Experiment]) -> list[str]:
    """Collapsed z with kNN on h still high: kNN on z and r/o beside it, and why."""
    rows, inits, deltas, ratios = [], [], [], []
    for name, ex in exps.items():
        for r, z in zip(ex.records, ex.z, strict=True):
            if z.outcome != V.COMPLETE:
                continue
            d = r.data
            knn = [d.get(k) for k in ("knn_h", "init_knn_h", "knn_z", "r_over_o_eval")]
            cells = [f"{x:.1f}" if V.is_finite_number(x) else "–" for x in knn[:3]]
            if all(V.is_finite_number(x) for x in knn[:2]):
                inits.append(float(knn[1]))
                deltas.append(float(knn[0]) - float(knn[1]))
            ro = knn[3]
            if V.is_finite_number(ro):
                ratios.append(float(ro))
            rows.append(
                [f"`{name}`", str(d.get("seed")), str(ex.steps), *cells,
                 f"{ro:.2g}" if V.is_finite_number(ro) else "–"]
            )  # fmt: skip
    if not rows:
        return []
    headers = ["experiment", "seed", "steps", "kNN h", "kNN h at init", "kNN z", "r/o (eval)"]
    h_text = (
        f"a randomly initialized ResNet already classifies Fashion-MNIST at "
        f"{_span(inits, '.1f')}% by kNN on h, so a run that learns nothing useful need not fall "
        f"to chance; these runs end {_span(deltas, '+.1f')} points from their init's"
        if deltas
        else "no kNN on h recorded"
    )
    ro_text = f"; r/o here is {_span(ratios, '.2g')}" if ratios else ""
    return [
        "## Collapsed z, yet kNN stays high",
        "",
        "The papers report 0.1% linear top-1 for a collapsed SimSiam on ImageNet (SimSiam "
        "Fig. 2, Table 1a); the completely collapsed runs here keep kNN near their random "
        f"init's. Two measured reasons. (1) kNN on h: {h_text}; the collapse is in z and has "
        "not undone h at this length. (2) kNN on z: cosine kNN ranks neighbours by the "
        "direction of the residual r = z − o whatever its size (`pretrain/monitors.py`), so it "
        "keeps reading the residual's class structure until r/o falls to fp32's resolution of "
        f"cosine similarity, about 1e-4{ro_text}.",
        "",
        table(headers, rows),
        "",
    ]


def _baseline_caveat(exps: dict[str, Experiment]) -> list[str]:
    """How far the baselines got beyond their random init: what these runs can and cannot
    decide."""
    parts, little = [], []
    for name in ("simsiam", "dino"):
        ex = exps.get(name)
        if ex is None or not ex.run:
            continue
        deltas = [
            float(r.data["knn_h"]) - float(r.data["init_knn_h"])
            for r in ex.records
            if V.is_finite_number(r.data.get("knn_h"))
            and V.is_finite_number(r.data.get("init_knn_h"))
        ]
        if deltas:
            mean = statistics.fmean(deltas)
            parts.append(
                f"`{name}` at {ex.steps} steps: kNN on h {mean:+.1f} points against its "
                f"random init (seeds {_span(deltas, '+.1f')})"
            )
            if mean < LEARNED_LITTLE_BELOW:
                little.append(f"`{name}`")
    if not parts:
        return []
    caveat = ""
    if little:  # said of each baseline that learned little, not only when all did
        which = "The baselines have" if len(little) == len(parts) else " and ".join(little) + " has"
        caveat = (
            f" {which} learned little beyond the random init (under {LEARNED_LITTLE_BELOW:g} "
            "points): the experiments on that configuration tell collapse from no collapse, "
            "not how good a representation each design learns."
        )
    return ["**What these runs can decide.** " + "; ".join(parts) + "." + caveat, ""]


def render_explanations(records: list[Record], paths: Paths) -> tuple[str, int, list[str]]:
    """The page, its number of experiments with records, and the PNGs it wrote."""
    for name in plot_names():  # a plot whose data is gone must not linger
        (paths.out / name).unlink(missing_ok=True)
    exps = experiments(records)
    sections, plots = [], []
    for ex in X.EXPLANATIONS:
        parts, written = _section(ex, exps, paths)
        sections += parts
        plots += written
    n_run = sum(ex.run for ex in exps.values())
    head = [marker(paths), "", "# Why Siamese methods do not collapse: the explanations", ""]
    head += [
        "Four explanations of why SimSiam (and DINO) do not collapse, each split into atomic "
        "claims, and the ablations that would tell them apart. Every experiment runs 3 seeds "
        "of the collapse-ablation matrix (Fashion-MNIST, ResNet-18 at width 16, batch 128); "
        "the scale is named wherever a label appears, and a label says nothing beyond it. What "
        "each explanation predicts, and which predictions are this project's reading rather "
        "than the source's statement, is data (`records/explanations.py`).",
        "",
        "**Outcomes** (`records/verdict.py`, read over the last "
        f"{V.WINDOW_FRACTION:.0%} of a run's steps): *complete collapse* (a majority of "
        f"z-std·√d < {V.Z_COLLAPSED_BELOW:g}, RankMe < {V.RANK_COLLAPSED_BELOW:g}, "
        f"m_o > {V.MO_COLLAPSED_ABOVE:g}; DINO is judged on its output, KL(teacher ‖ student) < "
        f"{V.KL_COLLAPSED_BELOW:g} nats, DINO §5.3 / Fig. 7); *dimensional "
        f"collapse* (RankMe below {V.DIM_RATIO:g} of the same method's healthy reference at the "
        "same length, `records/references.py`); *failed to converge* (loss still high and kNN "
        "on h at its random init, SimSiam Table 1b); *healthy*; and *borderline* when a "
        f"reading is within {V.MARGIN:.0%} of a threshold. The same verdicts fill the "
        f"[collapse-ablation page]({ABLATION_PAGE}).",
        "",
        "**How the labels follow.** An experiment is *discriminating* when two explanations "
        "predict different outcomes for it, a *control* when all that predict agree (shown, "
        "never counted as support). Judged at its longest length with all "
        f"{X.SEEDS} seeds, it is *consistent* with a prediction when every seed is in the "
        "predicted set (a borderline seed counts only when every outcome it lies between is "
        "predicted), *inconsistent* when every seed is not borderline "
        "and outside it, else *inconclusive at this scale* (the reason measured). It *supports* "
        "an explanation when it is consistent with it and inconsistent with a rival. The label: "
        "*refuted at this scale* when a discriminating experiment is inconsistent and none "
        "supports; *mixed* when both; *supported at this scale* when one supports and none is "
        "inconsistent; *untested at this scale* otherwise.",
        "",
    ]
    head += _baseline_caveat(exps)
    head += _overview(exps)
    head += ["## Every experiment and what each explanation predicts", ""]
    head += _matrix(exps)
    return "\n".join(head + sections + _knn_section(exps)), n_run, plots


def anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def main(argv: Sequence[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=here / "results")
    p.add_argument("--out", type=Path, default=here)
    args = p.parse_args(argv)
    records, _ = read_records(args.results)
    paths = Paths(results=args.results.resolve(), out=args.out.resolve())
    text, n, plots = render_explanations(records, paths)
    (args.out / PAGE).write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {args.out / PAGE} ({n} experiments with records) and {len(plots)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
