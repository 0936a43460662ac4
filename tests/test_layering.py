"""The layers: which package imports which (common < records < hub, slurm < pretrain,
transfer < experiments), what pretraining and transfer share through ``common``, the encoder
folder every run writes for transfer, and the console scripts of pyproject.toml."""

from __future__ import annotations

import ast
import importlib
import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {
    "common", "records", "hub", "slurm", "pretrain", "transfer", "experiments", "leaderboards",
    "benchmarks",
}  # fmt: skip
# package -> the project packages it may import (its own included)
ALLOWED = {
    "common": {"common"},
    "records": {"common", "records"},
    "hub": {"common", "records", "hub"},
    "slurm": {"common", "slurm"},
    "pretrain": {"common", "records", "hub", "slurm", "pretrain"},
    "transfer": {"common", "records", "hub", "transfer"},
    "experiments": PROJECT - {"leaderboards", "benchmarks"},
}


def imported_packages(path: Path) -> set[str]:
    """The project packages a file imports anywhere (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names} & PROJECT
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    wrong = {
        str(f.relative_to(ROOT)): sorted(imported_packages(f) - ALLOWED[package]) for f in files
    }
    assert not {f: w for f, w in wrong.items() if w}


def test_importing_every_transfer_module_loads_nothing_of_pretrain() -> None:
    code = (
        "import pkgutil, importlib, sys, transfer, transfer.tasks, transfer.detection\n"
        "for pkg in (transfer, transfer.tasks, transfer.detection):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        if m.name != 'engine_detectron2':\n"
        "            importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pretrain', 'experiments'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_run_writes_its_encoder_folder_with_every_checkpoint(tiny_fmnist, tmp_path) -> None:
    from pretrain.hooks import Checkpointer
    from pretrain.train import Trainer
    from tests.conftest import tiny_config
    from transfer.models import load_model

    cfg = tiny_config(tiny_fmnist, "train.max_steps=4", "train.threads=1")
    trainer = Trainer(cfg, tmp_path / "run", [Checkpointer()]).fit()
    assert (tmp_path / "run" / "encoder" / "model.safetensors").is_file()
    loaded = load_model(str(tmp_path / "run"))
    assert loaded.kind == "run_dir" and loaded.pretrain["method"] == "simsiam"
    assert loaded.pretrain["trained_steps"] == 4
    assert loaded.preprocess["input_size"] == [1, 28, 28]  # Fashion-MNIST statistics, 28 px
    ours = trainer.model.backbone.state_dict()
    for key, value in loaded.encoder.backbone.state_dict().items():
        torch.testing.assert_close(value, ours[key].cpu(), rtol=0, atol=0)


def test_eval_transform_follows_the_encoders_pretrained_cfg() -> None:
    from PIL import Image
    from torchvision import transforms as T

    from common.transforms import eval_transform, imagenet_eval_transform
    from hub.backbones import BackboneSpec
    from hub.encoder import pretrained_cfg

    cfg = pretrained_cfg(BackboneSpec(name="resnet18"))  # 224 px, crop_pct 0.875, bicubic
    steps = eval_transform(cfg).transforms
    resize = next(t for t in steps if isinstance(t, T.Resize))
    assert resize.size in (256, [256]) and resize.interpolation == T.InterpolationMode.BICUBIC
    image = Image.new("RGB", (300, 260), (120, 30, 200))
    assert eval_transform(cfg)(image).shape == (3, 224, 224)
    assert eval_transform({**cfg, "input_size": [3, 160, 160]})(image).shape == (3, 160, 160)
    no_cfg = eval_transform(None, 96)  # an encoder without one: resize 110 / center crop 96
    assert [type(t) for t in no_cfg.transforms] == [
        type(t) for t in imagenet_eval_transform(96).transforms
    ]
    assert no_cfg(image).shape == (3, 96, 96)


def test_the_normalization_constants_are_timms() -> None:
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from common.image_stats import IMAGENET_MEAN, IMAGENET_STD
    from hub.backbones import BackboneSpec
    from hub.encoder import pretrained_cfg

    assert (IMAGENET_MEAN, IMAGENET_STD) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    cfg = pretrained_cfg(BackboneSpec(name="resnet18"))
    assert (tuple(cfg["mean"]), tuple(cfg["std"])) == (IMAGENET_MEAN, IMAGENET_STD)


def test_console_scripts_name_callables_that_parse_the_command_line() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {
        "siamhub-pretrain", "siamhub-sweep", "siamhub-ablate", "siamhub-transfer",
        "siamhub-publish", "siamhub-export", "siamhub-boards",
    } <= set(scripts)  # fmt: skip
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        mod = importlib.import_module(module)
        assert callable(getattr(mod, attr)), name
        assert callable(getattr(mod, "main", None)), name  # main(argv=None): sys.argv


def test_sweep_jobs_pickle_by_their_package_path() -> None:
    from experiments.sweep_job import SweepPointJob

    data = pickle.dumps(SweepPointJob(3))
    assert b"experiments.sweep_job" in data and b"__main__" not in data
    assert isinstance(pickle.loads(data), SweepPointJob)


def test_resuming_a_finished_run_writes_its_missing_encoder_folder(tiny_fmnist, tmp_path) -> None:
    """What the error of a run directory without ``encoder/`` tells the user to do."""
    import shutil

    from pretrain import run as pretrain_run
    from tests.conftest import TINY
    from transfer.models import ModelError, load_model

    run = tmp_path / "run"
    args = ["--run-dir", str(run), *TINY, f"data.root={tiny_fmnist}", "train.max_steps=2"]
    pretrain_run.main([*args, "train.threads=1", "eval.final_knn=false"])
    shutil.rmtree(run / "encoder")  # a run from before runs wrote it
    with pytest.raises(ModelError, match="no encoder folder"):
        load_model(str(run))
    pretrain_run.main(["--run-dir", str(run)])
    assert load_model(str(run)).pretrain["trained_steps"] == 2
