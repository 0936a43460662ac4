"""The boards' plots: PNGs with fixed size and dpi and no software/date metadata.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global state), so the
same data give byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


@dataclass(frozen=True)
class Point:
    """One plotted value: x, mean and std (0 for one seed)."""

    x: float
    y: float
    err: float = 0.0


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def batch_sweep_plot(
    measured: dict[str, list[Point]],
    measured_title: str,
    reported: list[Point],
    reported_title: str,
    path: Path,
) -> Path:
    """Accuracy against batch size: the measured sweep(s) left, the paper's table right.

    The two panels are different datasets and scales (e.g. Fashion-MNIST at CPU scale beside
    ImageNet, SimSiam Table 2): compare the shape of the curves, not the numbers.
    """
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    for label in sorted(measured):
        pts = sorted(measured[label], key=lambda p: p.x)
        left.errorbar(
            [p.x for p in pts], [p.y for p in pts], yerr=[p.err for p in pts], marker="o",
            capsize=3, label=label,
        )  # fmt: skip
    left.set_title(measured_title, fontsize=10)
    left.set_xlabel("batch size")
    left.set_ylabel("top-1 (%)")
    left.set_xscale("log", base=2)
    if measured:
        left.legend(fontsize=8)
    pts = sorted(reported, key=lambda p: p.x)
    right.plot([p.x for p in pts], [p.y for p in pts], marker="s", color="gray", label="reported")
    right.set_title(reported_title, fontsize=10)
    right.set_xlabel("batch size")
    right.set_ylabel("linear top-1 (%)")
    right.set_xscale("log", base=2)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle("Accuracy against batch size: measured (left) and reported (right)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def collapse_curves_plot(curves: dict[str, list[list[dict]]], knn_key: str, path: Path) -> Path:
    """z-std × √d and kNN top-1 against steps: one color per variant, one line per seed."""
    fig = Figure(figsize=(13, 4.8))
    zax, kax = fig.subplots(1, 2)
    colors = colormaps["tab20"]
    for i, variant in enumerate(sorted(curves)):
        color = colors((2 * i) % 20 + (2 * i // 20) % 2)  # dark shades first
        for j, curve in enumerate(curves[variant]):
            label = variant if j == 0 else None
            zs = [(r["step"], r["z_std_sqrt_d"]) for r in curve if _is_num(r.get("z_std_sqrt_d"))]
            ks = [(r["step"], r[knn_key]) for r in curve if _is_num(r.get(knn_key))]
            if zs:
                zax.plot(*zip(*zs, strict=True), color=color, lw=1, label=label)
            if ks:
                kax.plot(*zip(*ks, strict=True), color=color, lw=1, marker="o", ms=3, label=label)
    zax.set_title("z-std × √d (1 = healthy spread, 0 = collapsed)", fontsize=10)
    zax.set_xlabel("step")
    zax.set_ylabel("z-std × √d")
    kax.set_title(f"kNN top-1 on {knn_key.removeprefix('knn_')} (%)", fontsize=10)
    kax.set_xlabel("step")
    kax.set_ylabel("kNN top-1 (%)")
    for ax in (zax, kax):
        ax.grid(alpha=0.3)
    kax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle("Collapse ablation: curves per variant (one line per seed)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def ap_by_method_plot(panels: dict[str, dict[str, Point]], path: Path) -> Path:
    """AP per pretraining method, one panel per detection task (its title names the task and
    its metric: the registry's primary one); error bars = std."""
    names = sorted(panels)
    fig = Figure(figsize=(5 * len(names) + 1, 4.5))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, task in zip(axes, names, strict=True):
        bars = panels[task]
        labels = sorted(bars)
        ax.bar(
            range(len(labels)), [bars[k].y for k in labels], yerr=[bars[k].err for k in labels],
            capsize=3, color=["tab:gray" if k.startswith("random") else "tab:blue" for k in labels],
        )  # fmt: skip
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(task, fontsize=10)
        ax.set_ylabel("AP (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Detection AP per pretraining method (mean ± std over seeds)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
