"""transfer/run.py end to end on tiny data: model loading, every task, records, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from pretrain.checkpoint import atomic_save
from pretrain.hooks import write_encoder
from pretrain.methods import build_method
from records.splits import EvalSplit, evaluated_on
from tests.conftest import tiny_config
from transfer import run as transfer_run
from transfer.models import ModelError, load_model
from transfer.tasks import OptionError

ROOT = Path(__file__).resolve().parents[1]
TINY_SPEC = BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2, zero_init_residual=False)
RECORD_FIELDS = {
    "run_id", "task", "model", "pretrain", "protocol", "metrics", "seed", "git_sha", "hardware",
    "wall_seconds",
}  # fmt: skip


@pytest.fixture
def encoder_dir(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    ssl = {"method": "simsiam", "dataset": "fashion_mnist", "epochs": 3, "batch_size": 256}
    enc = Encoder.from_spec(TINY_SPEC, ssl=ssl)
    enc.save_pretrained(tmp_path / "encoder")
    return tmp_path / "encoder"


@pytest.fixture
def run_dir(tmp_path: Path, tiny_fmnist: Path) -> Path:
    """A pretraining run directory as pretrain/run.py leaves it (checkpoint + encoder folder)."""
    cfg = tiny_config(tiny_fmnist)
    model = build_method(cfg)
    run = tmp_path / "runs" / "simsiam_resnet18_fmnist-20260101-000000"
    ckpt = {"model": model.state_dict(), "config": cfg.to_dict(), "step": 4, "epoch": 0.5}
    atomic_save(ckpt, run / "checkpoints/last.pt")
    write_encoder(ckpt, run)
    return run


def _run(args: list[str], tmp_path: Path) -> list[dict]:
    return transfer_run.main(
        [*args, "--results-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path / "w")]
    )


def test_model_sources(run_dir: Path, encoder_dir: Path, monkeypatch) -> None:
    from_run = load_model(str(run_dir))
    assert from_run.kind == "run_dir" and from_run.pretrain["method"] == "simsiam"
    assert from_run.pretrain["recipe"] == "simsiam_resnet18_fmnist"
    assert (from_run.pretrain["trained_steps"], from_run.pretrain["trained_epochs"]) == (4, 0.5)
    assert from_run.preprocess["input_size"] == [1, 28, 28]  # the run's Fashion-MNIST pipeline
    ckpt = torch.load(run_dir / "checkpoints/last.pt", weights_only=False)["model"]
    torch.testing.assert_close(
        from_run.encoder.backbone.state_dict()["conv1.weight"], ckpt["backbone.conv1.weight"]
    )
    assert not any(p.requires_grad for p in from_run.encoder.parameters())
    from_dir = load_model(str(encoder_dir))
    assert from_dir.kind == "encoder_dir" and from_dir.pretrain["epochs"] == 3
    random = load_model(str(encoder_dir), random_init=True, seed=5)
    assert random.kind == "encoder_dir+random_init" and random.pretrain["random_init"]
    assert not torch.equal(
        random.encoder.backbone.conv1.weight, from_dir.encoder.backbone.conv1.weight
    )
    monkeypatch.setattr("transfer.models.DEFAULT_RUNS", run_dir.parent)
    assert load_model(None).model_id == run_dir.name  # the latest embedded run


def test_a_run_dir_without_its_encoder_folder_names_the_fix(run_dir: Path) -> None:
    import shutil

    shutil.rmtree(run_dir / "encoder")
    with pytest.raises(ModelError, match="pretrain/run.py --run-dir") as e:
        load_model(str(run_dir))
    assert "hub/publish.py" in str(e.value) and "\n" not in str(e.value)


def test_bad_models_name_the_fix(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ModelError, match="checkpoints/last.pt"):
        load_model(str(tmp_path))
    with pytest.raises(ModelError, match="Hub repo id"):
        load_model("no-such-thing")
    monkeypatch.setattr("transfer.models.DEFAULT_RUNS", tmp_path / "none")
    with pytest.raises(ModelError, match="python pretrain/run.py"):
        load_model(None)
    random = load_model(None, random_init=True)  # no run: the default recipe's architecture
    assert random.kind == "recipe+random_init" and random.preprocess["input_size"] == [1, 28, 28]


def test_knn_linear_lowshot_records(encoder_dir: Path, tiny_fmnist: Path, tmp_path) -> None:
    data = f"data_root={tiny_fmnist}"
    (knn,) = _run(["--task", "knn", "--model", str(encoder_dir), data], tmp_path)
    assert set(knn["metrics"]) == {"top1_k20", "top1_k200"} | {
        "raw_pixels_top1_k20",  # the model-free baseline on the same bank and queries
        "raw_pixels_top1_k200",
    }
    assert knn["protocol"]["t"] == 0.07 and knn["protocol"]["ks"] == [20, 200]
    (lin,) = _run(
        ["--task", "linear", "--model", str(encoder_dir), data, "epochs=20", "lrs=(0.1,1.0)"],
        tmp_path,
    )
    assert len(lin["extra"]["grid"]) == 4  # 2 lrs × (no BN, BN)
    assert lin["protocol"]["backbone_unchanged_check"] == "passed"
    assert lin["metrics"]["top1"] > 50  # the tiny set's bars are easy
    (low,) = _run(["--task", "lowshot", "--model", str(encoder_dir), data, "steps=20"], tmp_path)
    assert {"top1_1pct", "top1_10pct"} <= set(low["metrics"])
    assert low["protocol"]["subsets"]["10pct"]["size"] == 51  # 10% of each class of 512
    files = sorted((tmp_path / "results").rglob("*.json"))
    assert [f.parent.name for f in files] == ["knn", "linear", "lowshot"]
    for f in files:
        record = json.loads(f.read_text())
        assert set(record) >= RECORD_FIELDS
        assert record["pretrain"]["dataset"] == "fashion_mnist"
        assert record["protocol"]["eval_crop"].startswith("whole image")
        split = evaluated_on(record["task"], record["protocol"])  # the split, as stated
        assert split == EvalSplit("fashion_mnist", "test", 128, training=False), record["task"]
    assert not list((tmp_path / "results").rglob("*.tmp"))  # atomic writes leave nothing behind


def test_paper_preset_runs_and_is_recorded(encoder_dir: Path, tiny_fmnist: Path, tmp_path) -> None:
    args = ["--task", "linear", "--model", str(encoder_dir), f"data_root={tiny_fmnist}"]
    (rec,) = _run([*args, "protocol=byol", "paper_epochs=1"], tmp_path)
    assert rec["protocol"]["preset"]["optimizer"] == "nesterov"
    assert set(rec["metrics"]["val_top1_per_lr"]) == {"0.4", "0.3", "0.2", "0.1", "0.05"}
    assert rec["protocol"]["epochs_run"] == 1


def test_seeds_report_mean_and_std(encoder_dir: Path, tiny_fmnist: Path, tmp_path) -> None:
    args = ["--task", "linear", "--model", str(encoder_dir), f"data_root={tiny_fmnist}"]
    (rec,) = _run([*args, "--seeds", "2", "epochs=1", "lrs=(0.3,)", "bn=(False,)"], tmp_path)
    per_seed = [m["top1"] for m in rec["metrics"]["per_seed"]]
    assert rec["seed"] == [0, 1]
    assert rec["metrics"]["top1"] == pytest.approx(sum(per_seed) / 2)
    assert rec["metrics"]["top1_std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2**0.5)


def test_unknown_option_lists_valid_ones(encoder_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="valid: .*ks"):
        _run(["--task", "knn", "--model", str(encoder_dir), "kk=3"], tmp_path)
    with pytest.raises(OptionError, match="available: knn"):
        _run(["--task", "segmentation", "--model", str(encoder_dir)], tmp_path)


def test_fmnist_det_torchvision_c4_masks_and_fpn_voc(
    encoder_dir: Path, tiny_fmnist: Path, tmp_path: Path
) -> None:
    base = ["--task", "fmnist_det", "--model", str(encoder_dir), "--iters", "2"]
    data = [f"fmnist_root={tiny_fmnist}", "n_train=8", "n_test=4", f"data_dir={tmp_path / 'fd'}"]
    (c4,) = _run([*base, *data, "masks=true"], tmp_path)
    m = c4["metrics"]
    assert {"box_AP", "box_AP50", "mask_AP", "voc07_AP50"} <= set(m)
    assert all(0.0 <= m[k] <= 100.0 for k in ("box_AP50", "voc07_AP50"))
    assert c4["protocol"]["architecture"] == "Mask R-CNN, C4"
    assert c4["protocol"]["schedule"]["iters"] == 2
    assert evaluated_on("fmnist_det", c4["protocol"]) == EvalSplit("fmnist_det", "val", 4, False)
    (fpn,) = _run([*base, *data, "variant=fpn", "format=voc", "--short-side", "64",
                   "anchor_sizes=(8,16,32,64,128)", "fpn_channels=32"], tmp_path)  # fmt: skip
    assert fpn["protocol"]["architecture"] == "Faster R-CNN, FPN"
    assert fpn["protocol"]["schedule"]["test_size"] == 64
    assert "box_AP" not in fpn["metrics"] and "voc07_AP50" in fpn["metrics"]


# the CLI as it runs where detectron2 is not installed, whether or not this machine has it
WITHOUT_DETECTRON2 = (
    "import runpy, sys; sys.modules['detectron2'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def test_detectron2_engine_without_detectron2_says_how_to_install(
    encoder_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_DETECTRON2, str(ROOT / "transfer/run.py"), "--task",
         "coco_det", "--engine", "detectron2", "--model", str(encoder_dir), "--results-dir",
         str(tmp_path / "r")],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "detectron2 is not installed" in proc.stderr
    assert "python -m transfer.detection.install_detectron2" in proc.stderr
    assert "facebookresearch/detectron2" in proc.stderr
    assert not (tmp_path / "r").exists()  # no record for a run that did not happen
