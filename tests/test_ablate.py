"""The collapse-ablation benchmark: claims judged by hand, one record per run, the matrix."""

from __future__ import annotations

import json

import pytest

from experiments import ablate, ablation_run
from experiments.ablation_matrix import BY_NAME, MATRIX
from experiments.ablation_run import judge


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
    collapse = {v.name for v in MATRIX if v.expect == "collapse"}
    healthy = {v.name for v in MATRIX if v.expect == "no_collapse"}
    assert {"no_stop_grad", "no_predictor", "fixed_random_predictor", "symmetric_predictor",
            "mirror"} <= collapse  # fmt: skip
    assert {"simsiam", "pred_const_lr", "linear_predictor", "byol_tau0.99", "mocov3"} <= healthy
    assert len(BY_NAME) == len(MATRIX)


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
                "z_std_sqrt_d", "effective_rank", "m_o", "collapsed", "steps", "wall_seconds",
                "reproduced", "not_reproduced_because", "claim", "source"):  # fmt: skip
        assert key in on_disk, key
    assert on_disk["steps"] == 2 and on_disk["config"]["method"]["stop_grad"] is False
    assert on_disk["reproduced"] == (not on_disk["not_reproduced_because"])
    assert on_disk["task"] == "ablation" and on_disk["run_id"] == "simsiam-no_stop_grad-seed0"
    curve = on_disk["curve"]  # step 0 (with the random-init kNN), then the logged steps
    assert [row["step"] for row in curve][0] == 0 and curve[-1]["step"] == 2
    assert curve[0]["knn_z"] == on_disk["init_knn_z"] and curve[-1]["knn_z"] == on_disk["knn_z"]
    assert curve[-1]["z_std_sqrt_d"] == on_disk["z_std_sqrt_d"]
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


def test_unknown_variant_is_named(capsys):
    with pytest.raises(ablate.AblationError, match="available: simsiam"):
        ablate.main(["--variants", "no_such_thing", "--seeds", "0"])
