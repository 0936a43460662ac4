"""Every plot the boards draw, checked against the rules leaderboards/README.md states: at most
8 lines or bars per panel, distinct colours within a panel, legends off the data, no text
overlapping other text or clipped by the canvas, AP axes from 0 (and a tiny AP not filling
the panel), the collapse curves' z-std axis from 0 with the collapse threshold drawn.

The plots are rendered from small synthetic records and plot inputs (never the committed
records); the figures are inspected after ``canvas.draw()`` (the window extents of what was
drawn), and every PNG the boards can write is rendered by one of these tests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from leaderboards import build as build_module
from leaderboards import dino_modes_section, plots
from leaderboards.ablation_board import render_ablation
from leaderboards.explanations_board import plot_names, render_explanations
from leaderboards.markdown import Paths
from leaderboards.record_set import Record
from records import explanations as X

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "leaderboard_records"
PX = 1.0  # an overlap of up to a pixel is rounding, not a collision


# --- the rules -------------------------------------------------------------------------------


@contextmanager
def recording_texts() -> Iterator[list[Text]]:
    """The Text artists drawn while the context is open (tick labels of ticks outside the view,
    empty and invisible texts are never drawn, so they are not listed)."""
    drawn: list[Text] = []
    original = Text.draw

    def draw(self: Text, renderer) -> None:  # noqa: ANN001 (matplotlib's renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        original(self, renderer)

    Text.draw = draw
    try:
        yield drawn
    finally:
        Text.draw = original


def series(ax: Axes) -> list[Line2D]:
    """The data lines of a panel: not a reference line (axhline / axvline: drawn in axes
    coordinates along one axis) and not an error bar's cap."""
    caps = {id(c) for b in ax.containers if isinstance(b, ErrorbarContainer) for c in b.lines[1]}
    refs = (ax.get_yaxis_transform(which="grid"), ax.get_xaxis_transform(which="grid"))
    return [
        line
        for line in ax.lines
        if line.get_visible()
        and id(line) not in caps
        and not any(line.get_transform() is t for t in refs)
    ]


def bars(ax: Axes) -> int:
    return sum(len(b.patches) for b in ax.containers if isinstance(b, BarContainer))


def legend_handles(legend: Legend) -> list:
    return list(legend.legend_handles)


def entry_colour(handle) -> tuple:  # noqa: ANN001 (a line or a patch)
    """A legend entry's colour and line style (a dashed threshold may share a line's colour)."""
    if isinstance(handle, Line2D):
        return to_rgba(handle.get_color()), handle.get_linestyle()
    return to_rgba(handle.get_facecolor()), None


def overlap(a: Bbox, b: Bbox) -> bool:
    """More than a pixel of overlap in both directions."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w > PX and h > PX


def name(text: Text) -> str:
    return repr(text.get_text()[:40])


def violations(fig: Figure) -> list[str]:
    """Every broken rule of ``fig``, in words (empty: the figure keeps them all)."""
    fig.set_dpi(plots.DPI)
    canvas = FigureCanvasAgg(fig)
    with recording_texts() as drawn:
        canvas.draw()
    renderer = canvas.get_renderer()
    found: list[str] = []
    panels = [ax for ax in fig.axes if ax.get_visible()]
    legends: list[Legend] = [ax.get_legend() for ax in panels if ax.get_legend()]
    legends += list(fig.legends)
    in_legend = {id(t) for lg in legends for t in [*lg.get_texts(), lg.get_title()]}
    canvas_box = fig.bbox
    boxes: list[tuple[str, Bbox]] = [
        (f"text {name(t)}", t.get_window_extent(renderer)) for t in drawn if id(t) not in in_legend
    ]
    boxes += [(f"legend {i}", lg.get_window_extent(renderer)) for i, lg in enumerate(legends)]
    for i, ax in enumerate(panels):
        title = f"panel {i} ({ax.get_title()[:30]!r})"
        lines = series(ax)
        if len(lines) > plots.MAX_LINES:
            found.append(f"{title}: {len(lines)} lines (at most {plots.MAX_LINES})")
        if bars(ax) > plots.MAX_LINES:
            found.append(f"{title}: {bars(ax)} bars (at most {plots.MAX_LINES})")
        colours = [to_rgba(line.get_color()) for line in lines]
        if len(set(colours)) < len(colours):
            found.append(f"{title}: {len(colours)} lines in {len(set(colours))} colours")
        data = ax.get_window_extent(renderer)
        for what, box in boxes:
            if overlap(box, data):
                found.append(f"{what} is over the data of {title}")
    for i, lg in enumerate(legends):  # a legend's entries are told apart by colour
        keys = [entry_colour(h) for h in legend_handles(lg)]
        if len(set(keys)) < len(keys):
            found.append(f"legend {i}: {len(keys)} entries in {len(set(keys))} colours")
    for (a, abox), (b, bbox) in itertools.combinations(boxes, 2):
        if overlap(abox, bbox):
            found.append(f"{a} overlaps {b}")
    for what, box in boxes:
        inside = (
            box.x0 >= canvas_box.x0 - PX
            and box.y0 >= canvas_box.y0 - PX
            and box.x1 <= canvas_box.x1 + PX
            and box.y1 <= canvas_box.y1 + PX
        )
        if not inside:
            found.append(f"{what} is cut by the edge of the image")
    return found


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """The figures the boards save, by file name (the PNGs are still written)."""
    figures: dict[str, Figure] = {}
    original = Figure.savefig

    def savefig(self: Figure, fname, *args, **kwargs):  # noqa: ANN001, ANN202 (matplotlib's)
        figures[Path(fname).name] = self
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


# --- the checker can fail ---------------------------------------------------------------------


def test_the_checker_flags_each_broken_rule() -> None:
    """A figure breaking every rule is flagged for each (else a passing board proves nothing)."""
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    for i in range(9):  # 9 lines, two of them in the same colour
        ax.plot([0, 1], [i, i + 1], color="tab:blue" if i < 2 else f"C{i}", label=f"l{i}")
    ax.axhline(0.5, color="gray", ls="--")  # a reference line is not counted
    ax.legend(loc="upper left")  # over the data
    ax.set_title("a title long enough to run off the edge of this small image" * 2)
    ax.set_xticks([0.0, 0.01], ["overlapping", "tick labels"])
    fig.suptitle("a suptitle on the panel title", y=0.86)
    found = violations(fig)
    assert not any("10 lines" in v for v in found)  # the threshold line is not a line
    assert any("9 lines (at most 8)" in v for v in found), found
    assert any("9 lines in 8 colours" in v for v in found), found
    assert any(v.startswith("legend 0 is over the data") for v in found), found
    assert "legend 0: 9 entries in 8 colours" in found, found
    assert any("'overlapping' overlaps text 'tick labels'" in v for v in found), found
    assert any("suptitle" in v and "overlaps" in v for v in found), found
    assert any("cut by the edge" in v for v in found), found
    bars_fig = Figure(figsize=(6, 3))
    bars_fig.subplots().bar(range(9), [1.0] * 9)
    assert violations(bars_fig) == ["panel 0 (''): 9 bars (at most 8)"]


def test_the_checker_passes_a_clean_figure() -> None:
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    for i in range(3):
        ax.plot([0, 1], [i, i + 1], label=f"line {i}")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    ax.set_title("clean")
    fig.suptitle("a clean figure")
    fig.tight_layout()
    assert violations(fig) == []


# --- synthetic records: every variant of the explanations and ablation boards ----------------

K = 1024  # DINO's head size in these records (log K = 6.93 nats)


def curve(i: int, seed: int, steps: int, dino: bool) -> list[dict]:
    """A run whose monitors move from a start to an end that differ per variant ``i`` and seed
    (so no two lines coincide), logged every 100 steps; DINO's also log the teacher's entropy
    and the KL (DINO §5.3)."""
    end = (i * 7 + seed) % 13 / 12  # 0..1, a different level per variant
    rows: list[dict] = [{"step": 0, "knn_h": 70.0, "knn_z": 70.0}]
    for s in range(100, steps + 1, 100):
        t = s / steps
        row = {
            "step": s,
            "loss": -0.1 - 0.8 * t,
            "z_std_sqrt_d": 0.05 + 0.9 * end * t + 0.05 * (1 - t),
            "rankme": 1.5 + 30 * end * t,
            "m_o": 0.99 - 0.7 * end * t,
            "knn_h": 70.0 + (10 * end - 3) * t,
            "knn_z": 60.0 + 20 * end * t,
        }
        if dino:
            row |= {
                "teacher_entropy": math.log(K) * (1 - t + end * t),
                "teacher_student_kl": 0.9 * (1 - t) + 0.3 * end * t,
            }
        rows.append(row)
    return rows


def ablation_records(seeds: int = 3, steps: int = 1500) -> list[Record]:
    """``seeds`` runs of every variant the explanations name (26 at the time of writing)."""
    recs = []
    for i, var in enumerate(X.VARIANTS):
        for seed in range(seeds):
            length = steps * (2 if i % 5 == 0 else 1)  # some variants also ran longer
            rows = curve(i, seed, length, var.method == "dino")
            data = {
                "task": "ablation",
                "run_id": f"{var.method}-{var.name}-seed{seed}-{length}steps",
                "method": var.method,
                "variant": var.name,
                "seed": seed,
                "steps": length,
                "batch_size": 128,
                "init_knn_h": 70.0,
                "knn_h": rows[-1]["knn_h"],
                "knn_z": rows[-1]["knn_z"],
                "curve": rows,
                "config": {
                    "model": {"name": "resnet18", "width": 16},
                    "data": {"dataset": "fashion_mnist"},
                    "method": {"out_dim": K},
                },
                "date": "2026-11-24T00:00:00Z",
            }
            recs.append(Record(f"ablation/{data['run_id']}.json", data, ((seed, {}),)))
    return recs


# --- every plot the boards draw ---------------------------------------------------------------


def test_every_plot_the_boards_draw_keeps_the_rules(
    saved: dict[str, Figure], tmp_path: Path
) -> None:
    """The whole build over the fixture records (methods, sweep, ablation and explanations
    boards), then the explanations and ablation boards over every variant with 3 seeds: every
    PNG a board can write is drawn at least once, and none breaks a rule."""
    checked: dict[str, list[str]] = {}

    def check() -> None:
        for png, fig in saved.items():
            checked.setdefault(png, []).extend(f"{png}: {v}" for v in violations(fig))
        saved.clear()

    build_module.build(FIXTURES, tmp_path / "fixtures")
    check()
    recs = ablation_records()
    paths = Paths(results=tmp_path, out=tmp_path / "every")
    paths.out.mkdir()
    render_explanations(recs, paths)
    check()
    render_ablation(recs, [], {}, paths)
    check()
    boards_draw = set(build_module.PLOTS) | set(plot_names())
    assert boards_draw <= set(checked), f"not drawn here: {sorted(boards_draw - set(checked))}"
    assert [v for found in checked.values() for v in found] == []


# --- each plot at its limits: many series, long names, one tiny bar ------------------------------


LONG = "simsiam_resnet18_fmnist-batch_size-3f2a9c1d"


def test_ap_bars_from_zero_and_a_tiny_ap_does_not_fill_its_panel(
    saved: dict[str, Figure], tmp_path: Path
) -> None:
    labels = [f"method{i}\nresnet18 w32, 3 ep\nsweep {LONG}" for i in range(10)]
    labels[3] = "random init\nresnet18 w16 (simsiam_resnet18_fmnist)"
    many = {k: plots.Point(0.0, 10.0 + i, 1.5, 3 if i % 2 else 1) for i, k in enumerate(labels)}
    panels = {
        "fmnist_det (box AP, COCO metric)": many,
        "coco_det (box AP, COCO metric)": {"simsiam\nresnet18 w16, 12 ep": plots.Point(0.0, 0.6)},
        "voc_det (VOC07 AP50)": dict(list(many.items())[:2]),
    }
    plots.ap_by_method_plot(panels, tmp_path / "ap.png")
    fig = saved["ap.png"]
    assert violations(fig) == []
    for ax in fig.axes:
        low, high = ax.get_xlim()
        assert low == 0  # AP from 0
        widths = [p.get_width() for p in ax.patches]
        assert max(widths) <= 0.95 * high  # no bar runs into the panel's edge
        if "coco_det" in ax.get_title():
            assert widths == [0.6] and 0.6 / high <= 0.1  # the tiny bar stays tiny
    fmnist = next(ax for ax in fig.axes if ax.get_title().startswith("fmnist_det"))
    assert "top 8 of 10" in fmnist.get_title() and len(fmnist.patches) == plots.MAX_LINES
    assert len({ax.get_xlim() for ax in fig.axes}) == 1  # one AP axis for every task
    assert plots.ap_upper({"t": {"a": plots.Point(0.0, 0.6)}}) == 10.0
    assert plots.ap_upper({"t": {"a": plots.Point(0.0, 17.3, 2.7, 3)}}) == 30.0


def test_collapse_curves_of_many_long_named_variants(
    saved: dict[str, Figure], tmp_path: Path
) -> None:
    curves = {
        f"simsiam/no_predictor_centered_target_{i:02d}": [curve(i, s, 1500, False) for s in (0, 1)]
        for i in range(19)
    }
    plots.collapse_curves_plot(curves, "knn_z", tmp_path / "c.png")
    fig = saved["c.png"]
    assert violations(fig) == []
    zaxes = fig.axes[::2]
    assert len(zaxes) == 3  # 19 variants: 7 + 6 + 6
    for zax in zaxes:
        assert zax.get_ylim()[0] == 0  # z-std × √d from 0 (0 is complete collapse)
        thresholds = [ln for ln in zax.lines if ln not in series(zax)]
        assert [list(ln.get_ydata()) for ln in thresholds] == [[0.2, 0.2]]


def test_sweep_plot_of_many_series(saved: dict[str, Figure], tmp_path: Path) -> None:
    measured = {
        f"{LONG}-{i}: kNN top-1 k=20": [
            plots.Point(float(b), 70.0 + i + b / 1024, 0.3 * i, 1 + i % 3) for b in (32, 64, 128)
        ]
        for i in range(12)
    }
    reported = [plots.Point(float(2**b), 60.0 + b) for b in range(6, 13)]
    plots.batch_sweep_plot(
        measured, "measured: fashion_mnist", reported, "reported", tmp_path / "s.png"
    )
    fig = saved["s.png"]
    assert violations(fig) == []
    assert len(series(fig.axes[0])) == plots.MAX_LINES and "top 8 of 12" in fig.axes[0].get_title()


def test_explanation_curves_of_many_experiments(saved: dict[str, Figure], tmp_path: Path) -> None:
    """The predictor-dynamics plot once drew 33 lines in repeated colours with its legend on
    the data: now at most 8 experiments, each in its own colour, the legend beside the panels."""
    recs = {f"no_predictor_centered_target_{i:02d}": [] for i in range(33)}
    for i, name in enumerate(recs):
        for seed in (0, 1):
            recs[name].append({"curve": curve(i, seed, 1500, False), "init_knn_h": 70.0})
    refs = dict.fromkeys(recs, 30.0)
    plots.explanation_curves_plot(
        recs, refs, "The predictor and the learning dynamics", tmp_path / "e.png"
    )
    fig = saved["e.png"]
    assert violations(fig) == []
    assert all(0 < len(series(ax)) <= plots.MAX_LINES for ax in fig.axes)
    assert "the first 8 of 33" in fig.get_suptitle()


def test_dino_teacher_plot_one_line_per_seed_at_most_eight(
    saved: dict[str, Figure], tmp_path: Path
) -> None:
    curves = {
        name: [{"seed": s, "curve": curve(i, s, 1500, True)} for s in range(11)]
        for i, name in enumerate(("dino", "dino_no_centering", "dino_teacher_copy"))
    }
    dino_modes_section.teacher_plot(curves, tmp_path / "t.png", {math.log(K)})
    fig = saved["t.png"]
    assert violations(fig) == []
    assert len(fig.axes) == 6  # a row of two panels per variant
    for ax in fig.axes:
        assert len(series(ax)) == plots.MAX_LINES and "8 of 11" in ax.get_title()
