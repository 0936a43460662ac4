"""records/explanations.py (the variants' data) and leaderboards/explanations_board.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.ablation_run import RECIPE
from leaderboards.explanations_board import PAGE, plot_name, render_explanations
from leaderboards.markdown import Paths
from leaderboards.record_set import Record
from records import verdict as V
from records.explanations import BY_NAME, EXPLANATIONS, VARIANTS, needed_keys

ROOT = Path(__file__).resolve().parents[1]
ABLATION = ROOT / "leaderboards" / "results" / "ablation"


def test_every_explanation_names_known_variants() -> None:
    assert len({v.name for v in VARIANTS}) == len(VARIANTS)
    for ex in EXPLANATIONS:
        assert ex.variants and ex.claim and ex.source
        for name in ex.variants:
            assert name in BY_NAME, (ex.name, name)
    for v in VARIANTS:
        assert v.expect and set(v.expect) <= {V.COLLAPSED, V.FAILED, V.HEALTHY}, v.name
        assert v.claim and v.source and v.refuted_by, v.name
        assert v.matrix_expect == ("collapse" if v.expect == (V.COLLAPSED,) else "no_collapse")


def test_matrix_variants_match_their_committed_records() -> None:
    """Every runnable variant has records (``--matrix explanations`` ran them all, 3 seeds),
    and they ran with exactly its overrides."""
    records = [json.loads(p.read_text()) for p in sorted(ABLATION.glob("*.json"))]
    if not records:
        pytest.skip("no committed ablation records")
    for v in VARIANTS:
        ran = [r for r in records if r["variant"] == v.name]
        assert bool(ran) == (not v.needs_key), v.name
        assert {r["seed"] for r in ran if r["steps"] == 300} == ({0, 1, 2} if ran else set())
        for r in ran:
            assert tuple(r["overrides"]) == v.overrides, r["run_id"]
            assert r["method"] == v.method


def test_overrides_load_and_needed_keys_are_missing() -> None:
    """Every override is a valid config key except the ones a variant lists in needs_key,
    and those do not exist yet (once one does, drop it from needs_key)."""
    from pretrain.config import ConfigError, load_config

    for v in VARIANTS:
        present = [o for o in v.overrides if o.split("=")[0] not in v.needs_key]
        load_config(RECIPE[v.method], present)
    for key in needed_keys():
        with pytest.raises(ConfigError):
            load_config(RECIPE["simsiam"], [f"{key}=1"])


def curve(z: float, rank: float, m_o: float, loss: float, steps: int = 300) -> list[dict]:
    rows = [{"step": 0, "knn_h": 73.0}]
    rows += [  # the loss falls linearly from -0.1 to `loss`
        {"step": s, "loss": -0.1 + (loss + 0.1) * s / steps, "z_std_sqrt_d": z, "rankme": rank}
        | {"m_o": m_o}
        for s in range(25, steps + 1, 25)
    ]
    rows[-1]["knn_h"] = 78.0
    return rows


def record(variant: str, seed: int, rows: list[dict]) -> Record:
    data = {
        "task": "ablation",
        "run_id": f"simsiam-{variant}-seed{seed}",
        "method": "simsiam",
        "variant": variant,
        "seed": seed,
        "steps": rows[-1]["step"],
        "init_knn_h": 73.0,
        "curve": rows,
        "date": "2026-11-24T00:00:00Z",
    }
    return Record(f"ablation/{data['run_id']}.json", data, ((seed, {}),))


def section(page: str, title: str) -> str:
    start = page.index(f"## {title}")
    end = page.find("\n## ", start + 1)
    return page[start : end if end != -1 else None]


def render(tmp_path: Path, records: list[Record]) -> str:
    text, _, _ = render_explanations(records, Paths(results=tmp_path, out=tmp_path))
    return text


def overall(page: str, title: str) -> str:
    sec = section(page, title)
    return sec[sec.index("**Overall: ") + 11 : sec.index("**", sec.index("**Overall: ") + 11)]


STOP_GRAD = "Stop-gradient as an implicit alternating optimisation"
DINO = "DINO's centering and sharpening"


def test_overall_status_follows_the_seed_verdicts(tmp_path: Path) -> None:
    collapsed = curve(0.05, 1.2, 0.999, -0.98)
    healthy = curve(0.9, 30.0, 0.3, -0.85)
    straddling = curve(0.21, 2.0, 0.955, -0.95)
    base = [record("simsiam", s, healthy) for s in range(3)]
    # predicted: baseline healthy, no stop-gradient collapsed
    page = render(tmp_path, base + [record("no_stop_grad", s, collapsed) for s in range(3)])
    assert overall(page, STOP_GRAD) == "reproduced"
    assert overall(page, DINO) == "not run yet"
    assert "Not run yet: `alternation_10`." in section(page, STOP_GRAD)  # no record of it
    # no stop-gradient healthy on every seed, unanimous, stable, loss off its minimum
    page = render(tmp_path, base + [record("no_stop_grad", s, healthy) for s in range(3)])
    assert overall(page, STOP_GRAD) == "refuted"
    # one seed borderline: contradicted but not refuted
    mixed = [record("no_stop_grad", s, healthy) for s in range(2)]
    page = render(tmp_path, base + mixed + [record("no_stop_grad", 2, straddling)])
    assert overall(page, STOP_GRAD) == "not reproduced at this scale"
    assert "`no_stop_grad` (300 steps): healthy on 2 of 3, borderline on 1 of 3 seeds" in page
    # healthy z with the loss at its minimum: the monitors may not see the collapse
    at_min = [record("no_stop_grad", s, curve(0.9, 30.0, 0.3, -1.0)) for s in range(3)]
    page = render(tmp_path, base + at_min)
    assert overall(page, STOP_GRAD) == "not reproduced at this scale"
    assert "the loss is at its minimum on every seed" in page


def test_longest_run_decides_and_every_length_is_shown(tmp_path: Path) -> None:
    short = [record("no_stop_grad", s, curve(0.21, 2.0, 0.955, -0.95)) for s in range(3)]
    long = [record("no_stop_grad", s, curve(0.05, 1.2, 0.999, -0.98, 600)) for s in range(3)]
    base = [record("simsiam", s, curve(0.9, 30.0, 0.3, -0.85)) for s in range(3)]
    for r in long:
        r.data["run_id"] += "-600steps"
    page = render(tmp_path, base + short + long)
    sec = section(page, STOP_GRAD)
    assert "| 300 |" in sec and "| 600 |" in sec
    assert overall(page, STOP_GRAD) == "reproduced"


def test_page_and_plots_are_deterministic(tmp_path: Path) -> None:
    recs = [record("no_stop_grad", s, curve(0.05, 1.2, 0.999, -0.98)) for s in range(3)]
    paths = Paths(results=tmp_path, out=tmp_path)
    text, n, plots = render_explanations(recs, paths)
    first = {p: (tmp_path / p).read_bytes() for p in plots}
    assert n == 1 and plots == [plot_name(EXPLANATIONS[0])]
    assert first[plots[0]][:8] == b"\x89PNG\r\n\x1a\n"
    again, _, _ = render_explanations(recs, paths)
    assert again == text and {p: (tmp_path / p).read_bytes() for p in plots} == first
    # records gone: the page says so and the old plot does not linger
    text, n, plots = render_explanations([], paths)
    assert n == 0 and not plots and not (tmp_path / plot_name(EXPLANATIONS[0])).exists()
    assert "collapse_ablation.md" in text and PAGE == "explanations.md"
