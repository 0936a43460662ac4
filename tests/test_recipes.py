"""Every recipe file loads and trains two steps on a tiny version of its backbone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pretrain.config import available_recipes, load_config
from pretrain.train import Trainer
from tests.conftest import TINY

RECIPES = available_recipes()
HEADS = ["method.proj_dim=16", "method.proj_hidden_dim=32", "method.pred_hidden_dim=32"]
TINY_VIT = ["model.embed_dim=48", "model.depth=1"]


def test_the_recipes_of_the_three_methods_are_all_there():
    expected = {
        "simsiam_resnet18_fmnist", "simsiam_resnet50_in1k",
        "byol_resnet18_fmnist", "byol_resnet50_in1k_100ep", "byol_resnet50_in1k_300ep",
        "byol_resnet50_in1k_1000ep",
        "mocov3_resnet18_fmnist", "mocov3_vit_fmnist", "mocov3_resnet50_in1k_100ep",
        "mocov3_resnet50_in1k_300ep", "mocov3_resnet50_in1k_1000ep",
        "mocov3_vit_small_in1k_300ep", "mocov3_vit_base_in1k_300ep",
    }  # fmt: skip
    assert expected <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_loads_and_names_its_method(recipe):
    cfg = load_config(recipe)
    assert cfg.recipe == recipe and recipe.startswith(cfg.method.name)


@pytest.mark.parametrize(
    "recipe,lr,wd,m",
    [
        ("byol_resnet50_in1k_100ep", 0.45, 1e-6, 0.99),
        ("byol_resnet50_in1k_300ep", 0.3, 1e-6, 0.99),
        ("byol_resnet50_in1k_1000ep", 0.2, 1.5e-6, 0.996),
        ("mocov3_resnet50_in1k_100ep", 0.6, 1e-6, 0.99),
        ("mocov3_resnet50_in1k_300ep", 0.3, 1e-6, 0.99),
        ("mocov3_resnet50_in1k_1000ep", 0.3, 1.5e-6, 0.996),
    ],
)
def test_paper_presets(recipe, lr, wd, m):
    """docs/recipes.md, "BYOL" and "MoCo v3": BYOL's presets; MoCo v3 CONFIG.md for ResNet-50."""
    cfg = load_config(recipe)
    assert (cfg.optim.base_lr, cfg.optim.weight_decay, cfg.method.momentum_base) == (lr, wd, m)
    assert cfg.optim.name == "lars" and cfg.optim.exclude_bias_norm
    assert cfg.train.batch_size == 4096 and cfg.optim.warmup_epochs == 10


def tiny_overrides(recipe: str, fmnist: Path, folder: Path) -> list[str]:
    cfg = load_config(recipe)
    vit = cfg.model.name.startswith("vit")
    common = [*HEADS, "train.max_steps=2", "train.precision='fp32'", "monitor.knn_every_epochs=0"]
    if cfg.data.dataset == "fashion_mnist":
        return [*TINY, *common, f"data.root={fmnist}", *(TINY_VIT if vit else [])]
    model = [*TINY_VIT, "model.patch_size=8"] if vit else ["model.width=8"]
    return [
        *common, *model, "model.img_size=32", "data.img_size=32", "data.num_workers=0",
        f"data.root={folder / 'train'}", f"data.val_root={folder / 'val'}",
        "train.batch_size=8", "train.epochs=1", "train.ckpt_every=0",
    ]  # fmt: skip


# DINO's recipes run their two steps in tests/test_dino.py, with these checks and DINO's own.
TWO_STEP_HERE = [r for r in RECIPES if not r.startswith("dino_")]


@pytest.mark.parametrize("recipe", TWO_STEP_HERE)
def test_two_steps_of_every_recipe_on_a_tiny_backbone(
    recipe, tiny_fmnist, tiny_imagefolder, tmp_path
):
    torch.set_num_threads(1)
    cfg = load_config(recipe, tiny_overrides(recipe, tiny_fmnist, tiny_imagefolder))
    trainer = Trainer(cfg, tmp_path / "run")
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.fit()
    assert trainer.step == 2 and math.isfinite(trainer.metrics["loss"])
    after = dict(model.named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert any(n.startswith("backbone.") for n in moved)
    if hasattr(model, "update_target"):  # the EMA target followed (momentum < 1)
        assert any(n.startswith(("target_", "momentum_")) for n in moved)
        assert 0 < trainer.metrics["momentum"] < 1
