"""The predictor's learning dynamics: ``optim.pred_lr_mult`` and ``optim.pred_freeze_steps``.

Su 2020 and Tian et al. (ICML 2021) read SimSiam as a dynamical system in which the predictor
must adapt faster than the encoder; SimSiam §4.2 Table 1 (b) fixes it at its random init. The
multiplier scales the predictor's lr under every schedule; the freeze gives it lr 0 (no update)
for the first k steps, then it trains. Checked against hand computations.
"""

from __future__ import annotations

import math

import pytest
import torch

from pretrain.config import ConfigError
from pretrain.methods import build_method
from pretrain.optim import build_optimizer
from pretrain.schedules import apply_lr, lr_at
from tests.conftest import tiny_config


def cosine(init: float, epoch: float, epochs: float) -> float:
    """SimSiam repository ``adjust_learning_rate``, by hand."""
    return init * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


@pytest.mark.parametrize("mult", [0.1, 10.0])
@pytest.mark.parametrize("fix_pred_lr", [False, True])
def test_pred_lr_mult_scales_the_predictor_group_at_every_step(tiny_fmnist, mult, fix_pred_lr):
    fix = str(fix_pred_lr).lower()
    cfg = tiny_config(
        tiny_fmnist,
        "optim.base_lr=0.1",
        "train.epochs=4",
        f"optim.fix_pred_lr={fix}",
        f"optim.pred_lr_mult={mult}",
    )
    init = 0.1 * cfg.train.batch_size / 256
    assert cfg.init_lr == pytest.approx(init)
    opt = build_optimizer(build_method(cfg), cfg)
    start = {g["name"]: g["lr"] for g in opt.param_groups}
    assert start["predictor"] == pytest.approx(init * mult)  # before the first apply_lr
    for epoch, hand in [(0, init), (1, init * 0.5 * (1 + math.sqrt(0.5))), (2, init * 0.5)]:
        lr = lr_at(cfg.init_lr, epoch, cfg.train.epochs)
        assert lr == pytest.approx(hand) == pytest.approx(cosine(init, epoch, 4))
        apply_lr(opt, cfg.init_lr, lr)
        lrs = {g["name"]: g["lr"] for g in opt.param_groups}
        assert lrs["encoder"] == pytest.approx(hand)  # the encoder is not multiplied
        expected = (init if fix_pred_lr else hand) * mult
        assert lrs["predictor"] == pytest.approx(expected)


def test_pred_lr_mult_applies_to_the_no_decay_half_and_warmup(tiny_fmnist):
    cfg = tiny_config(
        tiny_fmnist,
        "optim.fix_pred_lr=false",
        "optim.exclude_bias_norm=true",
        "optim.warmup_epochs=1",
        "optim.pred_lr_mult=10.0",
    )
    opt = build_optimizer(build_method(cfg), cfg)
    lr = lr_at(cfg.init_lr, 0.5, cfg.train.epochs, warmup_epochs=1)
    assert lr == pytest.approx(cfg.init_lr / 2)  # halfway up the linear warmup
    apply_lr(opt, cfg.init_lr, lr)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["predictor"] == pytest.approx(lrs["predictor.no_decay"]) == pytest.approx(10 * lr)
    assert lrs["encoder"] == pytest.approx(lrs["encoder.no_decay"]) == pytest.approx(lr)


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def sgd_step(model: torch.nn.Module, opt: torch.optim.Optimizer, init_lr: float) -> None:
    """One training step as the trainer takes it: the lr first, then the update."""
    apply_lr(opt, init_lr, init_lr)
    torch.manual_seed(0)
    x = torch.randn(8, 1, 28, 28)
    loss = model(x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x))["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_frozen_predictor_is_unchanged_for_k_steps_then_trains(tiny_fmnist):
    k = 2
    cfg = tiny_config(tiny_fmnist, f"optim.pred_freeze_steps={k}", "optim.weight_decay=0.01")
    torch.manual_seed(0)
    model = build_method(cfg)
    opt = build_optimizer(model, cfg)
    assert {g["name"]: g["lr"] for g in opt.param_groups}["predictor"] == 0.0
    pred0, enc0 = snapshot(model.predictor), snapshot(model.projector)
    for step in range(k):
        sgd_step(model, opt, cfg.init_lr)
        assert same(snapshot(model.predictor), pred0), f"predictor moved at step {step}"
    assert not same(snapshot(model.projector), enc0)  # the encoder trained meanwhile
    # the count rides in the optimizer's state: a resumed optimizer is not frozen again
    resumed = build_optimizer(model, cfg)
    resumed.load_state_dict(opt.state_dict())
    assert {g["name"]: g.get("frozen_left") for g in resumed.param_groups}["predictor"] == 0
    sgd_step(model, resumed, cfg.init_lr)
    assert not same(snapshot(model.predictor), pred0)  # step k: the predictor adapts
    lrs = {g["name"]: g["lr"] for g in resumed.param_groups}
    assert lrs["predictor"] == pytest.approx(cfg.init_lr)


def test_no_freeze_by_default_the_predictor_moves_at_the_first_step(tiny_fmnist):
    cfg = tiny_config(tiny_fmnist)
    assert cfg.optim.pred_freeze_steps == 0 and cfg.optim.pred_lr_mult == 1.0
    torch.manual_seed(0)
    model = build_method(cfg)
    opt = build_optimizer(model, cfg)
    pred0 = snapshot(model.predictor)
    sgd_step(model, opt, cfg.init_lr)
    assert not same(snapshot(model.predictor), pred0)


@pytest.mark.parametrize(
    "override",
    ["optim.pred_lr_mult=-0.5", "optim.pred_freeze_steps=-1", "optim.pred_freeze_steps=1.5"],
)
def test_out_of_range_predictor_keys_are_refused(tiny_fmnist, override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        tiny_config(tiny_fmnist, override)
