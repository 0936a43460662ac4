"""The boards' plots as a reader needs them (leaderboards/plots.py): error bars only where a
point has several seeds, AP axes from 0, legends off the data, at most 8 lines per panel, the
collapse threshold drawn. The figures are inspected instead of their PNG files."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from leaderboards import plots


def captured(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures the plot functions save (instead of their PNG files)."""
    figures: list = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    return figures


def test_ap_plot_error_bars_only_with_seeds_and_axis_from_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figures = captured(monkeypatch)
    bars = {f"m{i}": plots.Point(0.0, 1.0 + i, 0.0, 1) for i in range(10)}
    bars["m0"] = plots.Point(0.0, 20.0, 25.0, 3)  # 3 seeds, a std that would dip below 0
    plots.ap_by_method_plot({"fmnist_det (box AP)": bars}, tmp_path / "ap.png")
    (ax,) = figures[0].axes
    assert ax.get_xlim()[0] == 0  # horizontal bars: the AP axis is x
    (errorbars,) = [c for c in ax.containers if hasattr(c, "has_yerr")]
    assert len(errorbars.lines[2][0].get_segments()) == 1  # m0's only: the others have 1 seed
    assert len(ax.get_yticklabels()) == plots.MAX_LINES and "top 8 of 10" in ax.get_title()


def test_collapse_curves_split_into_panels_with_the_threshold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figures = captured(monkeypatch)
    curve = [{"step": s, "z_std_sqrt_d": 0.5, "knn_z": 50.0} for s in (0, 100)]
    curves = {f"simsiam/v{i:02d}": [curve, curve] for i in range(13)}
    plots.collapse_curves_plot(curves, "knn_z", tmp_path / "c.png")
    axes = figures[0].axes
    assert len(axes) == 4  # 13 variants: two rows of panels (7 + 6)
    for zax in axes[::2]:
        variants = {line.get_label() for line in zax.lines if line.get_label().startswith("sim")}
        assert 0 < len(variants) <= plots.MAX_LINES
        assert any(list(line.get_ydata()) == [0.2, 0.2] for line in zax.lines)  # threshold
        assert zax.get_ylim()[0] == 0
    assert plots.chunks([str(i) for i in range(13)]) == [
        [str(i) for i in range(7)],
        [str(i) for i in range(7, 13)],
    ]


def test_sweep_legend_is_below_the_axes_and_single_seed_points_have_no_error_bars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    figures = captured(monkeypatch)
    one = [plots.Point(64.0, 70.0, 0.0, 1), plots.Point(128.0, 71.0, 0.0, 1)]
    three = [plots.Point(64.0, 72.0, 0.5, 3), plots.Point(128.0, 73.0, 0.4, 3)]
    reported = [plots.Point(256.0, 68.1)]
    plots.batch_sweep_plot({"a": one, "b": three}, "m", reported, "r", tmp_path / "b.png")
    left = figures[0].axes[0]
    (errorbars,) = left.containers  # for "b" only (3 seeds)
    assert len(errorbars.lines[2][0].get_segments()) == 2
    FigureCanvasAgg(figures[0]).draw()  # lay the figure out as it is saved
    (legend,) = figures[0].legends  # one legend for both panels, under them
    assert legend.get_window_extent().y1 < min(ax.get_window_extent().y0 for ax in figures[0].axes)
    assert [text.get_text() for text in legend.get_texts()] == ["a", "b", "r"]
