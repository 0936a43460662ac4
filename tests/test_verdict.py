"""records/verdict.py: five outcomes over the last fifth of a run, not one logged value."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from records import references as R
from records import verdict as V
from records.errors import RecordError

ROOT = Path(__file__).resolve().parents[1]
ABLATION = ROOT / "leaderboards" / "results" / "ablation"


def row(step: int, z: float, rank: float, m_o: float, loss: float = -0.9, **extra) -> dict:
    return {"step": step, "loss": loss, "z_std_sqrt_d": z, "rankme": rank, "m_o": m_o, **extra}


def run_trace(
    steps: int = 1500,
    rank: float = 30.0,
    z: float = 0.9,
    m_o: float = 0.3,
    loss_end: float = -0.85,
    knn_end: float = 76.0,
) -> list[dict]:
    """A run of ``steps`` steps monitored every 25: the loss falls linearly from -0.1 to
    ``loss_end``, kNN on h 73% at init and ``knn_end`` at the end. d = 128 throughout: RankMe
    ``rank`` of 128."""
    rows = [{"step": 0, "knn_h": 73.0}]
    n = steps // 25
    for i in range(1, n + 1):
        rows.append(row(25 * i, z, rank, m_o, -0.1 + (loss_end + 0.1) * i / n))
    rows[-1]["knn_h"] = knn_end
    return rows


def test_healthy_run_with_rankme_30_against_its_reference_of_30() -> None:
    v = V.judge(run_trace(rank=30.0), loss_min=-1.0, reference_rankme=30.0)
    assert v.outcome == V.HEALTHY and set(v.agree) == {"z-std·√d", "RankMe", "m_o"}
    assert v.rank_ratio and all(r == pytest.approx(1.0) for r in v.rank_ratio)
    assert v.converge == "converged" and v.reference_rankme == 30.0


def test_dimensional_collapse_is_rankme_4_of_128_against_a_healthy_reference_of_30() -> None:
    """Jing et al. (ICLR 2022): the embedding spans a few directions of its 128 while it is
    not one point: z-std·√d and m_o healthy, RankMe 4 (> 2: not complete collapse), 0.13 of the
    same configuration's healthy 30."""
    trace = run_trace(rank=4.0, z=0.76, m_o=0.6)
    v = V.judge(trace, loss_min=-1.0, reference_rankme=30.0)
    assert v.outcome == V.DIMENSIONAL and v.agree == (V.RATIO,)
    assert all(r == pytest.approx(4 / 30) for r in v.rank_ratio)
    assert {x.vote for x in v.votes} == {V.HEALTHY_VOTE}  # not complete collapse
    assert "0.13 of the healthy reference 30" in v.text()
    # without a reference the question is not asked, and the verdict says so
    alone = V.judge(trace, loss_min=-1.0)
    assert alone.outcome == V.HEALTHY and not alone.rank_ratio
    assert "dimensional collapse not judged" in alone.text()
    # the ratio's margin: 7.5 / 30 = 0.25 sits on DIM_RATIO and is not given a side
    mid = V.judge(run_trace(rank=7.5), loss_min=-1.0, reference_rankme=30.0)
    assert mid.outcome == V.BORDERLINE and mid.between == (V.DIMENSIONAL, V.HEALTHY)
    assert V.judge(run_trace(rank=5.0), reference_rankme=30.0).outcome == V.DIMENSIONAL
    assert V.judge(run_trace(rank=10.0), reference_rankme=30.0).outcome == V.HEALTHY


def test_complete_collapse_outvotes_one_reading_above_the_threshold() -> None:
    """The no-stop-gradient run at 300 steps: train-mode z-std·√d 0.217 (above 0.2) with
    RankMe 1.25, m_o 0.976 and an eval-mode z-std·√d of 0.0099 is completely collapsed, with
    a reference or without one."""
    trace = [{"step": 0, "knn_h": 73.6}]
    trace += [row(s, z, 1.3, 0.975) for s, z in ((250, 0.2), (275, 0.189))]
    trace.append(row(300, 0.217, 1.25, 0.976, z_std_sqrt_d_eval=0.0099, knn_h=70.0))
    v = V.judge(trace, reference_rankme=35.0)
    assert v.outcome == V.COMPLETE
    assert v.eval_mode and v.steps == (300,)  # the one eval-mode point
    assert {"z-std·√d", "RankMe", "m_o"} == set(v.agree)
    assert V.judge(trace).outcome == V.COMPLETE
    # Without the eval-mode reading: z-std·√d straddles 0.2 and RankMe and m_o outvote it.
    train_only = [{k: x for k, x in r.items() if k != "z_std_sqrt_d_eval"} for r in trace]
    v = V.judge(train_only)
    assert v.outcome == V.COMPLETE and set(v.agree) == {"RankMe", "m_o"}
    assert v.steps == (250, 275, 300)  # the last fifth of 300 steps: 240 onwards
    assert [x.vote for x in v.votes if x.name == "z-std·√d"] == [V.STRADDLES]
    assert "agree: RankMe" in v.text() and "z-std·√d 0.189–0.217 straddles" in v.text()


def test_failed_to_converge_is_loss_high_and_knn_at_init() -> None:
    """SimSiam Table 1b: a fixed random predictor keeps z spread but the loss stays high and
    kNN does not pass the random init: "failed to converge", not collapse."""
    trace = run_trace(loss_end=-0.26, knn_end=69.0)
    v = V.judge(trace, loss_min=-1.0, reference_rankme=30.0)
    assert v.outcome == V.FAILED
    assert v.loss_gap and min(v.loss_gap) > V.LOSS_HIGH_ABOVE
    # either half alone is not enough
    assert V.judge(run_trace(loss_end=-0.9, knn_end=69.0), loss_min=-1.0).outcome == V.HEALTHY
    assert V.judge(trace[:-1] + [{**trace[-1], "knn_h": 80.0}], loss_min=-1.0).outcome == (
        V.HEALTHY
    )
    # no known loss minimum (e.g. InfoNCE): the loss is not judged
    assert V.judge(trace).outcome == V.HEALTHY


def test_borderline_names_what_it_lies_between() -> None:
    straddling = [row(25 * i, z, r, m) for i, (z, r, m) in enumerate(
        [(0.19, 1.9, 0.96), (0.23, 2.2, 0.95), (0.21, 2.0, 0.955)], start=1
    )]  # fmt: skip
    v = V.judge(straddling, fraction=1.0)
    assert v.outcome == V.BORDERLINE and not v.agree
    assert v.between == (V.COMPLETE, V.HEALTHY)
    v = V.judge(straddling, fraction=1.0, reference_rankme=30.0)  # RankMe ≈ 0.07 of it
    assert v.between == (V.COMPLETE, V.DIMENSIONAL)
    assert "borderline (complete collapse vs dimensional collapse)" in v.text()
    # healthy vs failed to converge: the loss past half its gap, kNN within 2 ± 2 of init
    unsure = run_trace(loss_end=-0.45, knn_end=74.0)
    v = V.judge(unsure, loss_min=-1.0)
    assert v.outcome == V.BORDERLINE and v.between == (V.HEALTHY, V.FAILED)


@pytest.mark.parametrize("steps", [300, 1500])
def test_the_window_is_the_last_fifth_of_the_run(steps: int) -> None:
    """Collapsed for the first 80% of the run, healthy in its last fifth (and the other way
    round): judged on the last fifth at 300 steps and at 1,500 alike."""
    turn = int(0.8 * steps)

    def trace(first: tuple, last: tuple) -> list[dict]:
        rows = [{"step": 0, "knn_h": 73.0}]
        for s in range(25, steps + 1, 25):
            rows.append(row(s, *(first if s < turn else last), loss=-0.9))
        rows[-1]["knn_h"] = 80.0
        return rows

    sick, fine = (0.05, 1.2, 0.999), (0.9, 30.0, 0.3)
    v = V.judge(trace(sick, fine), loss_min=-1.0, reference_rankme=30.0)
    assert v.outcome == V.HEALTHY
    assert v.steps == tuple(s for s in range(25, steps + 1, 25) if s >= 0.8 * steps)
    assert len(v.steps) == steps // 5 // 25 + 1  # a fraction of the run, not 3 points
    assert V.judge(trace(fine, sick), reference_rankme=30.0).outcome == V.COMPLETE
    # a window as long as the run sees both halves: no majority either way
    assert V.judge(trace(sick, fine), fraction=1.0).outcome == V.BORDERLINE
    with pytest.raises(ValueError, match="fraction"):
        V.judge(trace(sick, fine), fraction=0.0)


def test_eval_mode_points_and_their_rankme_are_preferred() -> None:
    """Where the kNN bank's eval-mode statistics are logged, the window is made of those
    points, and RankMe is read from ``rankme_eval`` where every window point has it."""
    trace = run_trace(steps=1500, rank=30.0)
    for r in trace:
        if r["step"] and r["step"] % 100 == 0:
            r.update(z_std_sqrt_d_eval=0.8, m_o_eval=0.4, rankme_eval=3.0)
    v = V.judge(trace, reference_rankme=30.0)
    assert v.eval_mode and v.steps == (1200, 1300, 1400, 1500)
    assert v.rank_key == "rankme_eval" and v.outcome == V.DIMENSIONAL
    assert [x.key for x in v.votes] == ["z_std_sqrt_d_eval", "rankme_eval", "m_o_eval"]
    assert V.window_rankme(trace) == pytest.approx(3.0)
    del trace[-1]["rankme_eval"]  # one point without it: the train-mode RankMe of every point
    v = V.judge(trace, reference_rankme=30.0)
    assert v.rank_key == "rankme" and v.outcome == V.HEALTHY


def test_on_p_judges_the_predictors_output() -> None:
    """z spread while p sits on one vector: on="p" reads p's own keys."""
    trace = run_trace()
    for r in trace[1:]:
        r.update(p_std_sqrt_d=0.05, rankme_p=1.2, m_o_p=0.995)
    assert V.judge(trace, loss_min=-1.0).outcome == V.HEALTHY
    v = V.judge(trace, on="p")
    assert v.outcome == V.COMPLETE and set(v.agree) == {"p-std·√d", "RankMe(p)", "m_o(p)"}
    assert v.on == "p" and "(p, train-mode" in v.text()
    with pytest.raises(RecordError, match="no monitor points of p"):
        V.judge(run_trace(), on="p")
    with pytest.raises(ValueError, match="on='h'"):
        V.judge(trace, on="h")


LOG_K = math.log(1024)  # DINO's head: K = 1024 outputs (the recipe's out_dim)


def dino_trace(kl_end: float, entropy: float = 3.7, steps: int = 1500) -> list[dict]:
    """A DINO run monitored every 25 steps, z healthy throughout (z-std·√d 0.79, RankMe 30 of
    128, m_o 0.45), the KL(teacher ‖ student) falling linearly from 2.0 to ``kl_end`` over the
    first 60% of the run and flat after, the teacher's entropy ``entropy`` nats; kNN on h from
    73 to 80."""
    rows = [{"step": 0, "knn_h": 73.0}]
    n = steps // 25
    for i in range(1, n + 1):
        kl = 2.0 + (kl_end - 2.0) * min(1.0, i / (0.6 * n))
        rows.append(
            row(25 * i, 0.79, 30.0, 0.45, loss=kl)
            | {"teacher_student_kl": kl, "teacher_entropy": entropy}
        )
    rows[-1]["knn_h"] = 80.0
    return rows


def test_dino_collapses_in_its_output_whatever_z_says() -> None:
    """DINO §5.3 / Fig. 7: with centering alone the output goes uniform (entropy → log K) and
    KL(teacher ‖ student) → 0. z's three statistics all read healthy, yet KL 0.018 on every
    window point is complete collapse of the output, its mode named from the entropy."""
    trace = dino_trace(0.018, entropy=0.99 * LOG_K)
    v = V.judge(trace, log_k=LOG_K, reference_rankme=30.0)
    assert v.outcome == V.COMPLETE and v.agree == (V.OUTPUT,)
    assert v.output is not None and v.output.vote == V.COLLAPSED_VOTE
    assert {x.vote for x in v.votes if x.name != V.OUTPUT} == {V.HEALTHY_VOTE}  # outvoted
    assert v.entropy_ratio == pytest.approx(0.99) and v.output_mode.startswith("uniform")
    assert "complete collapse of the output" in v.text()
    assert "uniform (entropy 99% of log K), KL(t‖s) 0.018" in v.text()
    assert "z-std·√d 0.79 healthy" in v.text()  # z is still reported
    # the output is read on every monitor point of the last fifth, z on the same window
    assert v.output_steps == tuple(range(1200, 1501, 25)) == v.steps
    record = v.as_record()
    assert record["output_mode"] == v.output_mode and record["votes"][V.OUTPUT] == "collapsed"
    # sharpening alone: one dimension dominates (entropy → 0)
    sharp = V.judge(dino_trace(0.018, entropy=0.02 * LOG_K), log_k=LOG_K)
    assert sharp.outcome == V.COMPLETE and sharp.output_mode.startswith("one dimension")
    # without K the mode is not named; the outcome still follows the KL
    blind = V.judge(trace)
    assert blind.outcome == V.COMPLETE and blind.entropy_ratio is None
    assert "mode not named (no K" in blind.text()


def test_dino_with_its_output_away_from_zero_is_healthy() -> None:
    """KL 0.6 at the end (the full recipe reads 0.58-0.81 at 1,500 steps), z healthy: healthy,
    the output's mode neither (entropy 53% of log K)."""
    v = V.judge(dino_trace(0.6), log_k=LOG_K, reference_rankme=30.0)
    assert v.outcome == V.HEALTHY and V.OUTPUT in v.agree
    assert v.output is not None and v.output.vote == V.HEALTHY_VOTE
    assert v.output_mode == "neither mode (entropy 53% of log K)"
    # z is still judged for dimensional collapse against DINO's reference
    low = [r | {"rankme": 4.0} if "rankme" in r else r for r in dino_trace(0.6)]
    assert V.judge(low, log_k=LOG_K, reference_rankme=30.0).outcome == V.DIMENSIONAL
    # and z alone, however collapsed, does not outvote the output
    flat = [r | {"z_std_sqrt_d": 0.05, "m_o": 0.999} if "m_o" in r else r for r in low]
    v = V.judge(flat, log_k=LOG_K, reference_rankme=30.0)
    assert v.outcome == V.DIMENSIONAL and "z-std·√d 0.05 collapsed" in v.text()


def test_dino_kl_straddling_its_threshold_is_borderline() -> None:
    """A KL that crosses 0.05 within the window (0.061 → 0.045, inside the 25% margin) does
    not decide complete collapse either way."""
    trace = dino_trace(0.045)
    for r in trace:  # the window's KL from 0.061 down to 0.045
        if r["step"] >= 1200:
            r["teacher_student_kl"] = 0.061 - 0.016 * (r["step"] - 1200) / 300
    v = V.judge(trace, log_k=LOG_K, reference_rankme=30.0)
    assert v.outcome == V.BORDERLINE and v.between == (V.COMPLETE, V.HEALTHY)
    assert v.output is not None and v.output.vote == V.STRADDLES
    assert "KL(t‖s) 0.045–0.061 straddles 0.05" in v.text()
    # one reading clearly below among readings in the margin still straddles
    trace[-1]["teacher_student_kl"] = 0.01
    assert V.judge(trace, log_k=LOG_K).outcome == V.BORDERLINE


def test_judge_record_reads_dinos_k_from_its_config() -> None:
    """K is the head's ``config["method"]["out_dim"]`` (records.dino_modes.out_dim)."""
    record = {"method": "dino", "steps": 1500, "curve": dino_trace(0.018, entropy=6.85)}
    assert "mode not named" in V.judge_record(record).output_mode
    record["config"] = {"method": {"out_dim": 1024}}
    v = V.judge_record(record)
    assert v.outcome == V.COMPLETE and v.entropy_ratio == pytest.approx(6.85 / LOG_K)


def test_crossing_trace_agrees_within_its_window_or_is_borderline() -> None:
    """A run whose statistics fall through the thresholds, ended at every point on the way:
    unless borderline, any sub-window of its window gives the same outcome."""
    zs = [0.9, 0.7, 0.5, 0.35, 0.26, 0.21, 0.18, 0.12, 0.08, 0.05, 0.04, 0.04]
    trace = [{"step": 0, "knn_h": 73.0}]
    for i, z in enumerate(zs, start=1):
        m_o = (1 - z**2) ** 0.5  # the residual spread evenly: z-std·√d = √(1 − m_o²)
        trace.append(row(25 * i, z, 1 + 30 * z**2, m_o, -0.5 - 0.04 * i))
    outcomes = []
    for end in range(4, len(trace) + 1):
        part = trace[:end]
        full = V.judge(part, fraction=0.3)
        n = len(full.steps)
        if full.outcome != V.BORDERLINE:
            subs = {V.judge(part, points=[-i]).outcome for i in range(1, n + 1)}
            assert subs == {full.outcome}, end
        outcomes.append(full.outcome)
    assert outcomes[0] == V.HEALTHY and outcomes[-1] == V.COMPLETE
    assert V.BORDERLINE in outcomes  # the crossing itself is not given a side


def test_a_trace_without_monitor_points_is_an_error() -> None:
    with pytest.raises(RecordError, match="no monitor points"):
        V.judge([{"step": 0, "knn_h": 70.0}])


def test_reference_rankme_leaves_out_a_collapsed_reference_run() -> None:
    def record(variant: str, seed: int, rank: float, steps: int = 1500, **kw) -> dict:
        return {"task": "ablation", "run_id": f"simsiam-{variant}-seed{seed}-{steps}steps",
                "method": "simsiam", "variant": variant, "seed": seed, "steps": steps,
                "init_knn_h": 73.0, "curve": run_trace(steps, rank, **kw)}  # fmt: skip

    records = [
        record("simsiam", 0, 28.0),
        record("simsiam", 1, 32.0),
        record("simsiam", 2, 1.2, z=0.05, m_o=0.999),  # completely collapsed: not a reference
        record("simsiam", 0, 10.0, steps=300),  # another length: another configuration
        record("enc_lr_10x", 0, 4.0, z=0.76, m_o=0.6),
    ]
    assert R.reference_rankme(records, "simsiam", 1500) == pytest.approx(30.0)
    assert R.reference_rankme(records, "simsiam", 300) == pytest.approx(10.0)
    assert R.reference_rankme(records, "byol", 1500) is None
    verdicts = R.judged(records)
    assert verdicts["simsiam-enc_lr_10x-seed0-1500steps"].outcome == V.DIMENSIONAL
    assert verdicts["simsiam-simsiam-seed0-1500steps"].reference_rankme == pytest.approx(30.0)
    assert verdicts["simsiam-simsiam-seed2-1500steps"].outcome == V.COMPLETE


def with_eval(trace: list[dict], rank_eval: float) -> list[dict]:
    """``trace`` with the kNN bank's eval-mode statistics every 100 steps, RankMe
    ``rank_eval`` there (the train-mode ``rankme`` of those points stays)."""
    for r in trace:
        if r["step"] and r["step"] % 100 == 0:
            r.update(z_std_sqrt_d_eval=0.8, m_o_eval=0.4, rankme_eval=rank_eval)
    return trace


def test_the_rankme_ratio_compares_like_with_like() -> None:
    """A reference whose train-mode RankMe is 40 and eval-mode 20: a run with only the train
    batch's RankMe (6) is compared with the reference's train-mode 40 (0.15: dimensional),
    never with its eval-mode 20 (0.3: it would straddle); a run with ``rankme_eval`` on every
    window point (3, train-mode 30) with the reference's eval-mode 20 (0.15: dimensional, where
    train-mode 30 / 40 would read healthy); and when one reference run lacks ``rankme_eval``,
    both sides fall back to train-mode."""

    def record(variant: str, seed: int, trace: list[dict]) -> dict:
        return {"task": "ablation", "run_id": f"simsiam-{variant}-seed{seed}",
                "method": "simsiam", "variant": variant, "seed": seed, "steps": 1500,
                "init_knn_h": 73.0, "curve": trace}  # fmt: skip

    refs = [record("simsiam", s, with_eval(run_trace(rank=40.0), 20.0)) for s in (0, 1)]
    train_only = record("enc_lr_10x", 0, run_trace(rank=6.0))
    with_both = record("enc_lr_10x", 1, with_eval(run_trace(rank=30.0), 3.0))
    records = [*refs, train_only, with_both]
    assert R.reference_rankme(records, "simsiam", 1500) == pytest.approx(40.0)  # train-mode
    assert R.reference_rankme(records, "simsiam", 1500, key="rankme") == pytest.approx(40.0)
    assert R.reference_rankme(records, "simsiam", 1500, key="rankme_eval") == pytest.approx(20.0)
    with pytest.raises(ValueError, match="rankme_p"):
        R.reference_rankme(records, "simsiam", 1500, key="rankme_p")

    v = R.judged(records)
    a, b = v["simsiam-enc_lr_10x-seed0"], v["simsiam-enc_lr_10x-seed1"]
    assert (a.rank_key, a.reference_rankme, a.outcome) == ("rankme", 40.0, V.DIMENSIONAL)
    assert all(x == pytest.approx(6 / 40) for x in a.rank_ratio)
    assert a.as_record()["rank_key"] == "rankme"
    assert (b.rank_key, b.reference_rankme, b.outcome) == ("rankme_eval", 20.0, V.DIMENSIONAL)
    assert all(x == pytest.approx(3 / 20) for x in b.rank_ratio)
    assert "RankMe (eval) 0.15 of the healthy reference 20" in b.text()
    # what a cross-mode ratio would have said instead
    assert V.judge(train_only["curve"], reference_rankme=20.0).outcome == V.BORDERLINE
    ref0 = v["simsiam-simsiam-seed0"]
    assert (ref0.rank_key, ref0.outcome) == ("rankme_eval", V.HEALTHY)

    for r in refs[1]["curve"]:  # one reference run without the eval bank's RankMe
        r.pop("rankme_eval", None)
    assert R.reference_rankme(records, "simsiam", 1500, key="rankme_eval") is None
    v = R.judged(records)
    b = v["simsiam-enc_lr_10x-seed1"]
    assert (b.rank_key, b.reference_rankme, b.outcome) == ("rankme", 40.0, V.HEALTHY)
    assert all(x == pytest.approx(30 / 40) for x in b.rank_ratio)
    assert v["simsiam-enc_lr_10x-seed0"].reference_rankme == 40.0


def test_a_rankme_key_the_window_lacks_leaves_dimensional_collapse_unjudged() -> None:
    v = V.judge(run_trace(rank=4.0), reference_rankme=30.0, rankme_key="rankme_eval")
    assert not v.rank_ratio and v.outcome == V.HEALTHY and v.rank_key == "rankme_eval"
    assert "dimensional collapse not judged (a window point lacks rankme_eval)" in v.text()
    with pytest.raises(ValueError, match="rankme_key='rankme_p'"):
        V.judge(run_trace(), reference_rankme=30.0, rankme_key="rankme_p")


def committed_records() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(ABLATION.glob("*.json"))]


def test_every_committed_record_stores_the_verdict_of_the_committed_set() -> None:
    """The stored verdict of each committed ablation record is the one
    ``records.references.judged`` gives it against the committed set's references (what
    ``experiments/rejudge.py`` writes), and no single-point flag is left beside it."""
    records = committed_records()
    if not records:
        pytest.skip("no committed ablation records")
    verdicts = R.judged(records)
    stale = [r["run_id"] for r in records if r.get("verdict") != verdicts[r["run_id"]].as_record()]
    assert not stale, f"run python experiments/rejudge.py: {stale}"
    assert not [r["run_id"] for r in records if "collapsed" in r]
    for r in records:
        assert r["reproduced"] == (r["verdict"]["outcome"] in r["expect_outcomes"])


def test_committed_records_are_stable_within_their_window_unless_borderline() -> None:
    """Every committed ablation record: the verdict from any one point of its window is its
    verdict unless it is borderline; at 1,500 steps the no-stop-gradient runs are completely
    collapsed, SimSiam's healthy, and the encoder at 10x the lr dimensionally collapsed."""
    records = committed_records()
    if not records:
        pytest.skip("no committed ablation records")
    verdicts = R.judged(records)
    unstable = []
    for rec in records:
        v = verdicts[rec["run_id"]]
        if v.outcome == V.BORDERLINE:
            continue
        all_points = V.monitor_points(V.record_trace(rec))[0]
        first = len(all_points) - len(v.steps)
        outs = {
            V.judge_record(
                rec, reference_rankme=v.reference_rankme, points=[i], rankme_key=v.rank_key or None
            ).outcome
            for i in range(first, len(all_points))
        }
        if outs != {v.outcome}:
            unstable.append((rec["run_id"], outs))
    assert not unstable
    by_id = {k: v.outcome for k, v in verdicts.items()}
    for seed in (0, 1, 2):
        if f"simsiam-no_stop_grad-seed{seed}-1500steps" in by_id:
            assert by_id[f"simsiam-no_stop_grad-seed{seed}-1500steps"] == V.COMPLETE
            assert by_id[f"simsiam-simsiam-seed{seed}-1500steps"] == V.HEALTHY
        if f"simsiam-enc_lr_10x-seed{seed}-1500steps" in by_id:
            assert by_id[f"simsiam-enc_lr_10x-seed{seed}-1500steps"] == V.DIMENSIONAL


def test_summary_json_holds_the_windowed_verdict_of_its_metrics(tiny_fmnist, tmp_path) -> None:
    """A tiny real run: summary.json's verdict is the windowed verdict of its metrics rows
    (no reference: dimensional collapse not judged), and no single-point flag."""
    import time

    from pretrain.config import load_config
    from pretrain.hooks import CollapseMonitor, KnnMonitor, MetricsLog
    from pretrain.summary import write_summary
    from pretrain.train import Trainer
    from tests.conftest import TINY

    cfg = load_config(
        "simsiam_resnet18_fmnist", [*TINY, f"data.root={tiny_fmnist}", "eval.final_knn=false"]
    )
    run = tmp_path / "run"
    trainer = Trainer(cfg, run, [CollapseMonitor(), KnnMonitor(), MetricsLog()])
    trainer.fit()
    write_summary(trainer, time.perf_counter())
    summary = json.loads((run / "summary.json").read_text())
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines() if r]
    assert "collapsed" not in summary
    assert summary["verdict"] == V.judge(rows, loss_min=-1.0).as_record()
    assert summary["verdict"]["outcome"] in V.OUTCOMES
    assert summary["verdict"]["reference_rankme"] is None
    assert "dimensional collapse not judged" in summary["verdict"]["text"] or (
        summary["verdict"]["outcome"] == V.COMPLETE
    )
