"""The pieces every method shares: EMA update, schedules, LARS, parameter groups, heads."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from common.lars import LARS
from pretrain.ema import ema_update_
from pretrain.heads import BiasPredictor, bn_layout, build_predictor, mlp_head
from pretrain.optim import build_optimizer, build_param_groups
from pretrain.schedules import cosine_between, cosine_to_one, momentum_at
from tests.conftest import tiny_config


def two_nets() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    target = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    return online, target


def test_ema_with_momentum_one_leaves_the_target_unchanged():
    online, target = two_nets()
    before = [p.clone() for p in target.parameters()]
    ema_update_(target, online, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters(), strict=True))


def test_ema_with_momentum_zero_copies_the_online_network():
    online, target = two_nets()
    ema_update_(target, online, 0.0)
    assert all(
        torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters(), strict=True)
    )


def test_ema_matches_the_formula_and_is_in_place():
    online, target = two_nets()
    expected = [
        0.9 * t + 0.1 * o for t, o in zip(target.parameters(), online.parameters(), strict=True)
    ]
    storage = [p.data_ptr() for p in target.parameters()]
    ema_update_(target, online, 0.9)
    assert [p.data_ptr() for p in target.parameters()] == storage
    for e, t in zip(expected, target.parameters(), strict=True):
        torch.testing.assert_close(t, e)


def test_ema_rejects_mismatched_networks_and_bad_momentum():
    online, target = two_nets()
    with pytest.raises(ValueError, match="parameters"):
        ema_update_(nn.Linear(2, 2), online, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ema_update_(target, online, 1.5)


@pytest.mark.parametrize("base", [0.996, 0.99, 0.0])
def test_tau_schedule_matches_byol_formula_at_0_half_and_end(base):
    K = 1000
    # τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2: k=0 → τ_base, k=K/2 → (1+τ_base)/2, k=K → 1
    assert cosine_to_one(base, 0, K) == pytest.approx(base)
    assert cosine_to_one(base, K // 2, K) == pytest.approx((1 + base) / 2)
    assert cosine_to_one(base, K, K) == pytest.approx(1.0)
    k = 123
    assert cosine_to_one(base, k, K) == pytest.approx(
        1 - (1 - base) * (math.cos(math.pi * k / K) + 1) / 2
    )
    assert momentum_at(base, 500, K, "constant") == base


def test_weight_decay_cosine_runs_from_start_to_end():
    assert cosine_between(0.04, 0.4, 0, 100) == pytest.approx(0.04)
    assert cosine_between(0.04, 0.4, 50, 100) == pytest.approx(0.22)
    assert cosine_between(0.04, 0.4, 100, 100) == pytest.approx(0.4)


def test_lars_step_matches_the_formula_by_hand():
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # ‖w‖ = 5
    b = nn.Parameter(torch.tensor([1.0]))
    opt = LARS(
        [{"params": [w]}, {"params": [b], "weight_decay": 0.0, "no_decay": True}],
        lr=0.5,
        momentum=0.9,
        weight_decay=0.1,
        eta=0.01,
    )
    w.grad = torch.tensor([0.7, -0.9])
    b.grad = torch.tensor([2.0])
    opt.step()
    u = torch.tensor([0.7 + 0.1 * 3.0, -0.9 + 0.1 * 4.0])  # g + λw = (1.0, −0.5)
    trust = 0.01 * 5.0 / math.sqrt(1.0**2 + 0.5**2)
    v1 = trust * u
    torch.testing.assert_close(w.detach(), torch.tensor([3.0, 4.0]) - 0.5 * v1)
    torch.testing.assert_close(b.detach(), torch.tensor([1.0 - 0.5 * 2.0]))  # plain momentum SGD
    # second step: the momentum buffer carries v1
    w_before = w.detach().clone()
    w.grad = torch.tensor([0.7, -0.9])
    opt.step()
    u2 = torch.tensor([0.7, -0.9]) + 0.1 * w_before
    v2 = 0.9 * v1 + 0.01 * w_before.norm() / u2.norm() * u2
    torch.testing.assert_close(w.detach(), w_before - 0.5 * v2)


def test_lars_trust_ratio_is_one_for_a_zero_weight():
    w = nn.Parameter(torch.zeros(3))
    opt = LARS([w], lr=1.0, momentum=0.0, weight_decay=0.0, eta=1e-3)
    w.grad = torch.tensor([1.0, 2.0, 3.0])
    opt.step()
    torch.testing.assert_close(w.detach(), -torch.tensor([1.0, 2.0, 3.0]))


def test_bias_and_norm_exclusion_puts_every_1d_parameter_in_no_decay_groups(tiny_fmnist):
    cfg = tiny_config(
        tiny_fmnist, "optim.name='lars'", "optim.exclude_bias_norm=true", "optim.weight_decay=0.01"
    )
    from pretrain.methods import build_method

    model = build_method(cfg)
    groups = build_param_groups(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    excluded = {names[id(p)] for g in groups if g.get("no_decay") for p in g["params"]}
    kept = {names[id(p)] for g in groups if not g.get("no_decay") for p in g["params"]}
    assert "backbone.bn1.weight" in excluded and "backbone.bn1.bias" in excluded
    assert "predictor.3.bias" in excluded and "backbone.conv1.weight" in kept
    assert all(dict(model.named_parameters())[n].ndim == 1 for n in excluded)
    assert all(dict(model.named_parameters())[n].ndim > 1 for n in kept)
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, LARS)
    wd = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert wd["encoder"] == 0.01 and wd["encoder.no_decay"] == 0.0
    assert wd["predictor.no_decay"] == 0.0
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable


def test_bn_layouts_follow_simsiam_table_3():
    assert bn_layout("none") == {"hidden": False, "proj_out": False, "pred_out": False}
    assert bn_layout("hidden") == {"hidden": True, "proj_out": False, "pred_out": False}
    assert bn_layout("hidden_proj_out") == {"hidden": True, "proj_out": True, "pred_out": False}
    assert bn_layout("all") == {"hidden": True, "proj_out": True, "pred_out": True}
    with pytest.raises(ValueError, match="hidden_proj_out"):
        bn_layout("everywhere")


def test_predictor_variants():
    z = torch.randn(6, 8)
    assert torch.equal(build_predictor("none", 8, 4)(z), z)
    fixed = build_predictor("fixed_random", 8, 4)
    assert not any(p.requires_grad for p in fixed.parameters())
    linear = build_predictor("linear", 8, 4)
    assert isinstance(linear, nn.Linear) and linear.weight.shape == (8, 8)
    bias = build_predictor("bias", 8, 4)
    assert isinstance(bias, BiasPredictor)
    with torch.no_grad():
        bias.bias.fill_(0.5)
    torch.testing.assert_close(bias(z), z + 0.5)
    mlp = build_predictor("mlp", 8, 4, bn_last=True, bn_last_affine=False, bias=False)
    assert [type(m).__name__ for m in mlp] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
    ]
    assert mlp[3].bias is None and mlp[4].affine is False
    with pytest.raises(ValueError, match="fixed_random"):
        build_predictor("deep", 8, 4)


def test_mlp_head_hidden_bias_option():
    head = mlp_head([8, 16, 4], bn_hidden=True, hidden_bias=True)
    assert head[0].bias is not None and isinstance(head[1], nn.BatchNorm1d)
    assert mlp_head([8, 16, 4])[0].bias is None


def test_trainer_follows_a_weight_decay_schedule_and_spares_no_decay_groups(tiny_fmnist, tmp_path):
    from pretrain.train import Trainer

    cfg = tiny_config(
        tiny_fmnist,
        "optim.exclude_bias_norm=true",
        "optim.weight_decay=0.04",
        "optim.weight_decay_end=0.4",
        "train.max_steps=3",
        "monitor.knn_every_epochs=0",
    )
    trainer = Trainer(cfg, tmp_path / "run")
    seen = []
    step = trainer.train_step

    def spy(*views, momentum=None):
        seen.append({g["name"]: g["weight_decay"] for g in trainer.optimizer.param_groups})
        return step(*views, momentum=momentum)

    trainer.train_step = spy
    trainer.fit()
    K = trainer.schedule_steps
    for k, wds in enumerate(seen):
        assert wds["encoder"] == pytest.approx(cosine_between(0.04, 0.4, k, K))
        assert wds["encoder.no_decay"] == 0.0
