"""records/dino_modes.py (DINO §5.3 / Fig. 7's two failure modes) and its table and plot on
the explanations board (leaderboards/dino_modes_section.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from leaderboards import dino_modes_section
from leaderboards.explanations_board import plot_name, plot_names, render_explanations
from leaderboards.markdown import Paths
from leaderboards.record_set import Record
from records import dino_modes as D
from records.explanations import BY_NAME, EXPLANATIONS

K = 1024
LOG_K = math.log(K)  # 6.93 nats


def trace(entropy_end: float, kl_end: float, steps: int = 300) -> list[dict]:
    """A DINO curve: the entropy from log K and the KL from 0.85 moving linearly to their
    ends; the last 3 points at the ends exactly."""
    rows: list[dict] = [{"step": 0, "knn_h": 73.0}]
    points = list(range(25, steps + 1, 25))
    for i, s in enumerate(points):
        t = min(1.0, i / (len(points) - 3))
        rows.append(
            {"step": s, "z_std_sqrt_d": 0.5, "rankme": 10.0, "m_o": 0.8, "loss": 7.0}
            | {"teacher_entropy": LOG_K + (entropy_end - LOG_K) * t}
            | {"teacher_student_kl": 0.85 + (kl_end - 0.85) * t}
        )
    return rows


def test_one_dimension_dominates() -> None:
    r = D.read_trace(trace(0.12, 0.01), K, variant="dino_no_centering")
    assert r is not None
    assert r.mode == D.SHARP and r.kl_to_zero and r.matches
    assert r.entropy == pytest.approx(0.12) and r.kl == pytest.approx(0.01)
    assert r.kl_first == pytest.approx(0.85) and r.log_k == pytest.approx(LOG_K)
    assert r.steps == (250, 275, 300)
    assert r.text() == (
        "teacher entropy 0.12 of log K = 6.93 (2%), KL 0.01 (from 0.85): "
        "one dimension dominates (entropy → 0), KL → 0 — the paper's mode"
    )
    # the same reading under the other variant is not its paper mode
    other = D.read_trace(trace(0.12, 0.01), K, variant="dino_no_sharpening")
    assert other is not None and other.matches is False
    assert other.text().endswith("— not the paper's mode at this scale")


def test_uniform() -> None:
    r = D.read_trace(trace(LOG_K - 0.05, 0.002), K, variant="dino_no_sharpening")
    assert r is not None and r.mode == D.UNIFORM and r.kl_to_zero and r.matches
    assert r.ratio > D.UNIFORM_ABOVE


def test_healthy_is_neither() -> None:
    r = D.read_trace(trace(0.5 * LOG_K, 0.5), K, variant="dino_no_sharpening")
    assert r is not None and r.mode == D.NEITHER and not r.kl_to_zero and r.matches is False
    assert r.text().endswith(
        ": neither mode at 300 steps, KL above 0 — not the paper's mode at this scale"
    )
    full = D.read_trace(trace(0.5 * LOG_K, 0.5), K, variant="dino")
    assert full is not None and full.matches and full.text().endswith("— the paper's (no collapse)")
    assert D.read_trace(trace(0.5 * LOG_K, 0.5), K).matches is None  # no variant: no prediction
    assert D.expected_mode("dino_teacher_copy") is None


def test_boundaries() -> None:
    assert D.mode_of(D.SHARP_BELOW - 1e-9) == D.SHARP
    assert D.mode_of(D.SHARP_BELOW) == D.NEITHER  # strictly below
    assert D.mode_of(D.UNIFORM_ABOVE) == D.NEITHER  # strictly above
    assert D.mode_of(D.UNIFORM_ABOVE + 1e-9) == D.UNIFORM
    at = D.read_trace(trace(0.1, D.KL_TO_ZERO_BELOW), K)
    assert at is not None and not at.kl_to_zero  # KL → 0 strictly below 0.05
    below = D.read_trace(trace(0.1, 0.049), K)
    assert below is not None and below.kl_to_zero


def test_window_is_the_mean_of_the_last_three_teacher_points() -> None:
    rows = trace(0.12, 0.01)
    rows[-1] = rows[-1] | {"teacher_entropy": 0.30, "teacher_student_kl": 0.04}
    rows.append({"step": 310, "knn_h": 78.0})  # a kNN-only point: not in the window
    r = D.read_trace(rows, K)
    assert r is not None and r.steps == (250, 275, 300)
    assert r.entropy == pytest.approx((0.12 + 0.12 + 0.30) / 3)
    assert r.kl == pytest.approx(0.02)


def test_no_teacher_entropy_gives_none() -> None:
    rows = [{k: v for k, v in r.items() if not k.startswith("teacher")} for r in trace(0.1, 0.0)]
    assert D.read_trace(rows, K) is None
    rec = {"variant": "simsiam", "curve": rows, "config": {"method": {"out_dim": K}}}
    assert D.read_record(rec) is None
    no_k = {"variant": "dino", "curve": trace(0.1, 0.0), "config": {"method": {}}}
    assert D.read_record(no_k) is None
    with pytest.raises(ValueError, match="K = 1"):
        D.read_trace(trace(0.1, 0.0), 1)


def test_expected_modes_follow_the_variants() -> None:
    assert D.expected_mode("dino_no_centering") == D.SHARP
    assert D.expected_mode("dino_no_sharpening") == D.UNIFORM
    assert set(D.EXPECTED) <= set(BY_NAME)


# --- the board ---


def record(variant: str, seed: int, rows: list[dict], dino: bool = True) -> Record:
    data = {
        "task": "ablation",
        "run_id": f"dino-{variant}-seed{seed}",
        "method": "dino" if dino else "simsiam",
        "variant": variant,
        "seed": seed,
        "steps": rows[-1]["step"],
        "init_knn_h": 73.0,
        "curve": rows,
        "config": {"method": {"out_dim": K}},
        "date": "2026-11-24T00:00:00Z",
    }
    return Record(f"ablation/{data['run_id']}.json", data, ((seed, {}),))


DINO = "DINO's centering and sharpening"


def section(page: str, title: str) -> str:
    start = page.index(f"## {title}")
    end = page.find("\n## ", start + 1)
    return page[start : end if end != -1 else None]


def test_board_dino_section_gets_the_table_and_the_plot(tmp_path: Path) -> None:
    recs = [record("dino", s, trace(0.5 * LOG_K, 0.5)) for s in range(2)]
    recs += [record("dino_no_centering", s, trace(0.12, 0.01)) for s in range(2)]
    recs += [record("dino_no_sharpening", 0, trace(0.5 * LOG_K, 0.5))]
    paths = Paths(results=tmp_path, out=tmp_path)
    text, _, plots = render_explanations(recs, paths)
    sec = section(text, DINO)
    assert "### DINO's failure modes" in sec
    assert "| `dino_no_centering` | 1 | 300 | 0.120 | 6.93 | 2% | 0.850 → 0.010 |" in sec
    assert "one dimension dominates (entropy → 0), KL → 0 |" in sec
    assert sec.count("| yes |") == 4 and sec.count("| no |") == 1  # no_sharpening: healthy
    assert f"]({dino_modes_section.PLOT})" in sec
    assert dino_modes_section.PLOT in plots and dino_modes_section.PLOT in plot_names()
    png = (tmp_path / dino_modes_section.PLOT).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    again, _, _ = render_explanations(recs, paths)  # the same records, the same bytes
    assert again == text and (tmp_path / dino_modes_section.PLOT).read_bytes() == png
    assert "DINO's failure modes" not in section(text, "Stop-gradient as an implicit")
    # records without the teacher's entropy: no table, and the old plot does not linger
    bare = [
        record(r.data["variant"], r.data["seed"], [
            {k: v for k, v in row.items() if not k.startswith("teacher")}
            for row in r.data["curve"]
        ])
        for r in recs
    ]  # fmt: skip
    text, _, plots = render_explanations(bare, paths)
    assert "DINO's failure modes" not in text and dino_modes_section.PLOT not in plots
    assert not (tmp_path / dino_modes_section.PLOT).exists()
    dino = next(e for e in EXPLANATIONS if e.name == dino_modes_section.EXPLANATION)
    assert plots == [plot_name(dino)]  # the section's curves plot stays


def kl_trace(kls: list[float], entropy: float = LOG_K - 0.2) -> list[dict]:
    return [
        {"step": 25 * (i + 1), "teacher_entropy": entropy, "teacher_student_kl": kl}
        for i, kl in enumerate(kls)
    ]


def test_a_kl_above_the_line_is_still_falling_or_levelled_off() -> None:
    falling = D.read_trace(kl_trace([0.7, 0.5, 0.4, 0.3, 0.25, 0.2]), K)
    assert falling is not None and falling.kl_before == pytest.approx(0.5333, abs=1e-3)
    assert falling.kl == pytest.approx(0.25) and falling.kl_falling is True
    level = D.read_trace(kl_trace([0.7, 0.4, 0.16, 0.14, 0.15, 0.14, 0.15, 0.14]), K)
    assert level is not None and level.kl_falling is False and not level.kl_to_zero
    # fewer points than two windows: nothing to compare with
    short = D.read_trace(kl_trace([0.7, 0.5, 0.4]), K)
    assert short is not None and short.kl_before is None and short.kl_falling is None


def test_the_summary_line_counts_modes_and_says_whether_the_kl_still_falls() -> None:
    level = [0.7, 0.4, 0.16, 0.14, 0.15, 0.14, 0.15, 0.14]
    readings = {
        "dino_no_sharpening": [
            D.read_trace(kl_trace(level), K, variant="dino_no_sharpening"),
            D.read_trace(
                kl_trace([*level[:-3], 0.01, 0.01, 0.01]), K, variant="dino_no_sharpening"
            ),
        ],
        "dino": [D.read_trace(kl_trace([0.9] * 6, entropy=3.8), K, variant="dino")],
    }
    (line,) = dino_modes_section.summary_lines(readings)  # none for the full DINO
    assert line.startswith("`dino_no_sharpening` (200 steps): uniform (entropy → log K) on 2 of 2")
    assert "KL → 0 on 1 of 2 (last 0.01–0.14 nats, from 0.70–0.70)" in line
    assert line.endswith("still falling on 0 of 1 seeds (more than 10% below the 3 points before)")


def test_the_verdict_names_every_mode_by_these_thresholds() -> None:
    """records.verdict names a collapsed DINO output's mode with mode_of and SHORT: every mode
    has its name, and the thresholds are the ones read here."""
    from records import verdict as V

    assert set(D.SHORT) == set(D.MODES)
    for ratio, mode in ((0.05, D.SHARP), (0.5, D.NEITHER), (0.95, D.UNIFORM)):
        rows = [{"step": 25 * i, "teacher_student_kl": 0.01} for i in range(1, 5)]
        rows = [r | {"rankme": 5.0, D.ENTROPY_KEY: ratio * LOG_K} for r in rows]
        v = V.judge(rows, fraction=1.0, log_k=LOG_K)
        assert v.outcome == V.COMPLETE and v.output_mode.startswith(D.SHORT[mode])
