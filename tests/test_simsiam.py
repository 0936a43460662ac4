"""SimSiam as the paper and its repository define it: heads, BN placement, loss, stop-grad, lr."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pretrain.config import load_config
from pretrain.methods import build_method
from pretrain.methods.simsiam import SimSiam, negative_cosine
from pretrain.optim import build_optimizer
from pretrain.schedules import apply_lr, lr_at
from tests.conftest import tiny_config


def small_simsiam(stop_grad: bool = True) -> SimSiam:
    from hub.backbones import BackboneSpec, create_backbone

    spec = BackboneSpec(name="resnet18", in_chans=1, width=8, stem="small", stem_stride=2)
    return SimSiam(
        create_backbone(spec),
        proj_dim=16,
        proj_hidden_dim=32,
        pred_hidden_dim=4,
        stop_grad=stop_grad,
    )


def layer_kinds(seq: nn.Sequential) -> list[str]:
    return [type(m).__name__ for m in seq]


def test_imagenet_heads_match_the_paper():
    model = build_method(load_config("simsiam_resnet50_in1k"))
    proj, pred = model.projector, model.predictor
    assert layer_kinds(proj) == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
    ]
    assert [(m.in_features, m.out_features) for m in proj if isinstance(m, nn.Linear)] == [
        (2048, 2048),
        (2048, 2048),
        (2048, 2048),
    ]
    assert proj[0].bias is None and proj[3].bias is None
    assert proj[6].bias is not None and not proj[6].bias.requires_grad  # frozen last bias
    assert proj[7].affine is False  # output BN without affine
    assert layer_kinds(pred) == ["Linear", "BatchNorm1d", "ReLU", "Linear"]  # BN on hidden only
    assert [(m.in_features, m.out_features) for m in pred if isinstance(m, nn.Linear)] == [
        (2048, 512),
        (512, 2048),
    ]
    assert pred[0].bias is None and pred[3].bias is not None
    # zero-init residual: the last BN of every bottleneck starts with gamma 0
    assert all(block.bn3.weight.abs().sum() == 0 for block in model.backbone.layer1)


def test_loss_equals_formula_on_hand_made_vectors():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    z = torch.tensor([[0.0, 2.0], [2.0, 2.0], [-3.0, -4.0]])
    # cosines: 0, 1, -1 -> D = -(0 + 1 - 1) / 3 = 0
    assert negative_cosine(p, z).item() == pytest.approx(0.0, abs=1e-7)
    assert negative_cosine(p[1:2], z[1:2]).item() == pytest.approx(-1.0)
    assert negative_cosine(p[2:], z[2:]).item() == pytest.approx(1.0)


def test_forward_loss_is_symmetrized_negative_cosine():
    model = small_simsiam()
    x1, x2 = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)
    loss = model(x1, x2)["loss"]
    z1, z2 = model.projector(model.backbone(x1)), model.projector(model.backbone(x2))
    p1, p2 = model.predictor(z1), model.predictor(z2)

    def d(p, z):  # the formula, written out
        return (
            -((p / p.norm(dim=1, keepdim=True)) * (z / z.norm(dim=1, keepdim=True))).sum(1).mean()
        )

    assert loss.item() == pytest.approx((d(p1, z2) / 2 + d(p2, z1) / 2).item(), abs=1e-6)


@pytest.mark.parametrize("kind", ["mlp", "linear", "bias", "none"])
def test_forward_returns_the_predictors_output_beside_z(kind):
    """p is the first view's predictor output on z (detached): what the monitors of p and the
    predictor's eigen-alignment read; a model without a predictor returns none."""
    from hub.backbones import BackboneSpec, create_backbone

    spec = BackboneSpec(name="resnet18", in_chans=1, width=8, stem="small", stem_stride=2)
    model = SimSiam(create_backbone(spec), proj_dim=16, proj_hidden_dim=32, predictor=kind)
    x1, x2 = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)
    torch.manual_seed(0)
    out = model(x1, x2)
    assert set(out) == ({"loss", "z", "h", "p"} if kind != "none" else {"loss", "z", "h"})
    if kind == "none":
        return
    model.eval()  # BN on running statistics: the same function on the same input twice
    out = model(x1, x2)
    z = model.projector(model.backbone(x1))
    torch.testing.assert_close(out["z"], z.detach())
    torch.testing.assert_close(out["p"], model.predictor(z).detach())
    assert not out["p"].requires_grad and out["p"].shape == (8, 16)


def test_byol_returns_the_online_prediction_as_p():
    from hub.backbones import BackboneSpec, create_backbone
    from pretrain.methods.byol import BYOL

    spec = BackboneSpec(name="resnet18", in_chans=1, width=8, stem="small", stem_stride=2)
    model = BYOL(create_backbone(spec), proj_dim=8, proj_hidden_dim=16, pred_hidden_dim=16)
    model.eval()
    x1, x2 = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)
    out = model(x1, x2)
    z1 = model.projector(model.backbone(x1))
    torch.testing.assert_close(out["p"], model.predictor(z1).detach())
    t = [model.target_projector(model.target_backbone(x)) for x in (x2, x1)]
    q = [model.predictor(model.projector(model.backbone(x))) for x in (x1, x2)]
    expected = sum(model.pair_loss(qi, ti) for qi, ti in zip(q, t, strict=True))
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    no_pred = BYOL(create_backbone(spec), proj_dim=8, proj_hidden_dim=16, predictor="none")
    assert "p" not in no_pred(x1, x2)


@pytest.mark.parametrize("stop_grad", [True, False])
def test_no_gradient_through_the_stop_gradient_branch(stop_grad):
    """With a constant predictor output, z reaches the loss only through the target branch."""
    model = small_simsiam(stop_grad)
    with torch.no_grad():
        model.predictor[-1].weight.zero_()  # p = bias, independent of z
        model.predictor[-1].bias.normal_()
    model(torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28))["loss"].backward()
    grads = [p.grad for p in [*model.backbone.parameters(), *model.projector.parameters()]]
    flowing = any(g is not None and g.abs().sum() > 0 for g in grads)
    assert flowing is (not stop_grad)


def test_lr_schedule_matches_repository_per_epoch_cosine():
    init, epochs = 0.1, 100
    for epoch in range(epochs):  # facebookresearch/simsiam adjust_learning_rate
        expected = init * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
        assert lr_at(init, epoch, epochs) == pytest.approx(expected)
    assert lr_at(init, 5, 100, warmup_epochs=10) == pytest.approx(0.05)  # linear warmup


def test_init_lr_is_base_lr_times_batch_over_256():
    cfg = load_config("simsiam_resnet50_in1k")
    assert cfg.init_lr == pytest.approx(0.05 * 512 / 256)


@pytest.mark.parametrize("fix_pred_lr", [True, False])
def test_fix_pred_lr_keeps_predictor_at_init_lr(tiny_fmnist, fix_pred_lr):
    cfg = tiny_config(tiny_fmnist, f"optim.fix_pred_lr={str(fix_pred_lr).lower()}")
    model = build_method(cfg)
    opt = build_optimizer(model, cfg)
    decayed = lr_at(cfg.init_lr, 1, cfg.train.epochs)
    apply_lr(opt, cfg.init_lr, decayed)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["encoder"] == pytest.approx(decayed) and decayed < cfg.init_lr
    assert lrs["predictor"] == pytest.approx(cfg.init_lr if fix_pred_lr else decayed)
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == sum(1 for p in model.parameters() if p.requires_grad)


def test_trainer_lr_is_constant_within_an_epoch_like_the_repository(tiny_fmnist, tmp_path):
    from pretrain.train import Trainer

    cfg = tiny_config(tiny_fmnist, "optim.per_step=false")
    trainer = Trainer(cfg, tmp_path / "run")
    spe = trainer.steps_per_epoch
    lrs = []
    for step in range(2 * spe):
        trainer.step = step
        lrs.append(trainer.lr())
    assert len(set(lrs[:spe])) == 1 and len(set(lrs[spe:])) == 1
    assert lrs[spe] == pytest.approx(lr_at(cfg.init_lr, 1, cfg.train.epochs))
