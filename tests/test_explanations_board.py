"""records/explanations.py (the explanations, their predictions, the judging and labelling
rules) and leaderboards/explanations_board.py (the page that reads them with one verdict)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from experiments.ablation_run import RECIPE
from leaderboards.ablation_board import render_ablation
from leaderboards.explanations_board import (
    PAGE,
    counts,
    experiments,
    plot_name,
    render_explanations,
)
from leaderboards.markdown import Paths
from leaderboards.record_set import Record, read_records
from records import explanations as X
from records import references
from records import verdict as V

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "leaderboards" / "results"
ABLATION = RESULTS / "ablation"
JUDGED = (V.HEALTHY, V.DIMENSIONAL, V.COMPLETE, V.FAILED)


# --- the data -------------------------------------------------------------------------------


def test_every_variant_predicts_for_every_explanation() -> None:
    """A prediction entry (maybe "no prediction") per explanation, each tied to one of that
    explanation's atomic claims and a source; outcomes are the verdict's, never borderline."""
    names = [ex.name for ex in X.EXPLANATIONS]
    assert len({v.name for v in X.VARIANTS}) == len(X.VARIANTS)
    for v in X.VARIANTS:
        assert [e for e, _ in v.predictions] == names, v.name
        for e, p in v.predictions:
            if not p.predicts:
                assert p == X.NONE, (v.name, e)
                continue
            assert set(p.outcomes) <= set(JUDGED), (v.name, e)
            assert p.claim in X.CLAIMS and p.claim.startswith(f"E{names.index(e) + 1}."), p
            assert p.source, (v.name, e)
        assert v.claim and v.source, v.name
    for ex in X.EXPLANATIONS:
        assert ex.claims and ex.claim and ex.source
        assert any(X.BY_NAME[n].kind == X.DISCRIMINATING for n in ex.variants), ex.name


def test_kinds_follow_from_the_predictions() -> None:
    assert X.BY_NAME["no_stop_grad"].kind == X.CONTROL  # every account: complete collapse
    assert X.BY_NAME["alternation_10"].kind == X.CONTROL
    assert X.BY_NAME["mirror"].kind == X.DISCRIMINATING  # E1 healthy, E3 collapse
    assert X.BY_NAME["dino_no_centering"].kind == X.NO_PREDICTION  # only DINO's account
    assert X.BY_NAME["mocov3"].kind == X.NO_PREDICTION
    mirror = X.BY_NAME["mirror"]
    assert [e for e, _ in mirror.rivals(X.E1)] == [X.E3]
    assert mirror.prediction(X.E1).reading_text() == "Zhang et al. §2's reading"
    assert X.BY_NAME["enc_lr_10x"].prediction(X.E1).text() == "healthy (our reading)"


def test_judging_an_experiment() -> None:
    healthy = X.Prediction((V.HEALTHY,), "E1.alternation", "s")
    collapse = X.Prediction(X.COLLAPSE, "E3.asymmetry", "s")
    three = [V.COMPLETE, V.DIMENSIONAL, V.COMPLETE]
    assert X.judge_seeds(collapse, three).word == X.CONSISTENT
    assert X.judge_seeds(healthy, three).word == X.INCONSISTENT
    assert X.judge_seeds(X.NONE, three).word == X.NO_PREDICTION
    # a borderline seed: inconclusive, with what it straddles
    j = X.judge_seeds(healthy, [V.HEALTHY, V.BORDERLINE, V.HEALTHY], ["", "RankMe 0.22–0.31", ""])
    assert j == X.Judgement(X.INCONCLUSIVE, "1 of 3 seeds borderline: RankMe 0.22–0.31")
    # seeds on both sides, none borderline: inconclusive, never inconsistent
    j = X.judge_seeds(healthy, [V.HEALTHY, V.HEALTHY, V.COMPLETE])
    assert j.word == X.INCONCLUSIVE and "2 healthy, 1 complete collapse" in j.reason
    # fewer seeds than the matrix runs
    assert X.judge_seeds(collapse, [V.COMPLETE] * 2).reason == "2 of 3 seeds run"


@pytest.mark.parametrize(
    ("supports", "against", "word"),
    [((), (), X.UNTESTED), (("a",), (), X.SUPPORTED), ((), ("a",), X.REFUTED),
     (("a",), ("b",), X.MIXED)],
)  # fmt: skip
def test_label_rule(supports: tuple, against: tuple, word: str) -> None:
    assert X.label(X.Tally(supports=supports, against=against)) == word
    # inconclusive or alike-only experiments decide nothing
    assert X.label(X.Tally(supports, (("c",)), against, ("d",))) == word


# --- synthetic records through the whole path -----------------------------------------------


def curve(z: float, rank: float, m_o: float, loss: float, steps: int = 1500, **p) -> list[dict]:
    """A run with constant monitors (and p's, given ``p_std_sqrt_d=...`` etc.), the loss falling
    linearly from -0.1 to ``loss``, kNN on h 5 points above its init at the end."""
    rows = [{"step": 0, "knn_h": 73.0}]
    rows += [
        {"step": s, "loss": -0.1 + (loss + 0.1) * s / steps, "z_std_sqrt_d": z, "rankme": rank}
        | {"m_o": m_o}
        | p
        for s in range(100, steps + 1, 100)
    ]
    rows[-1]["knn_h"] = 78.0
    return rows


HEALTHY = dict(z=0.9, rank=30.0, m_o=0.3, loss=-0.85)
COMPLETE = dict(z=0.05, rank=1.2, m_o=0.999, loss=-0.98)
DIMENSIONAL = dict(z=0.9, rank=4.0, m_o=0.3, loss=-0.85)  # 4 of the reference's 30
STRADDLING = dict(z=0.21, rank=2.0, m_o=0.955, loss=-0.95)
P_COMPLETE = dict(p_std_sqrt_d=0.05, rankme_p=1.2, m_o_p=0.999)
P_HEALTHY = dict(p_std_sqrt_d=0.9, rankme_p=30.0, m_o_p=0.3)


def record(variant: str, seed: int, rows: list[dict], method: str = "simsiam") -> Record:
    steps = rows[-1]["step"]
    data = {
        "task": "ablation",
        "run_id": f"{method}-{variant}-seed{seed}-{steps}steps",
        "method": method,
        "variant": variant,
        "seed": seed,
        "steps": steps,
        "batch_size": 128,
        "init_knn_h": 73.0,
        "knn_h": 78.0,
        "curve": rows,
        "config": {
            "model": {"name": "resnet18", "width": 16},
            "data": {"dataset": "fashion_mnist"},
        },
        "date": "2026-11-24T00:00:00Z",
    }
    return Record(f"ablation/{data['run_id']}.json", data, ((seed, {}),))


def seeds(variant: str, *states: dict, p: tuple[dict, ...] = (), **kw) -> list[Record]:
    return [
        record(variant, s, curve(**state, **(p[s] if p else {})), **kw)
        for s, state in enumerate(states)
    ]


BASE = seeds("simsiam", HEALTHY, HEALTHY, HEALTHY)


def render(tmp_path: Path, records: list[Record]) -> str:
    text, _, _ = render_explanations(records, Paths(results=tmp_path, out=tmp_path))
    return text


def overview_label(page: str, title: str) -> str:
    line = next(ln for ln in page.splitlines() if ln.startswith(f"| [{title}]"))
    return re.search(r"\*\*(.+?)\*\*", line).group(1)


STOP_GRAD = "Stop-gradient as an implicit alternating optimisation"
DYNAMICS = "The predictor and the learning dynamics"
DECENTER = "De-centering and de-correlation"
DINO = "DINO's centering and sharpening"
SCALE = "(1500 steps, Fashion-MNIST, ResNet-18 width 16, batch 128)"


def test_the_label_follows_from_the_tally(tmp_path: Path) -> None:
    # Mirror collapses on every seed: de-centering supported, the EOA reading inconsistent
    page = render(tmp_path, BASE + seeds("mirror", COMPLETE, COMPLETE, COMPLETE))
    assert overview_label(page, DECENTER) == f"supported at this scale {SCALE}"
    label = overview_label(page, STOP_GRAD)
    assert label.startswith(f"refuted at this scale {SCALE}")
    assert "every deciding prediction is a reading" in label  # Zhang et al.'s reading of §5
    assert "`mirror` (against; Zhang et al. §2's reading)" in page
    assert overview_label(page, DINO).startswith("untested at this scale")
    # and a discriminating experiment against it: mixed
    more = seeds("enc_lr_10x", DIMENSIONAL, DIMENSIONAL, DIMENSIONAL)
    page = render(tmp_path, BASE + seeds("mirror", COMPLETE, COMPLETE, COMPLETE) + more)
    assert overview_label(page, DECENTER).startswith(f"mixed at this scale {SCALE}")
    assert overview_label(page, DYNAMICS) == f"supported at this scale {SCALE}"


def test_a_control_never_counts_as_support(tmp_path: Path) -> None:
    controls = seeds("no_stop_grad", COMPLETE, COMPLETE, COMPLETE)
    controls += seeds("alternation_10", HEALTHY, HEALTHY, HEALTHY)
    page = render(tmp_path, BASE + controls)
    for title in (STOP_GRAD, DYNAMICS, DECENTER):
        assert (
            overview_label(page, title)
            == "untested at this scale: no discriminating experiment has run"
        )
    exps = experiments(BASE + controls)
    assert exps["no_stop_grad"].judgements[X.E1].word == X.CONSISTENT
    judg = {n: e.judgements for n, e in exps.items() if e.run}
    assert X.tally(X.E1, judg) == X.Tally()


def test_refuted_needs_every_seed_outside_and_none_borderline(tmp_path: Path) -> None:
    one_healthy = seeds("mirror", COMPLETE, COMPLETE, HEALTHY)
    page = render(tmp_path, BASE + one_healthy)
    assert overview_label(page, STOP_GRAD).startswith("untested at this scale")
    assert "the seeds split: 2 complete collapse, 1 healthy" in page
    one_borderline = seeds("mirror", COMPLETE, COMPLETE, STRADDLING)
    page = render(tmp_path, BASE + one_borderline)
    assert overview_label(page, STOP_GRAD).startswith("untested at this scale")
    straddles = "complete collapse vs dimensional collapse: z-std·√d 0.21 straddles 0.2"
    assert f"1 of 3 seeds borderline: {straddles}" in page


def test_an_experiment_is_judged_at_its_longest_length_with_every_seed(tmp_path: Path) -> None:
    long = seeds("mirror", COMPLETE, COMPLETE, COMPLETE)
    short = [record("mirror", s, curve(**HEALTHY, steps=300)) for s in range(3)]
    short_base = [record("simsiam", s, curve(**HEALTHY, steps=300)) for s in range(3)]
    longer = [record("mirror", 0, curve(**HEALTHY, steps=3000))]  # one seed so far
    exps = experiments(BASE + short_base + long + short + longer)
    assert exps["mirror"].steps == 1500
    assert [s for s, _ in exps["mirror"].history] == [300, 3000]
    page = render(tmp_path, BASE + short_base + long + short + longer)
    assert "300 steps: healthy, healthy, healthy<br>3000 steps: healthy" in page


def test_a_baseline_that_is_not_healthy_leaves_nothing_to_compare(tmp_path: Path) -> None:
    base = seeds("dino", HEALTHY, HEALTHY, STRADDLING, method="dino")
    copy = seeds("dino_teacher_copy", HEALTHY, HEALTHY, HEALTHY, method="dino")
    exps = experiments(base + copy)
    j = exps["dino_teacher_copy"].judgements[X.E4]
    assert j.word == X.INCONCLUSIVE
    assert "the baseline `dino` at 1500 steps is not healthy on 3 seeds" in j.reason
    assert "kNN on h 78.0 vs its random init 73.0" in j.reason


def test_symmetric_predictor_is_judged_on_z_and_p(tmp_path: Path) -> None:
    no_p = seeds("symmetric_predictor", HEALTHY, HEALTHY, HEALTHY)
    j = experiments(BASE + no_p)["symmetric_predictor"].judgements[X.E3]
    assert j.word == X.INCONCLUSIVE and j.reason.startswith("p not monitored")
    base_p = seeds("simsiam", HEALTHY, HEALTHY, HEALTHY, p=(P_HEALTHY,) * 3)
    p_collapsed = seeds("symmetric_predictor", HEALTHY, HEALTHY, HEALTHY, p=(P_COMPLETE,) * 3)
    exps = experiments(base_p + p_collapsed)
    assert exps["symmetric_predictor"].outcomes == [V.COMPLETE] * 3  # z healthy, p collapsed
    assert exps["symmetric_predictor"].judgements[X.E3].word == X.CONSISTENT
    assert exps["symmetric_predictor"].judgements[X.E1].word == X.INCONSISTENT
    # z borderline between dimensional collapse and healthy: a collapsed p decides either way
    straddle_rank = dict(HEALTHY, rank=7.5)  # 7.5 / 30 = 0.25, on the threshold
    z_open = seeds("symmetric_predictor", *[straddle_rank] * 3, p=(P_COMPLETE,) * 3)
    assert experiments(base_p + z_open)["symmetric_predictor"].outcomes == [V.COMPLETE] * 3
    # ... but not beside a healthy p: the seed stays borderline
    p_fine = seeds("symmetric_predictor", *[straddle_rank] * 3, p=(P_HEALTHY,) * 3)
    assert experiments(base_p + p_fine)["symmetric_predictor"].outcomes == [V.BORDERLINE] * 3


def test_page_and_plots_are_deterministic(tmp_path: Path) -> None:
    recs = BASE + seeds("mirror", COMPLETE, COMPLETE, COMPLETE)
    paths = Paths(results=tmp_path, out=tmp_path)
    text, n, plots = render_explanations(recs, paths)
    first = {p: (tmp_path / p).read_bytes() for p in plots}
    assert n == 2 and plot_name(X.EXPLANATIONS[0]) in plots
    assert first[plots[0]][:8] == b"\x89PNG\r\n\x1a\n"
    again, _, _ = render_explanations(recs, paths)
    assert again == text and {p: (tmp_path / p).read_bytes() for p in plots} == first
    # records gone: the page says so and the old plots do not linger
    text, n, plots = render_explanations([], paths)
    assert n == 0 and not plots and not (tmp_path / plot_name(X.EXPLANATIONS[0])).exists()
    assert "collapse_ablation.md" in text and PAGE == "explanations.md"


# --- the committed records ------------------------------------------------------------------


def committed(tmp_path: Path) -> tuple[list[Record], Path]:
    """The git-tracked records (a run still writing its own is not part of the boards),
    copied under ``tmp_path``; none of the ablation records may be refused."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "leaderboards/results"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    results = tmp_path / "results"
    for name in filter(None, listed.split("\0")):
        if name.endswith(".json"):
            target = results / Path(name).relative_to("leaderboards/results")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, target)
    records, flagged = read_records(results)
    bad = [f"{f.path}: {f.reason}" for f in flagged if f.path.startswith("ablation/")]
    assert not bad, bad
    return records, results


def test_every_board_column_agrees_with_the_one_verdict(tmp_path: Path) -> None:
    """explanations.md's experiments and collapse_ablation.md's rows show the outcomes
    ``records.references.judged`` gives the committed records, and nothing else."""
    records, results = committed(tmp_path)
    ablation = [r for r in records if r.task == "ablation"]
    assert len({r.run_id for r in ablation}) == len(ablation)  # run_ids unique: judged's keys
    judged = references.judged([r.data for r in ablation])
    paths = Paths(results=results, out=tmp_path)
    page, _, _ = render_explanations(records, paths)
    for name, ex in experiments(records).items():
        if not ex.run:
            continue
        if "p" not in ex.variant.on:
            assert ex.outcomes == [judged[r.run_id].outcome for r in ex.records], name
        row = next(ln for ln in page.splitlines() if ln.startswith(f"| `{name}` | "))
        assert f"{counts(ex.outcomes)} at {ex.steps} steps" in row, name
    text, _, _ = render_ablation(records, [], {}, paths)
    rows = [ln for ln in text.splitlines() if "](results/ablation/" in ln or "](../" in ln]
    by_row: dict[tuple[str, str], list[str]] = {}
    for r in ablation:
        key = (r.data["variant"], str(r.data["steps"]))
        by_row.setdefault(key, []).append(judged[r.run_id].outcome)
    seen = 0
    for line in rows:
        cells = [c.strip() for c in line.split(" | ")]
        variant, steps = cells[0].lstrip("| "), cells[4]
        outcomes = by_row[(variant, steps)]
        for outcome in set(outcomes):
            assert f"{outcome.split()[0] if outcome != V.FAILED else 'failed'} " in line
        seen += 1
    assert seen == len(by_row)
    assert "collapsed" not in {k for r in ablation for k in r.data}  # no stale flag read


def test_committed_records_ran_their_variants_overrides() -> None:
    """Every committed record ran with exactly its variant's overrides and method; the
    collapse matrix's variants have 3 seeds at its 300 steps; a variant that needs a missing
    key has none."""
    records = [json.loads(p.read_text()) for p in sorted(ABLATION.glob("*.json"))]
    assert records, "no committed ablation records"
    for r in records:
        v = X.BY_NAME[r["variant"]]
        assert tuple(r["overrides"]) == v.overrides and r["method"] == v.method, r["run_id"]
    for v in X.VARIANTS:
        ran = [r for r in records if r["variant"] == v.name]
        assert not (ran and v.needs_key), v.name
        if v.in_matrix:
            assert {r["seed"] for r in ran if r["steps"] == 300} == {0, 1, 2}, v.name


def test_overrides_load_and_needed_keys_are_missing() -> None:
    """Every override is a valid config key except the ones a variant lists in needs_key,
    and those do not exist yet (once one does, drop it from needs_key)."""
    from pretrain.config import ConfigError, load_config

    for v in X.VARIANTS:
        present = [o for o in v.overrides if o.split("=")[0] not in v.needs_key]
        load_config(RECIPE[v.method], present)
    for key in X.needed_keys():
        with pytest.raises(ConfigError):
            load_config(RECIPE["simsiam"], [f"{key}=1"])


def test_a_borderline_seed_counts_only_when_every_outcome_it_lies_between_is_predicted() -> None:
    from records import explanations as X
    from records import verdict as V

    pred = X.Prediction((V.HEALTHY, V.DIMENSIONAL), "c", "s")
    outcomes = [V.BORDERLINE, V.BORDERLINE, V.HEALTHY]
    inside = [(V.DIMENSIONAL, V.HEALTHY), (V.DIMENSIONAL, V.HEALTHY), ()]
    assert X.judge_seeds(pred, outcomes, between=inside).word == X.CONSISTENT
    half = [(V.COMPLETE, V.DIMENSIONAL), (V.DIMENSIONAL, V.HEALTHY), ()]
    assert X.judge_seeds(pred, outcomes, between=half).word == X.INCONCLUSIVE
    # never inconsistent through a borderline seed, even when neither alternative is predicted
    other = X.Prediction((V.COMPLETE,), "c", "s")
    assert X.judge_seeds(other, outcomes, between=inside).word == X.INCONCLUSIVE
    assert X.judge_seeds(other, [V.HEALTHY] * 3).word == X.INCONSISTENT
    assert X.judge_seeds(pred, outcomes).word == X.INCONCLUSIVE  # no alternatives known


def test_the_caveat_names_each_baseline_that_learned_little(tmp_path: Path) -> None:
    """A baseline under 5 points of kNN on h over its init is named, even when the other
    baseline learned more; none is named when both learned more."""

    def gained(recs: list[Record], knn_h: float) -> list[Record]:
        for r in recs:
            r.data["knn_h"] = knn_h
        return recs

    dino = seeds("dino", HEALTHY, HEALTHY, HEALTHY, method="dino")
    page = render(tmp_path, gained(seeds("simsiam", HEALTHY, HEALTHY, HEALTHY), 76.0) + dino)
    line = next(x for x in page.splitlines() if x.startswith("**What these runs can decide."))
    assert "`simsiam` has learned little beyond the random init" in line
    assert "`dino` has" not in line and "The baselines have" not in line
    page = render(tmp_path, BASE + dino)  # both +5.0: neither named
    line = next(x for x in page.splitlines() if x.startswith("**What these runs can decide."))
    assert "learned little" not in line
