"""The explanations board: is each explanation of non-collapse reproduced at this scale?

``python leaderboards/explanations_board.py`` writes ``explanations.md`` and its plots
(``explanations_<name>.png``, and ``explanations_dino_teacher.png``) only;
``leaderboards/build.py`` renders it with every board.

One section per explanation of ``records.explanations.EXPLANATIONS`` (SimSiam §5 stop-gradient;
SimSiam Table 1 / Su 2020 predictor dynamics; Zhang et al. 2022 de-centering; DINO §5.3): its
claim and source, its variants with the outcome the claim predicts, each seed's verdict
(``records.verdict``: a window of the last 3 monitor points, three statistics that vote), the
variant's status and the explanation's overall status:

- a variant is *reproduced* at a length when most seeds agree with the prediction and none
  contradicts it; *contradicted* when most seeds contradict it and none agrees; else *mixed*;
- an explanation is *reproduced* when every variant run (its longest run) is reproduced;
  *refuted* when a variant is contradicted on every seed with all statistics agreeing, none
  borderline, without drifting towards the prediction over the second half of the run, and
  (a predicted collapse) with a loss not at its minimum: a loss at its minimum with a healthy z
  means the compared outputs agree exactly, so a collapse may sit where the monitors (on z) do
  not look (the symmetric predictor's p); *not reproduced at this scale* otherwise, with the
  measured reason; *not run yet* when no variant has a record.

The DINO section adds DINO's failure modes (``leaderboards/dino_modes_section.py``, the rule in
``records/dino_modes.py``: teacher entropy → 0 or → log K, KL → 0) where its records log the
teacher's entropy.

The per-variant monitors (mean ± std over seeds) stay on the collapse-ablation page
(``collapse_ablation.md``), linked from here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from leaderboards import dino_modes_section
from leaderboards.markdown import Paths, marker, table
from leaderboards.record_set import Record, read_records
from records import verdict as V
from records.explanations import BY_NAME, EXPLANATIONS, Explanation

PAGE = "explanations.md"
ABLATION_PAGE = "collapse_ablation.md"
DRIFT = 1 + V.MARGIN  # a statistic moved by more than this factor has drifted
AT_MINIMUM = 0.05  # loss gap share below which the loss is at its minimum


def plot_name(explanation: Explanation) -> str:
    return f"explanations_{explanation.name}.png"


def plot_names() -> list[str]:
    """Every PNG the page may write (one per explanation, and DINO's teacher plot)."""
    return [plot_name(ex) for ex in EXPLANATIONS] + [dino_modes_section.PLOT]


def _by_variant(records: list[Record]) -> dict[str, dict[int, list[Record]]]:
    """variant -> steps -> the latest record per seed."""
    out: dict[str, dict[int, dict[int, Record]]] = {}
    for r in sorted(records, key=lambda r: (str(r.data.get("date") or ""), r.path)):
        if r.task != "ablation":
            continue
        d = r.data
        out.setdefault(d["variant"], {}).setdefault(int(d.get("steps") or 0), {})[d["seed"]] = r
    return {
        v: {s: [per[k] for k in sorted(per)] for s, per in by_steps.items()}
        for v, by_steps in out.items()
    }


def _drift(record: dict) -> str:
    """ "collapse" / "healthy" when most statistics moved that way by more than the margin
    between the middle of the run and its end (same mode), else ""."""
    points, _ = V.monitor_points(V.record_trace(record))
    n = len(points)
    if n < 2 * V.WINDOW:
        return ""
    mid = V.judge_record(record, points=[n // 2 - V.WINDOW + i for i in range(V.WINDOW)])
    end = V.judge_record(record)
    toward = {"collapse": 0, "healthy": 0}
    for a, b in zip(mid.votes, end.votes, strict=False):
        x, y = statistics.median(a.values), statistics.median(b.values)
        if a.name == "m_o":  # residual share: falls towards collapse
            x, y = (max(1e-9, 1 - min(v, 1.0) ** 2) ** 0.5 for v in (x, y))
        if x <= 0 or y <= 0:
            continue
        if x / y > DRIFT:
            toward["collapse"] += 1
        elif y / x > DRIFT:
            toward["healthy"] += 1
    n_votes = len(end.votes)
    for way, count in toward.items():
        if count > n_votes / 2:
            return way
    return ""


def _short(v: V.Verdict) -> str:
    """The outcome and, in brackets, the statistics that agree (or, borderline, straddle)."""
    if v.outcome == V.BORDERLINE:
        names = [x.name for x in v.votes if x.vote == "straddles"]
        if v.converge == "straddles":
            names.append("loss/kNN vs init")
        return f"{v.outcome} ({', '.join(names)} straddle)" if names else v.outcome
    agree = f" ({', '.join(v.agree)})" if v.agree and v.outcome != V.HEALTHY else ""
    return v.outcome + agree


def _status(expect: tuple[str, ...], verdicts: list[V.Verdict]) -> str:
    n = len(verdicts)
    match = sum(v.outcome in expect for v in verdicts)
    contrary = sum(v.outcome not in expect and v.outcome != V.BORDERLINE for v in verdicts)
    if match > n / 2 and contrary == 0:
        return "reproduced"
    if contrary > n / 2 and match == 0:
        return "contradicted"
    return "mixed"


def _refutes(expect: tuple[str, ...], recs: list[Record], verdicts: list[V.Verdict]) -> bool:
    """Contradicted on every seed, unanimous, stable, and not explained by a blind monitor."""
    for r, v in zip(recs, verdicts, strict=True):
        if v.outcome in expect or v.outcome == V.BORDERLINE or len(v.agree) != len(v.votes):
            return False
        drift = _drift(r.data)
        if drift == ("collapse" if V.COLLAPSED in expect else "healthy"):
            return False
        if V.COLLAPSED in expect and v.loss_gap and min(v.loss_gap) < AT_MINIMUM:
            return False
    return True


def _reason(name: str, steps: int, expect: tuple[str, ...], recs: list[Record]) -> str:
    verdicts = [V.judge_record(r.data) for r in recs]
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.outcome] = counts.get(v.outcome, 0) + 1
    seen = ", ".join(f"{k} on {c} of {len(verdicts)}" for k, c in counts.items())
    text = f"`{name}` ({steps} steps): {seen} seeds; predicted {' or '.join(expect)}"
    drifts = {_drift(r.data) for r in recs} - {""}
    if drifts:
        text += f"; drifting towards {'/'.join(sorted(drifts))} over the second half"
    gaps = [min(v.loss_gap) for v in verdicts if v.loss_gap]
    if V.COLLAPSED in expect and gaps and max(gaps) < AT_MINIMUM:
        text += (
            "; the loss is at its minimum on every seed while z is not collapsed: the compared "
            "outputs agree exactly, so the collapse may be where the monitors (on z) do not read"
        )
    return text


def _section(
    ex: Explanation, by_variant: dict[str, dict[int, list[Record]]], paths: Paths
) -> tuple[list[str], str, list[str]]:
    """The explanation's section, its overall status, and the PNGs written."""
    headers = ["variant", "predicted", "claim (source)", "steps", "seed verdicts", "status"]
    headers += ["refuted by", "overrides"]
    rows, statuses, reasons, not_run, curves = [], [], [], [], {}
    refuted = []
    for name in ex.variants:
        var = BY_NAME[name]
        lengths = by_variant.get(name, {})
        overrides = " ".join(f"`{o}`" for o in var.overrides) or "(recipe)"
        claim = f"{var.claim} ({var.source})"
        if not lengths:
            need = (
                f"needs key {', '.join(f'`{k}`' for k in var.needs_key)}" if var.needs_key else ""
            )
            not_run.append(name)
            status = "not run yet" + (f": {need}" if need else "")
            row = [f"`{name}`", " or ".join(var.expect), claim, "–", "–", status]
            rows.append(row + [var.refuted_by, overrides])
            continue
        for steps in sorted(lengths):
            recs = lengths[steps]
            verdicts = [V.judge_record(r.data) for r in recs]
            cells = "<br>".join(
                f"seed {r.data['seed']}: {_short(v)}" for r, v in zip(recs, verdicts, strict=True)
            )
            status = _status(var.expect, verdicts)
            row = [f"`{name}`", " or ".join(var.expect), claim, str(steps), cells, status]
            rows.append(row + [var.refuted_by, overrides])
        longest = max(lengths)
        recs = lengths[longest]
        verdicts = [V.judge_record(r.data) for r in recs]
        status = _status(var.expect, verdicts)
        statuses.append(status)
        curves[name] = [r.data for r in recs]
        if status != "reproduced":
            if status == "contradicted" and _refutes(var.expect, recs, verdicts):
                refuted.append(name)
            reasons.append(_reason(name, longest, var.expect, recs))
    if not statuses:
        overall = "not run yet"
    elif refuted:
        overall = "refuted"
    elif all(s == "reproduced" for s in statuses):
        overall = "reproduced"
    else:
        overall = "not reproduced at this scale"
    parts = [f"## {ex.title}", "", f"**Claim.** {ex.claim} ({ex.source})", ""]
    summary = f"**Overall: {overall}**"
    if statuses:
        summary += (
            f" ({len(statuses)} of {len(ex.variants)} variants run, each judged on its longest run"
        )
        summary += f"; refuted by {', '.join(f'`{n}`' for n in refuted)})" if refuted else ")"
    parts += [summary + ".", ""]
    parts += [f"- {r}" for r in reasons] + ([""] if reasons else [])
    if not_run:
        parts += [f"Not run yet: {', '.join(f'`{n}`' for n in not_run)}.", ""]
    parts += [table(headers, rows), ""]
    modes, modes_plot, written = [], [], []
    if ex.name == dino_modes_section.EXPLANATION and curves:  # DINO §5.3's two modes
        modes, modes_plot, written = dino_modes_section.dino_modes_parts(curves, paths.out)
    parts += modes
    parts += [f"Note: {n}" for n in ex.notes] + ([""] if ex.notes else [])
    if curves:
        curves_plot(curves, ex.title, paths.out / plot_name(ex))
        written.insert(0, plot_name(ex))
        parts += [f"![{ex.title}: the curves that decide it]({plot_name(ex)})", ""]
    parts += modes_plot  # below the section's curves
    return parts, overall, written


def render_explanations(records: list[Record], paths: Paths) -> tuple[str, int, list[str]]:
    """The page, its number of explanations with records, and the PNGs it wrote."""
    for name in plot_names():  # a plot whose data is gone must not linger
        (paths.out / name).unlink(missing_ok=True)
    by_variant = _by_variant(records)
    sections, overview, plots = [], [], []
    for ex in EXPLANATIONS:
        parts, overall, written = _section(ex, by_variant, paths)
        sections += parts
        plots += written
        overview.append([f"[{ex.title}](#{_anchor(ex.title)})", ex.claim, ex.source, overall])
    n_run = sum(row[-1] != "not run yet" for row in overview)
    head = [marker(paths), "", "# Why Siamese methods do not collapse: the explanations", ""]
    head += [
        "Each explanation of non-collapse makes predictions about ablations; each ablation "
        "runs 3 seeds (the collapse-ablation matrix: Fashion-MNIST, ResNet-18 at width 16, "
        "batch 128). A seed's verdict (`records/verdict.py`) is read from its last "
        f"{V.WINDOW} monitor points (eval-mode statistics of the kNN bank where logged): "
        f"z-std·√d < {V.Z_COLLAPSED_BELOW:g}, RankMe < {V.RANK_COLLAPSED_BELOW:g} and "
        f"m_o > {V.MO_COLLAPSED_ABOVE:g} each vote for collapse, a reading within "
        f"{V.MARGIN:.0%} of its threshold votes neither way, and a strict majority decides; "
        "a run not collapsed whose loss kept over half its gap to the minimum and whose kNN "
        f"on h is not {V.KNN_AT_INIT_WITHIN:g} points above its random init failed to "
        "converge (SimSiam Table 1b); anything in between is borderline. The statistics that "
        "agree are named in brackets.",
        "",
        f"The monitors of every variant (mean ± std over seeds) and the papers' reported "
        f"numbers: [collapse ablations]({ABLATION_PAGE}).",
        "",
        table(["explanation", "claim", "source", "overall"], overview),
        "",
    ]
    return "\n".join(head + sections), n_run, plots


PANELS = (
    ("z-std·√d", ("z_std_sqrt_d_eval", "z_std_sqrt_d"), V.Z_COLLAPSED_BELOW, False),
    ("RankMe", ("rankme_eval", "rankme"), V.RANK_COLLAPSED_BELOW, True),
    ("m_o", ("m_o_eval", "m_o"), V.MO_COLLAPSED_ABOVE, False),
)


def curves_plot(curves: dict[str, list[dict]], title: str, path: Path) -> Path:
    """The statistics that decide the verdicts against steps: one color per variant, one line
    per seed (eval-mode where the record logs it), thresholds dashed; and kNN on h minus the
    random init's (the failed-to-converge test). Fixed size and dpi, no metadata: the same
    records give the same bytes."""
    fig = Figure(figsize=(13, 3.4))
    axes = fig.subplots(1, 4)
    colors = colormaps["tab10"]
    for i, (name, records) in enumerate(sorted(curves.items())):
        color = colors(i % 10)
        for j, rec in enumerate(records):
            points, eval_mode = V.monitor_points(V.record_trace(rec))
            label = name if j == 0 else None
            for ax, (_, keys, _, _) in zip(axes, PANELS, strict=False):
                key = next((k for k in keys if all(k in p for p in points)), None)
                if key is None or (key.endswith("_eval") and not eval_mode):
                    continue
                ax.plot([p["step"] for p in points], [p[key] for p in points], color=color,
                        lw=1, alpha=0.8, label=label)  # fmt: skip
            init = rec.get("init_knn_h")
            knn = [r for r in V.record_trace(rec) if "knn_h" in r and r.get("step", 0) > 0]
            if isinstance(init, int | float) and knn:
                axes[3].plot([r["step"] for r in knn], [r["knn_h"] - init for r in knn],
                             color=color, lw=1, marker=".", alpha=0.8, label=label)  # fmt: skip
    for ax, (stat, _, threshold, log) in zip(axes, PANELS, strict=False):
        ax.axhline(threshold, color="gray", ls="--", lw=0.8)
        ax.set_title(f"{stat} (eval where logged)", fontsize=9)
        if log:
            ax.set_yscale("log")
    axes[3].axhline(V.KNN_AT_INIT_WITHIN, color="gray", ls="--", lw=0.8)
    axes[3].set_title("kNN on h − random init (points)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, format="png", metadata={"Software": None})
    return path


def _anchor(title: str) -> str:
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
    print(f"wrote {args.out / PAGE} ({n} explanations with records) and {len(plots)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
