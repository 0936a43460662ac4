"""The collapse-ablation benchmark: claims judged by hand, one record per run, the matrix."""

from __future__ import annotations

import json

import pytest

from experiments import ablate, ablation_run
from experiments.ablation_matrix import BY_NAME, MATRICES, MATRIX
from experiments.ablation_run import judge, judge_verdict, verdict_block
from records import explanations
from records import verdict as V
from records.errors import RecordError
from records.schema import validate

# The collapse matrix's variants as committed (leaderboards/results/ablation/ holds their
# records under these names); their order is records/explanations.py's (collapse_order).
COLLAPSE = frozenset(
    {
        *("simsiam", "no_stop_grad", "no_predictor", "fixed_random_predictor", "pred_const_lr"),
        *("linear_predictor", "bias_predictor", "symmetric_predictor", "mirror", "bn_none"),
        *("byol_tau0.99", "byol_tau0", "mocov3"),
    }
)


def collapse_order() -> tuple[str, ...]:
    """The collapse matrix's names in the order of the one list of variants
    (``records.explanations.VARIANTS``): runnable and ``in_matrix``."""
    return tuple(v.name for v in explanations.VARIANTS if v.in_matrix and not v.needs_key)


def rec(z, knn_z, knn_h=80.0, init_h=75.0) -> dict:
    return {"z_std_sqrt_d": z, "knn_z": knn_z, "knn_h": knn_h, "init_knn_h": init_h}


def test_judge_collapse_needs_low_std_and_knn_near_chance():
    assert judge("collapse", rec(0.1, 19.0)) == (True, [])
    ok, why = judge("collapse", rec(0.13, 74.0))  # the residual still ranks neighbours
    assert not ok and why == ["kNN on z 74.0% is not within 10 points of chance"]
    ok, why = judge("collapse", rec(0.3, 15.0))
    assert not ok and "0.300 is not < 0.2" in why[0]
    # with the eval-mode residual size, the record says why kNN on z still classifies
    ok, why = judge("collapse", {**rec(0.13, 74.0), "r_over_o_eval": 0.0142})
    assert not ok and why[0].startswith("kNN on z 74.0% is not within 10 points of chance: ")
    assert "1.4e-02 of its center" in why[0]


def test_judge_no_collapse_needs_spread_and_a_gain_over_random_init():
    assert judge("no_collapse", rec(0.9, 60.0, 76.0, 75.0)) == (True, [])
    ok, why = judge("no_collapse", rec(0.9, 60.0, 74.0, 75.0))
    assert not ok and "not above random init 75.0%" in why[0]
    assert not judge("no_collapse", rec(0.4, 60.0))[0]


def test_matrix_covers_the_claims_of_the_recipes():
    matrix = MATRICES["collapse"]
    collapse = {v.name for v in matrix if v.matrix_expect == "collapse"}
    healthy = {v.name for v in matrix if v.expect == (V.HEALTHY,)}
    assert {"no_stop_grad", "no_predictor", "symmetric_predictor", "mirror", "byol_tau0"} == (
        collapse
    )
    assert {"simsiam", "pred_const_lr", "linear_predictor", "byol_tau0.99", "mocov3"} <= healthy
    # SimSiam Table 1 (b): the fixed random predictor does not converge; it does not collapse
    assert BY_NAME["fixed_random_predictor"].expect == (V.FAILED,)
    assert BY_NAME["fixed_random_predictor"].matrix_expect == "no_collapse"
    assert len(BY_NAME) == len(MATRIX)


def test_the_matrices_derive_from_the_one_list_of_variants():
    runnable = [v for v in explanations.VARIANTS if not v.needs_key]
    assert runnable == MATRIX and runnable == MATRICES["explanations"]
    order = collapse_order()
    assert set(order) == COLLAPSE and len(order) == len(COLLAPSE)  # the committed names, once
    assert tuple(v.name for v in MATRICES["collapse"]) == order
    assert [v.name for v in MATRIX if v.name in COLLAPSE] == list(order)  # the list's order
    assert all(BY_NAME[n] is explanations.BY_NAME[n] for n in BY_NAME)
    # every variant's config keys exist now (SimSiam §5's target refresh was the last)
    assert explanations.needed_keys() == ()
    assert "alternation_10" in BY_NAME
    for name in ("pred_lr_0.1x", "pred_frozen_100", "dino", "dino_no_centering"):
        assert name in BY_NAME and name not in COLLAPSE
    methods = {v.method for v in MATRIX}
    assert methods <= set(ablation_run.RECIPE) and methods <= set(ablation_run.HEADS)


def test_list_prints_the_chosen_matrix(capsys):
    assert ablate.main(["--list"]) == []
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    order = collapse_order()
    assert tuple(names) == order and set(names) == COLLAPSE  # the default matrix: as before
    ablate.main(["--list", "--matrix", "explanations"])
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [v.name for v in MATRIX] and "dino_teacher_copy" in names
    assert (
        "fixed_random_predictor" in names
        and "failed to converge"
        in (ablate.matrix_lines("collapse")[order.index("fixed_random_predictor")])
    )


def trace(z: float, rank: float, m_o: float, loss_end: float, knn_end: float) -> list[dict]:
    """A 300-step curve: the loss falls linearly from -0.1 to ``loss_end``; kNN on h at 73%
    at step 0, ``knn_end`` at the end."""
    rows: list[dict] = [{"step": 0, "knn_h": 73.0}]
    for s in range(25, 301, 25):
        loss = -0.1 + (loss_end + 0.1) * s / 300
        rows.append({"step": s, "loss": loss, "z_std_sqrt_d": z, "rankme": rank, "m_o": m_o})
    rows[-1]["knn_h"] = knn_end
    return rows


def test_fixed_random_predictor_is_judged_on_loss_and_knn_not_on_z_std():
    v = BY_NAME["fixed_random_predictor"]
    # spread z, the loss still high ((1 - 0.2) / (1 - 0.108) = 0.9 of its gap to -1 left),
    # kNN on h 1 point below its random init (clear of the 2 +- 2 point band)
    stuck = {"method": "simsiam", "init_knn_h": 73.0, "curve": trace(0.9, 30, 0.3, -0.2, 72.0)}
    verdict = verdict_block(stuck)
    assert verdict["outcome"] == V.FAILED and not verdict["between"]
    assert set(verdict["agree"]) == {"z-std·√d", "RankMe", "m_o"}
    assert judge_verdict(v.expect, verdict) == (True, [])
    # the old end-point rule for "collapse" would have called it not reproduced
    assert not judge("collapse", {"z_std_sqrt_d": 0.9, "knn_z": 60.0})[0]
    # converged (loss near its minimum, kNN above init): healthy, the claim not reproduced
    fine = {"method": "simsiam", "init_knn_h": 73.0, "curve": trace(0.9, 30, 0.3, -0.95, 80.0)}
    verdict = verdict_block(fine)
    assert verdict["outcome"] == V.HEALTHY
    ok, why = judge_verdict(v.expect, verdict)
    assert not ok and why[0].startswith("verdict healthy") and "failed to converge" in why[0]
    # completely collapsed: not reproduced either
    flat = {"method": "simsiam", "init_knn_h": 73.0, "curve": trace(0.05, 1.2, 0.999, -0.99, 20)}
    verdict = verdict_block(flat)
    assert verdict["outcome"] == V.COMPLETE
    assert not judge_verdict(v.expect, verdict)[0]
    assert judge_verdict((V.COMPLETE, V.DIMENSIONAL), verdict) == (True, [])


def record_of(variant: str, seed: int, rank: float) -> dict:
    """A judged-looking record of a spread z (z-std·√d 0.8, m_o 0.5) with RankMe ``rank``."""
    return {
        "task": "ablation", "run_id": f"simsiam-{variant}-seed{seed}", "method": "simsiam",
        "variant": variant, "seed": seed, "steps": 300, "init_knn_h": 73.0,
        "curve": trace(0.8, rank, 0.5, -0.95, 80.0),
    }  # fmt: skip


def test_the_verdict_block_reads_rankme_against_the_records_already_there():
    """The reference is the same method and length's reference variant in the records already
    written (records.references): RankMe 4 is dimensional collapse beside references of 30,
    and not judged for dimensional collapse without them."""
    refs = [record_of("simsiam", s, 30.0) for s in (0, 1, 2)]
    run = record_of("enc_lr_10x", 0, 4.0)
    verdict = verdict_block(run, refs)
    assert verdict["outcome"] == V.DIMENSIONAL and verdict["reference_rankme"] == 30.0
    assert verdict["rank_ratio"] and max(verdict["rank_ratio"]) < V.DIM_RATIO
    alone = verdict_block(run, [])
    assert alone["outcome"] == V.HEALTHY and alone["reference_rankme"] is None
    # a reference run is its own reference with the others (its own record replaced)
    assert verdict_block(refs[0], refs)["rank_ratio"] == [1.0] * len(verdict["steps"])


def small_runs(monkeypatch) -> None:
    small = ["monitor.knn_bank=256", "monitor.knn_queries=64", "train.batch_size=64"]
    monkeypatch.setattr(ablation_run, "FAST", [*ablation_run.FAST, *small])
    monkeypatch.setattr(ablation_run, "BATCH", 64)
    monkeypatch.setattr(ablation_run, "TRAIN_IMAGES", 512)
    monkeypatch.setattr(ablation_run, "DEFAULT_STEPS", 2)  # the matrix's length, in these tests


def test_a_run_writes_one_complete_record(tiny_fmnist, tmp_path, monkeypatch):
    small_runs(monkeypatch)
    out = tmp_path / "results"
    r = ablation_run.run_variant(
        BY_NAME["no_stop_grad"], 0, 2, out, str(tiny_fmnist), tmp_path / "w"
    )
    on_disk = json.loads((out / "simsiam-no_stop_grad-seed0.json").read_text())
    assert on_disk == json.loads(json.dumps(r))
    for key in ("method", "variant", "seed", "knn_z", "knn_h", "init_knn_z", "init_knn_h",
                "z_std_sqrt_d", "effective_rank", "m_o", "steps", "wall_seconds", "z_spectrum",
                "reproduced", "not_reproduced_because", "claim", "source"):  # fmt: skip
        assert key in on_disk, key
    assert "collapsed" not in on_disk  # the windowed verdict only
    assert on_disk["steps"] == 2 and on_disk["config"]["method"]["stop_grad"] is False
    assert on_disk["reproduced"] == (not on_disk["not_reproduced_because"])
    verdict = on_disk["verdict"]  # records.verdict on the run's own curve
    assert verdict["outcome"] in V.OUTCOMES and isinstance(verdict["agree"], list)
    assert verdict["window_fraction"] == V.WINDOW_FRACTION
    assert verdict == verdict_block(on_disk)
    assert on_disk["reproduced"] == (verdict["outcome"] in on_disk["expect_outcomes"])
    assert on_disk["expect_outcomes"] == list(BY_NAME["no_stop_grad"].expect)
    assert on_disk["expect"] == "collapse"
    validate(on_disk)
    assert on_disk["task"] == "ablation" and on_disk["run_id"] == "simsiam-no_stop_grad-seed0"
    curve = on_disk["curve"]  # step 0 (with the random-init kNN), then the logged steps
    assert [row["step"] for row in curve][0] == 0 and curve[-1]["step"] == 2
    assert curve[0]["knn_z"] == on_disk["init_knn_z"] and curve[-1]["knn_z"] == on_disk["knn_z"]
    assert curve[-1]["z_std_sqrt_d"] == on_disk["z_std_sqrt_d"]
    # the predictor's output p and the eval bank's RankMe ride in the curve; the spectrum once
    keys = {k for row in curve for k in row}
    assert {"p_std_sqrt_d", "rankme_p", "m_o_p", "rankme_eval", "m_o_p_eval"} <= keys
    assert "z_spectrum_eval" not in keys
    spectrum = on_disk["z_spectrum"]
    assert spectrum[0] == pytest.approx(1.0) and spectrum == sorted(spectrum, reverse=True)
    table = ablation_run.format_table(ablation_run.summarize([r]))
    assert "no_stop_grad" in table and "collapse" in table


def test_a_longer_reading_sits_beside_the_matrix_record(tiny_fmnist, tmp_path, monkeypatch):
    small_runs(monkeypatch)
    out, work = tmp_path / "results", tmp_path / "w"
    ablation_run.run_variant(BY_NAME["simsiam"], 0, 2, out, str(tiny_fmnist), work)
    matrix_record = (out / "simsiam-simsiam-seed0.json").read_bytes()
    longer = ablation_run.run_variant(BY_NAME["simsiam"], 0, 3, out, str(tiny_fmnist), work)
    assert sorted(p.name for p in out.glob("*.json")) == [
        "simsiam-simsiam-seed0-3steps.json",
        "simsiam-simsiam-seed0.json",
    ]
    assert (out / "simsiam-simsiam-seed0.json").read_bytes() == matrix_record
    assert longer["run_id"] == "simsiam-simsiam-seed0-3steps" and longer["steps"] == 3
    assert (work / "simsiam-simsiam-seed0").is_dir()  # its run directory was not reused


def test_a_dino_variant_runs_with_its_recipe_and_keeps_the_kl(tiny_fmnist, tmp_path, monkeypatch):
    small_runs(monkeypatch)
    out = tmp_path / "results"
    r = ablation_run.run_variant(
        BY_NAME["dino_no_centering"], 0, 2, out, str(tiny_fmnist), tmp_path / "w"
    )
    assert r["config"]["recipe"] == "dino_resnet18_fmnist"
    assert r["config"]["method"]["center_momentum"] == 1.0
    assert r["config"]["method"]["out_dim"] == 1024
    assert any("teacher_student_kl" in row for row in r["curve"])
    assert "KL(t‖s)" in r["verdict"]["votes"]  # the verdict's DINO statistic
    assert r["reproduced"] == (r["verdict"]["outcome"] in BY_NAME["dino_no_centering"].expect)


def test_the_matrix_resumes_where_it_stopped(tiny_fmnist, tmp_path, monkeypatch, capsys):
    """A run whose record is in --out is skipped, and said so; --rerun runs it again; after
    the runs every record is re-judged with the whole set's references."""
    small_runs(monkeypatch)
    out, work = tmp_path / "results", tmp_path / "w"
    args = ["--variants", "simsiam", "--seeds", "0", "--steps", "2", "--data", str(tiny_fmnist)]
    args += ["--out", str(out), "--work", str(work)]
    first = ablate.main(args)
    path = out / f"{ablation_run.run_name(BY_NAME['simsiam'], 0, 2)}.json"
    written = path.read_bytes()
    capsys.readouterr()
    again = ablate.main(args)
    printed = capsys.readouterr().out
    assert "simsiam seed 0: its record is in" in printed and "skipped" in printed
    assert path.read_bytes() == written  # not run again, and its verdict unchanged
    assert again == first == [json.loads(written)]
    ablate.main([*args, "--rerun"])
    assert "skipped" not in capsys.readouterr().out
    assert json.loads(path.read_bytes())["date"] >= first[0]["date"]


def test_rejudge_rewrites_old_records_and_drops_the_flag(tmp_path, capsys):
    """An old record (a single-point flag, a verdict without reference) is refused by the
    schema, and experiments/rejudge.py rewrites it from its curve."""
    from experiments import rejudge

    out = tmp_path / "ablation"
    out.mkdir()
    refs = [record_of("simsiam", s, 30.0) for s in (0, 1, 2)]
    old = {**record_of("enc_lr_10x", 0, 4.0), "collapsed": False, "expect": "no_collapse",
           "knn_z": 60.0, "knn_h": 80.0, "z_std_sqrt_d": 0.8, "effective_rank": 4.0,
           "m_o": 0.5, "reproduced": True, "verdict": {"outcome": "healthy"}}  # fmt: skip
    with pytest.raises(RecordError, match="python experiments/rejudge.py"):
        validate(old)
    for r in (*refs, old):
        full = {**old, **r, "collapsed": False, "verdict": {"outcome": "healthy"}}
        (out / f"{r['run_id']}.json").write_text(json.dumps(full))
    changes = rejudge.main(["--out", str(out)])
    table = capsys.readouterr().out
    assert {c.run_id: (c.old, c.new) for c in changes if c.changed} == {
        "simsiam-enc_lr_10x-seed0": ("healthy", V.DIMENSIONAL)
    }
    assert "simsiam-enc_lr_10x-seed0" in table and "1 of 4 records changed outcome" in table
    new = json.loads((out / "simsiam-enc_lr_10x-seed0.json").read_text())
    validate(new)
    assert "collapsed" not in new and new["verdict"]["outcome"] == V.DIMENSIONAL
    assert new["expect_outcomes"] == list(BY_NAME["enc_lr_10x"].expect)
    assert new["reproduced"] == (V.DIMENSIONAL in BY_NAME["enc_lr_10x"].expect)
    assert new["curve"] == old["curve"] and new["knn_h"] == old["knn_h"]
    assert rejudge.main(["--out", str(out)]) == [  # a second pass changes nothing
        rejudge.Change(c.run_id, c.new, c.new, c.ratio) for c in changes
    ]


def test_schema_checks_the_verdict_block():
    old = {
        "task": "ablation",
        "method": "simsiam",
        "variant": "simsiam",
        "expect": "no_collapse",
        "seed": 0,
        "reproduced": True,
        "knn_z": 50.0,
        "knn_h": 75.0,
        "z_std_sqrt_d": 0.9,
        "effective_rank": 30.0,
        "m_o": 0.3,
        "init_knn_h": 73.0,
    }
    with pytest.raises(RecordError, match="rejudge.py"):
        validate(old)  # a record written before the verdict
    good = V.judge(trace(0.9, 30, 0.3, -0.2, 72.0), loss_min=-1.0).as_record()
    validate({**old, "verdict": good})
    with pytest.raises(RecordError, match="rejudge.py"):
        validate({**old, "verdict": good, "collapsed": False})  # no flag beside it
    with pytest.raises(RecordError, match="verdict.outcome"):
        validate({**old, "verdict": {**good, "outcome": "collapsed"}})
    with pytest.raises(RecordError, match="verdict.text"):
        validate({**old, "verdict": {k: v for k, v in good.items() if k != "text"}})


def test_unknown_variant_is_named(capsys):
    with pytest.raises(ablate.AblationError, match="available: simsiam"):
        ablate.main(["--variants", "no_such_thing", "--seeds", "0"])
