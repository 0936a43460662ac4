"""Recipes load into the typed config; unknown keys and wrong types are errors naming the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pretrain.config import ConfigError, available_recipes, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("recipe", available_recipes())
def test_every_recipe_loads(recipe):
    cfg = load_config(recipe)
    assert cfg.recipe == recipe


def test_overrides_are_typed():
    cfg = load_config(
        "simsiam_resnet18_fmnist",
        ["train.epochs=2", "optim.base_lr=0.1", "method.stop_grad=false", "data.root=/x/y"],
    )
    assert cfg.train.epochs == 2.0 and isinstance(cfg.train.epochs, float)
    assert cfg.optim.base_lr == 0.1
    assert cfg.method.stop_grad is False
    assert cfg.data.root == "/x/y"


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(ConfigError) as e:
        load_config("simsiam_resnet18_fmnist", ["train.epoch=3"])
    assert (
        "train.epoch" in str(e.value) and "epochs" in str(e.value) and "batch_size" in str(e.value)
    )
    assert "pretrain/run.py --list-keys describes each" in str(e.value)  # where keys are listed


def test_unknown_section_names_the_valid_sections():
    with pytest.raises(ConfigError, match="valid keys in the top level: recipe, model, method"):
        load_config("simsiam_resnet18_fmnist", ["trian.epochs=3"])


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match=r"train.batch_size must be of type int, got str"):
        load_config("simsiam_resnet18_fmnist", ["train.batch_size=big"])
    with pytest.raises(ConfigError, match=r"method.stop_grad must be of type bool, got int"):
        load_config("simsiam_resnet18_fmnist", ["method.stop_grad=0"])


def test_unknown_recipe_lists_the_available_ones():
    with pytest.raises(ConfigError, match="simsiam_resnet18_fmnist"):
        load_config("simsiam_resnet18_mnist")


def test_bad_key_in_a_recipe_file(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('[optim]\nbase_lr = "fast"\n')
    with pytest.raises(ConfigError, match="optim.base_lr must be of type float"):
        load_config(str(recipe))


def test_cli_reports_config_errors_without_a_traceback():
    proc = subprocess.run(
        [sys.executable, "pretrain/run.py", "train.epoch=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown config key 'train.epoch'" in proc.stderr
    assert "Traceback" not in proc.stderr
