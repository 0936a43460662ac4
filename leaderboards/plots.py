"""The boards' plots: PNGs with fixed size and dpi and no software/date metadata.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global state), so the
same data give byte-identical files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from records.verdict import DIM_RATIO, KNN_AT_INIT_WITHIN, MO_COLLAPSED_ABOVE
from records.verdict import Z_COLLAPSED_BELOW as COLLAPSED_BELOW

DPI = 100


@dataclass(frozen=True)
class Point:
    """One plotted value: x, mean, std (0 for one seed) and the number of seeds."""

    x: float
    y: float
    err: float = 0.0
    n: int = 1


MAX_LINES = 8  # lines (or bars) per panel; more are split into panels or cut to the top 8
Z = "z_std_sqrt_d"


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def chunks(names: list[str], size: int = MAX_LINES) -> list[list[str]]:
    """``names`` split into the fewest panels of at most ``size``, as even as possible."""
    if not names:
        return []
    count = -(-len(names) // size)
    per = -(-len(names) // count)
    return [names[i : i + per] for i in range(0, len(names), per)]


def top(series: dict[str, list[Point]], size: int = MAX_LINES) -> list[str]:
    """The names of the ``size`` series with the highest mean y (all when there are fewer)."""

    def mean(name: str) -> float:
        pts = series[name]
        return sum(p.y for p in pts) / len(pts) if pts else float("-inf")

    return sorted(sorted(series, key=lambda k: (-mean(k), k))[:size])


def _errorbars(ax: Axes, pts: list[Point], color: str) -> None:
    """Error bars on the points with more than one seed only (one seed has no spread)."""
    many = [p for p in pts if p.n > 1]
    if many:
        ax.errorbar(
            [p.x for p in many], [p.y for p in many], yerr=[p.err for p in many], fmt="none",
            ecolor=color, capsize=3,
        )  # fmt: skip


def batch_sweep_plot(
    measured: dict[str, list[Point]],
    measured_title: str,
    reported: list[Point],
    reported_title: str,
    path: Path,
) -> Path:
    """Accuracy against batch size: the measured sweep(s) left, the paper's table right.

    The two panels are different datasets and scales (e.g. Fashion-MNIST at CPU scale beside
    ImageNet, SimSiam Table 2): compare the shape of the curves, not the numbers. Error bars
    (std over seeds) where a point has more than one seed; at most 8 series (the 8 with the
    highest mean, the title says so); one legend for both panels under them (the figure grows
    with it, so it never reaches the axes' labels).
    """
    shown = top(measured)
    entries = len(shown) + bool(reported)
    ncol = 1 if entries <= 2 else 2
    fig = Figure(figsize=(11, 4.8 + 0.2 * -(-entries // ncol)), layout="constrained")
    left, right = fig.subplots(1, 2)
    colors = colormaps["tab10"]
    for i, label in enumerate(shown):
        pts = sorted(measured[label], key=lambda p: p.x)
        color = colors(i % 10)
        left.plot([p.x for p in pts], [p.y for p in pts], marker="o", color=color, label=label)
        _errorbars(left, pts, color)
    cut = f" (top {len(shown)} of {len(measured)})" if len(shown) < len(measured) else ""
    left.set_title(measured_title + cut, fontsize=10)
    left.set_ylabel("top-1 (%)")
    pts = sorted(reported, key=lambda p: p.x)
    right.plot(  # black: no measured series (tab10) shares its colour in the legend
        [p.x for p in pts], [p.y for p in pts], marker="s", color="black", label=reported_title
    )
    right.set_title(reported_title, fontsize=10)
    right.set_ylabel("linear top-1 (%)")
    for ax in (left, right):
        ax.set_xlabel("batch size")
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    if reported:
        handles += right.get_legend_handles_labels()[0]
        labels += right.get_legend_handles_labels()[1]
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=ncol)
    fig.suptitle("Accuracy against batch size: measured (left) and reported (right)", fontsize=11)
    return _save(fig, path)


def collapse_curves_plot(
    curves: dict[str, list[list[dict]]],
    knn_key: str,
    path: Path,
    threshold: float = COLLAPSED_BELOW,
) -> Path:
    """z-std × √d (eval mode where every seed logs it: train-mode BN re-normalizes each batch
    and keeps a collapsed z near 0.2) and kNN top-1 against steps: one line per variant, the
    mean over its seeds at the steps every seed logs.

    At most 8 variants (lines) per pair of panels (more variants: more rows of panels, in name
    order); the z-std panels draw the collapse threshold; legends right of the axes.
    """
    groups = chunks(sorted(curves))
    fig = Figure(figsize=(14, 0.6 + 4.2 * max(len(groups), 1)), layout="constrained")
    axes = fig.subplots(max(len(groups), 1), 2, squeeze=False)
    colors = colormaps["tab10"]
    for (zax, kax), names in zip(axes, groups, strict=False):
        for i, variant in enumerate(names):
            color = colors(i % 10)
            seeds = [{"curve": c} for c in curves[variant]]
            zs = _mean_curve(seeds, f"{Z}_eval") or _mean_curve(seeds, Z)  # eval: BN's stats
            ks = _mean_curve(seeds, knn_key)
            if zs:
                zax.plot(*zip(*zs, strict=True), color=color, lw=1, label=variant)
            if ks:
                kax.plot(*zip(*ks, strict=True), color=color, lw=1, marker="o", ms=3)
        zax.axhline(threshold, color="black", ls="--", lw=1, label=f"collapse: < {threshold:g}")
        zax.set_ylim(bottom=0)
        zax.set_title(
            "z-std × √d, eval mode where logged (1 = healthy, 0 = collapsed)", fontsize=10
        )
        zax.set_xlabel("step")
        zax.set_ylabel("z-std × √d")
        kax.set_title(f"kNN top-1 on {knn_key.removeprefix('knn_')} (%)", fontsize=10)
        kax.set_xlabel("step")
        kax.set_ylabel("kNN top-1 (%)")
        for ax in (zax, kax):
            ax.grid(alpha=0.3)
        handles, labels = zax.get_legend_handles_labels()
        kax.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(
        "Collapse ablation: curves per variant at its longest run (mean over seeds; dashed: "
        "collapse threshold)",
        fontsize=11,
    )
    return _save(fig, path)


AP_STEP = 10.0  # the AP axis ends at the next multiple of this above the highest bar (at least)
LINE_IN = 8 * 1.2 / 72  # the height of one line of a size-8 label, in inches


def ap_upper(panels: dict[str, dict[str, Point]]) -> float:
    """The AP axis' upper end, shared by every panel: the next multiple of ``AP_STEP`` above
    the highest bar plus its std (so a 0.6 AP bar fills 6 % of a 0–10 axis, not the panel)."""
    top = max((p.y + p.err for bars in panels.values() for p in bars.values()), default=0.0)
    return AP_STEP * (math.floor(max(top, 0.0) / AP_STEP) + 1)


def ap_by_method_plot(panels: dict[str, dict[str, Point]], path: Path) -> Path:
    """AP per pretraining method: one panel per detection task (its title names the task and
    its metric: the registry's primary one), stacked, with horizontal bars named on the left
    (the labels are several lines long and never rotated into each other); error bars = std,
    only on bars of more than one seed; every panel shares one AP axis from 0 to the next
    multiple of 10 above the highest bar (``ap_upper``); at most 8 bars per panel (the 8
    highest, said in the title), in name order from the top.
    """
    names = sorted(panels)
    shown = {
        task: sorted(sorted(panels[task], key=lambda k: (-panels[task][k].y, k))[:MAX_LINES])
        for task in names
    }
    # Each bar's slot is as tall as its panel's longest label; each panel adds its title and
    # its axis (tick labels and "AP (%)").
    heights = [
        len(shown[t]) * (LINE_IN * max((k.count("\n") + 1 for k in shown[t]), default=1) + 0.12)
        + 0.2
        for t in names
    ]
    fig = Figure(figsize=(9, 0.5 + sum(h + 0.75 for h in heights)), layout="constrained")
    axes = fig.subplots(len(names), 1, squeeze=False, height_ratios=heights)[:, 0]
    upper = ap_upper(panels)
    for ax, task in zip(axes, names, strict=True):
        bars, labels = panels[task], shown[task]
        ys = range(len(labels))
        ax.barh(
            ys, [bars[k].y for k in labels], height=0.7,
            color=["tab:gray" if k.startswith("random") else "tab:blue" for k in labels],
        )  # fmt: skip
        many = [(i, bars[k]) for i, k in enumerate(labels) if bars[k].n > 1]
        if many:
            ax.errorbar(
                [p.y for _, p in many], [i for i, _ in many], xerr=[p.err for _, p in many],
                fmt="none", ecolor="black", capsize=3,
            )  # fmt: skip
        ax.set_yticks(ys, labels, fontsize=8)
        ax.set_ylim(len(labels) - 0.5, -0.5)  # the first name on top
        ax.set_xlim(0, upper)
        cut = f" (top {len(labels)} of {len(bars)})" if len(labels) < len(bars) else ""
        ax.set_title(task + cut, fontsize=10)
        ax.set_xlabel("AP (%)", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Detection AP per pretraining method (mean ± std over seeds)", fontsize=11)
    return _save(fig, path)


# The explanations board's panels: (title, trace keys in preference order, threshold, log y)
EXPLANATION_PANELS = (
    ("z-std·√d", ("z_std_sqrt_d_eval", "z_std_sqrt_d"), COLLAPSED_BELOW, False),
    ("RankMe / healthy reference", ("rankme_eval", "rankme"), DIM_RATIO, True),
    ("m_o (center's share)", ("m_o_eval", "m_o"), MO_COLLAPSED_ABOVE, False),
)


def _mean_curve(records: list[dict], key: str, scale: float = 1.0) -> list[tuple[int, float]]:
    """(step, mean over the records) at the steps where every record has ``key``."""
    per: list[dict[int, float]] = []
    for rec in records:
        curve = rec.get("curve") if isinstance(rec.get("curve"), list) else []
        per.append({int(r["step"]): float(r[key]) for r in curve if _is_num(r.get(key))})
    common = set.intersection(*(set(p) for p in per)) if per else set()
    return [(s, sum(p[s] for p in per) / len(per) / scale) for s in sorted(common)]


def explanation_curves_plot(
    curves: dict[str, list[dict]],
    references: dict[str, float | None],
    title: str,
    path: Path,
) -> Path:
    """The statistics the verdicts read against steps, one line per experiment (the mean over
    its seeds; at most ``MAX_LINES``), eval-mode readings where every record logs them:
    z-std × √d, RankMe over the healthy reference (``references``: per experiment; none: the
    panel skips it), m_o, and kNN on h minus the random init's. Thresholds dashed; the legend
    right of the panels; more experiments: the first ``MAX_LINES`` by name, the title says so."""
    names = sorted(curves)[:MAX_LINES]
    fig = Figure(figsize=(15, 3.6), layout="constrained")
    axes = fig.subplots(1, 4)
    colors = colormaps["tab10"]
    for i, name in enumerate(names):
        recs, color = curves[name], colors(i % 10)
        for ax, (_, keys, _, _) in zip(axes, EXPLANATION_PANELS, strict=False):
            key = next((k for k in keys if _mean_curve(recs, k)), None)
            scale = 1.0
            if key is not None and key.startswith("rankme"):
                ref = references.get(name)
                if not ref:
                    continue
                scale = ref
            if key is not None:
                pts = _mean_curve(recs, key, scale)
                ax.plot(*zip(*pts, strict=True), color=color, lw=1.2, label=name)
        deltas = []
        for rec in recs:
            init = rec.get("init_knn_h")
            curve = rec.get("curve") if isinstance(rec.get("curve"), list) else []
            if _is_num(init):
                deltas.append({int(r["step"]): r["knn_h"] - init for r in curve
                               if _is_num(r.get("knn_h")) and r.get("step", 0) > 0})  # fmt: skip
        common = set.intersection(*(set(d) for d in deltas)) if deltas else set()
        if common:
            xs = sorted(common)
            ys = [sum(d[s] for d in deltas) / len(deltas) for s in xs]
            axes[3].plot(xs, ys, color=color, lw=1.2, marker=".", label=name)
    for ax, (stat, _, threshold, log) in zip(axes, EXPLANATION_PANELS, strict=False):
        ax.axhline(threshold, color="gray", ls="--", lw=0.8)
        ax.set_title(f"{stat} (eval where logged)", fontsize=9)
        if log:
            ax.set_yscale("log")
    axes[3].axhline(KNN_AT_INIT_WITHIN, color="gray", ls="--", lw=0.8)
    axes[3].set_title("kNN on h − random init (points)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    cut = f"; the first {len(names)} of {len(curves)}" if len(names) < len(curves) else ""
    fig.suptitle(f"{title} (dashed: thresholds{cut})", fontsize=10)
    fig.legend(handles, labels, fontsize=7, loc="outside right center")
    return _save(fig, path)
