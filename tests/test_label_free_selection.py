"""leaderboards/selection.py: RankMe as a label-free selector (Garrido et al., ICML 2023).

Synthetic groups check the numbers and the words (RankMe ordered like the label, reversed,
ties, too few runs); synthetic sweep records check how a probe is linked to its pretraining;
the fixture records check the ablation matrix's all / healthy split; the committed records
check that every sweep has its row.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from leaderboards.build import build
from leaderboards.markdown import Paths
from leaderboards.record_set import Record, read_records
from leaderboards.selection import (
    MIN_RUNS,
    SEVERAL_POINTS,
    Run,
    kendall_tau_b,
    render_selection,
    select,
    spearman_rho,
    sweep_rows,
    verdict_words,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "leaderboard_records"
COMMITTED = ROOT / "leaderboards" / "results"


def runs(rankmes: list[float], labels: list[float]) -> list[Run]:
    return [Run(f"run{i}", r, y, ()) for i, (r, y) in enumerate(zip(rankmes, labels, strict=True))]


def table_rows(page: str, section: str) -> list[list[str]]:
    """The cells of the first table under ``## section`` (header and rule left out)."""
    start = page.index(f"## {section}")
    end = page.find("\n## ", start + 1)
    text = page[start : end if end != -1 else None]
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = lines[0]
    rows = []
    for line in lines[1:]:
        if line.startswith("| run |"):  # the next table (a sweep's runs) begins
            break
        if line != header:
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


# --- the numbers and the words ---------------------------------------------------------


def test_rankme_ordered_like_the_label_picks_the_best_run() -> None:
    rankmes = [3.0, 10.0, 25.0, 40.0, 61.0]
    labels = [70.0, 72.5, 74.0, 78.0, 80.5]
    sel = select(runs(rankmes, labels))
    assert sel.n == 5
    assert sel.spearman == pytest.approx(1.0)
    assert sel.kendall == pytest.approx(1.0)
    assert sel.pick is sel.best and sel.pick.rankme == max(rankmes)
    assert sel.lost == 0.0
    assert sel.words.startswith("picks well") and "its pick is the best run" in sel.words


def test_rankme_reversed_says_it_picks_badly() -> None:
    rankmes = [3.0, 10.0, 25.0, 40.0, 61.0]
    labels = [80.5, 78.0, 74.0, 72.5, 70.0]
    sel = select(runs(rankmes, labels))
    assert sel.spearman == pytest.approx(-1.0)
    assert sel.kendall == pytest.approx(-1.0)
    assert sel.pick.rankme == max(rankmes) and sel.best.label == max(labels)
    assert sel.lost == pytest.approx(max(labels) - min(labels))
    assert "picks badly" in sel.words and "against the label" in sel.words
    assert "−1.00" in sel.words


def test_correlations_with_ties_match_their_definitions() -> None:
    """Spearman: Pearson's r of the average ranks; Kendall's τ-b counted pair by pair."""
    x, y = [1.0, 2.0, 2.0, 4.0, 5.0], [1.0, 3.0, 2.0, 4.0, 4.0]
    ranks_x, ranks_y = [1, 2.5, 2.5, 4, 5], [1, 3, 2, 4.5, 4.5]
    assert spearman_rho(x, y) == pytest.approx(statistics.correlation(ranks_x, ranks_y))
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    s = [(x[i] - x[j]) * (y[i] - y[j]) for i, j in pairs]
    concordant, discordant = sum(v > 0 for v in s), sum(v < 0 for v in s)
    ties_x = sum(x[i] == x[j] for i, j in pairs)
    ties_y = sum(y[i] == y[j] for i, j in pairs)
    n0 = len(pairs)
    expected = (concordant - discordant) / math.sqrt((n0 - ties_x) * (n0 - ties_y))
    assert kendall_tau_b(x, y) == pytest.approx(expected)
    assert expected < 1.0  # the ties matter: not a perfect agreement


def test_a_tie_in_rankme_counts_against_it() -> None:
    sel = select(runs([50.0, 50.0, 10.0], [79.0, 75.0, 70.0]))
    assert sel.pick.label == 75.0  # of the two tied at the top, the worse one
    assert sel.lost == pytest.approx(4.0)


def test_constant_rankme_or_label_gives_no_correlation() -> None:
    sel = select(runs([20.0, 20.0, 20.0], [70.0, 71.0, 72.0]))
    assert sel.spearman is None and sel.kendall is None
    assert "every run has the same RankMe" in sel.words
    sel = select(runs([10.0, 20.0, 30.0], [70.0, 70.0, 70.0]))
    assert sel.spearman is None and "every run has the same label" in sel.words


@pytest.mark.parametrize("n", [1, MIN_RUNS - 1])
def test_too_few_runs_are_not_correlated(n: int) -> None:
    sel = select(runs([float(10 * i) for i in range(n)], [float(70 + i) for i in range(n)]))
    assert sel.n == n
    assert sel.spearman is None and sel.kendall is None
    assert "too few runs to correlate" in sel.words
    assert "ρ" not in sel.words
    assert select([]).pick is None and select([]).n == 0


def test_a_pick_several_points_below_the_best_picks_badly_despite_the_correlation() -> None:
    # Label ranks 1, 2, 3, 5, 4: ρ = 1 − 6·2 / (5·24) = +0.9 (strong), but the highest RankMe
    # is the second-best run, more than SEVERAL_POINTS below the best.
    labels = [70.0, 71.0, 72.0, 80.0, 80.0 - SEVERAL_POINTS - 0.5]
    sel = select(runs([1.0, 2.0, 3.0, 4.0, 5.0], labels))
    assert sel.spearman == pytest.approx(0.9)
    assert sel.words.startswith("**picks badly**")
    assert f"{SEVERAL_POINTS + 0.5:.1f} points below the best" in sel.words


def test_the_words_follow_the_printed_numbers() -> None:
    """The thresholds apply to ρ and the points as the page prints them."""
    assert verdict_words(6, 0.3996, 0.0).startswith("picks well")  # printed +0.40
    assert verdict_words(6, 0.9, SEVERAL_POINTS - 0.04).startswith("**picks badly**")
    assert "moderate" in verdict_words(6, 0.5, 0.0)
    assert "strong" in verdict_words(6, 0.75, 0.0)
    assert "weak correlation" in verdict_words(6, 0.1, 0.0)


# --- sweeps: a probe linked to its pretraining -------------------------------------------


def record(task: str, value: int, seed: int, metrics: dict[str, Any], when: str) -> Record:
    data = {
        "task": task,
        "run_id": f"{task}-{value}-s{seed}-{when}",
        "model": {"id": f"sweep-x/bs-{value}", "kind": "run_dir"},
        "pretrain": {"method": "simsiam"},
        "protocol": {"k": 20} if task == "knn" else {"steps": 10},
        "metrics": metrics,
        "seed": seed,
        "sweep": {"id": "sweep-x", "axis": "train.batch_size", "value": value},
        "finished_at": when,
    }
    return Record(f"{task}/{data['run_id']}.json", data, ((seed, metrics),))


def test_sweep_probe_records_link_by_sweep_value_and_seed(tmp_path: Path) -> None:
    recs = []
    for seed in (0, 1):
        for value, rankme in ((64, 10.0), (128, 20.0), (256, 30.0)):
            recs.append(record("pretrain", value, seed, {"rankme": rankme + seed}, "2026-01-01"))
            top1 = 70.0 + value / 64 + 5 * seed  # seed 1's probes are 5 points higher
            recs.append(record("knn", value, seed, {"top1_k20": top1}, "2026-01-02"))
    # An older kNN record of the same point and seed is superseded, not used.
    recs.append(record("knn", 256, 1, {"top1_k20": 10.0}, "2026-01-01T00:00"))
    paths = Paths(results=tmp_path, out=tmp_path)
    rows, details = sweep_rows(recs, paths)
    knn = next(r for r in rows if r[1] == "kNN top-1 k=20")
    assert knn[2] == "6"
    assert knn[5].startswith("train.batch_size=256 s1: RankMe 31.0")
    assert "label 79.0" in knn[5]  # seed 1 at 256: 70 + 4 + 5, the later record's
    assert knn[7] == "0.0"  # the highest RankMe (256, seed 1) is the best run
    assert "knn/knn-256-s1-2026-01-02.json" in knn[5]
    assert "2026-01-01T00:00" not in "".join(details)
    # The runs table: one line per run, each with its own seed's probe.
    assert sum(line.startswith("| train.batch_size=64 s") for line in details[0].splitlines()) == 2


def test_a_sweep_known_only_from_probes_has_a_row_without_numbers(tmp_path: Path) -> None:
    recs = [record("knn", 64, 0, {"top1_k20": 70.0}, "2026-01-02")]
    rows, _ = sweep_rows(recs, Paths(results=tmp_path, out=tmp_path))
    assert len(rows) == 1 and rows[0][0].startswith("`sweep-x`")
    assert "no pretraining record" in rows[0][-1] and rows[0][3] == "–"


# --- the pages ---------------------------------------------------------------------------


def test_ablation_matrix_reports_all_and_healthy_runs_with_n(tmp_path: Path) -> None:
    records, _ = read_records(FIXTURES)
    page, info = render_selection(records, Paths(results=FIXTURES, out=tmp_path))
    rows = table_rows(page, "The collapse-ablation matrix")
    ablation = [json.loads(p.read_text()) for p in sorted((FIXTURES / "ablation").glob("*.json"))]
    for steps in sorted({a["steps"] for a in ablation}):
        at = [a for a in ablation if a["steps"] == steps]
        healthy = [a for a in at if a["verdict"]["outcome"] == "healthy"]
        assert 0 < len(healthy) < len(at)  # the fixture has both
        mine = [r for r in rows if r[0].startswith(f"{steps} steps")]
        counts = {r[0].split(": ")[1]: r[2] for r in mine if r[1] == "kNN on h"}
        assert counts == {"all runs": str(len(at)), "healthy runs": str(len(healthy))}
    assert info.page == "selection.md" and info.measured == len(table_rows(page, "Sweeps")) + len(
        rows
    )


def test_page_from_the_committed_records_has_a_row_per_sweep(tmp_path: Path) -> None:
    records, _ = read_records(COMMITTED)
    page, _ = render_selection(records, Paths(results=COMMITTED, out=tmp_path))
    sweep_ids = {
        r.data["sweep"]["id"]
        for r in records
        if r.task in ("pretrain", "knn", "linear")
        and isinstance(r.data.get("sweep"), dict)
        and not str(r.data.get("model", {}).get("kind", "")).endswith("+random_init")
    }
    assert sweep_ids  # the committed records hold sweeps
    groups = {row[0].split("`")[1] for row in table_rows(page, "Sweeps")}
    assert groups == sweep_ids
    for sweep_id in sweep_ids:
        assert f"#### `{sweep_id}`" in page or "no pretraining record" in page


def test_build_writes_the_page_and_lists_it_in_the_index(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path / "results", ignore=shutil.ignore_patterns("*.py"))
    build(tmp_path / "results", tmp_path)
    page = (tmp_path / "selection.md").read_text()
    assert page.startswith("<!-- generated by leaderboards/build.py")
    assert "](selection.md)" in (tmp_path / "README.md").read_text()
