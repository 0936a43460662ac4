"""Every number and named choice of the config is range-checked when the config is built."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from common.errors import UserError
from pretrain.config import Config, ConfigError, available_recipes, load_config
from pretrain.config_rules import FREE_TEXT, RULES
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.batch_size=0", "train.batch_size=0 is out of range: must be >= 1"),
        ("train.batch_size=-4", "train.batch_size=-4 is out of range: must be >= 1"),
        ("train.max_steps=-1", "train.max_steps=-1 is out of range: must be >= 0"),
        ("train.accum_steps=0", "train.accum_steps=0 is out of range: must be >= 1"),
        ("train.epochs=0", "train.epochs=0.0 is out of range: must be > 0"),
        ("train.epochs=nan", "train.epochs=nan is out of range: must be > 0"),
        ("train.log_every=0", "train.log_every=0 is out of range: must be >= 1"),
        ("optim.base_lr=-0.1", "optim.base_lr=-0.1 is out of range: must be >= 0"),
        ("optim.momentum=1.5", "optim.momentum=1.5 is out of range: must be in [0, 1]"),
        ("optim.weight_decay=-1e-4", "optim.weight_decay=-0.0001 is out of range: must be >= 0"),
        ("optim.weight_decay_end=-1", "optim.weight_decay_end=-1.0 is out of range"),
        ("data.crop_min_scale=0", "data.crop_min_scale=0.0 is out of range: must be in (0, 1]"),
        ("data.img_size=4", "data.img_size=4 is out of range: must be >= 8"),
        ("data.num_workers=-1", "data.num_workers=-1 is out of range: must be >= 0"),
        ("monitor.knn_k=0", "monitor.knn_k=0 is out of range: must be >= 1"),
        ("monitor.knn_t=0", "monitor.knn_t=0.0 is out of range: must be > 0"),
        ("method.momentum_base=1.1", "method.momentum_base=1.1 is out of range: must be in [0, 1]"),
        ("method.temperature=0", "method.temperature=0.0 is out of range: must be > 0"),
        ("method.proj_dim=0", "method.proj_dim=0 is out of range: must be >= 1"),
        ("model.width=0", "model.width=0 is out of range: must be >= 1"),
        ("train.seed=-1", "train.seed=-1 is out of range: must be in [0, 16777215]"),
        ("train.device=gpu", "train.device='gpu' is not a valid choice: must be one of 'auto'"),
        ("optim.name=adam", "optim.name='adam' is not a valid choice: must be one of 'sgd'"),
        ("method.loss=mse", "method.loss='mse' is not a valid choice: must be one of"),
        ("model.in_chans=2", "model.in_chans=2 is not a valid choice: must be one of 1, 3"),
    ],
)
def test_out_of_range_values_name_the_key_the_value_and_the_range(override, expected):
    with pytest.raises(ConfigError) as e:
        load_config("simsiam_resnet18_fmnist", [override])
    message = str(e.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_boundaries_that_are_valid_load():
    cfg = load_config(
        "simsiam_resnet18_fmnist",
        [
            "train.batch_size=1",
            "train.max_steps=0",
            "optim.base_lr=0",
            "optim.momentum=1",
            "data.crop_min_scale=1",
            "data.num_workers=0",
            "method.momentum_base=1.0",
            "train.ckpt_every=0",
            "monitor.knn_every_epochs=0",
        ],
    )
    assert cfg.train.batch_size == 1 and cfg.data.crop_min_scale == 1.0


def _leaves(cls: type, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            yield from _leaves(kind, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", kind


def test_every_number_and_choice_has_a_rule_and_every_default_passes_it():
    missing = []
    for key, kind in _leaves(Config):
        options = set(typing.get_args(kind)) - {type(None)} or {kind}
        if bool in options:
            continue
        if key not in RULES and key not in FREE_TEXT:
            missing.append(key)
    assert not missing, (
        f"config keys without a range rule in pretrain/config_rules.py RULES: {missing}"
    )
    defaults = Config().to_dict()
    for key, rule in RULES.items():
        section, _, name = key.rpartition(".")
        value = defaults[section][name] if section else defaults[name]
        rule.check(key, value)  # raises on a default outside its own range


@pytest.mark.parametrize("recipe", available_recipes())
def test_every_recipe_is_within_range(recipe):
    load_config(recipe)  # from_dict checks every rule


def test_batch_size_must_split_over_the_processes(tiny_fmnist, tmp_path, monkeypatch):
    from pretrain.train import Trainer
    from slurm.dist import DistEnv

    monkeypatch.setattr("pretrain.train.sdist.current", lambda: DistEnv(0, 3, 0, "test"))
    cfg = tiny_config(tiny_fmnist, "train.sync_bn=false")
    with pytest.raises(ConfigError) as e:
        Trainer(cfg, tmp_path / "run", [])
    assert str(e.value).startswith(
        "train.batch_size=64 is out of range for 3 processes: must be a multiple of 3"
    )


def test_the_project_errors_are_user_errors():
    from common.datasets import DataError
    from common.images import ImageError
    from pretrain.checkpoint import CheckpointError
    from slurm.presets import PresetError

    for error in (ConfigError, DataError, CheckpointError, PresetError, ImageError):
        assert issubclass(error, UserError), error
    assert issubclass(ConfigError, ValueError)  # callers catching ValueError still work


def test_cli_prints_one_error_line_for_an_out_of_range_value(tmp_path):
    """Options after overrides parse; the bad value is one line, exit 2 (was a traceback)."""
    proc = subprocess.run(
        [sys.executable, "pretrain/run.py", "train.batch_size=0", "--run-dir", str(tmp_path / "r")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: train.batch_size=0 is out of range: must be >= 1 "
        "(the global batch, split over the processes)"
    ]
    assert not (tmp_path / "r").exists()


def test_help_prints_the_whole_docstring_and_the_recipes(capsys):
    import pretrain.run as run

    with pytest.raises(SystemExit) as e:
        run.parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for paragraph in run.__doc__.strip().split("\n\n"):
        assert paragraph.strip() in out
    for recipe in available_recipes():
        assert recipe in out
    assert "train.max_steps" in out  # what may change on resume
