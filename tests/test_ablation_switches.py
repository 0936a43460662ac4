"""SimSiam's ablation switches, as config values, checked against hand computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hub.backbones import BackboneSpec, create_backbone
from pretrain.config import ConfigError
from pretrain.methods import build_method
from pretrain.methods.simsiam import SimSiam, negative_cosine
from tests.conftest import tiny_config


def model(**kw) -> SimSiam:
    torch.manual_seed(0)
    spec = BackboneSpec(name="resnet18", in_chans=1, width=8, stem="small", stem_stride=2)
    return SimSiam(create_backbone(spec), proj_dim=16, proj_hidden_dim=32, pred_hidden_dim=4, **kw)


def views(n: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(8, 1, 28, 28, generator=gen) for _ in range(n)]


def parts(m: SimSiam, xs):
    zs = [m.projector(m.backbone(x)) for x in xs]
    return zs, [m.predictor(z) for z in zs]


def encoder_grads(m: SimSiam, loss: torch.Tensor) -> list[torch.Tensor]:
    m.zero_grad(set_to_none=True)
    loss.backward()
    return [
        p.grad.clone() if p.grad is not None else torch.zeros_like(p)
        for p in [*m.backbone.parameters(), *m.projector.parameters()]
    ]


def test_switches_are_config_values(tiny_fmnist):
    cfg = tiny_config(
        tiny_fmnist,
        "method.predictor='linear'",
        "method.loss='asymmetric'",
        "method.bn='none'",
        "method.proj_dim=24",
    )
    m = build_method(cfg)
    assert isinstance(m.predictor, nn.Linear) and m.predictor.weight.shape == (24, 24)
    assert m.loss_mode == "asymmetric"
    assert not any(isinstance(x, nn.BatchNorm1d) for x in m.projector)
    with pytest.raises(ConfigError, match="method.predictor='deep' is not a valid choice"):
        build_method(tiny_config(tiny_fmnist, "method.predictor='deep'"))
    with pytest.raises(ConfigError, match="needs stop_grad=True"):
        build_method(tiny_config(tiny_fmnist, "method.mirror=true", "method.stop_grad=false"))


@pytest.mark.parametrize(
    "bn,proj_bns,pred_bns",
    [("none", 0, 0), ("hidden", 2, 1), ("hidden_proj_out", 3, 1), ("all", 3, 2)],
)
def test_bn_placement_of_table_3(bn, proj_bns, pred_bns):
    m = model(bn=bn)
    assert sum(isinstance(x, nn.BatchNorm1d) for x in m.projector) == proj_bns
    assert sum(isinstance(x, nn.BatchNorm1d) for x in m.predictor) == pred_bns
    if bn in ("hidden_proj_out", "all"):
        assert isinstance(m.projector[-1], nn.BatchNorm1d)
    if bn == "all":
        assert isinstance(m.predictor[-1], nn.BatchNorm1d)


def test_asymmetric_loss_is_one_term():
    m = model(loss="asymmetric")
    x1, x2 = views()
    (z1, z2), (p1, _) = parts(m, [x1, x2])
    expected = negative_cosine(p1, z2.detach())
    assert m(x1, x2)["loss"].item() == pytest.approx(expected.item(), abs=1e-6)


def test_asymmetric_2x_uses_two_pairs_of_views():
    m = model(loss="asymmetric_2x")
    xs = views(4)
    zs, ps = parts(m, xs)
    expected = negative_cosine(ps[0], zs[1]) / 2 + negative_cosine(ps[2], zs[3]) / 2
    assert m(*xs)["loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ValueError, match="needs 4 views"):
        m(*xs[:2])


def test_asymmetric_2x_draws_four_views(tiny_fmnist):
    from pretrain.data import pretrain_dataset, pretrain_loader

    cfg = tiny_config(tiny_fmnist, "method.loss='asymmetric_2x'")
    batch = next(iter(pretrain_loader(cfg, pretrain_dataset(cfg), 0, 1)))
    assert len(batch) == 4 and not torch.equal(batch[0], batch[2])


def test_symmetric_predictor_targets_the_other_branch_prediction():
    m = model(symmetric_predictor=True)
    x1, x2 = views()
    _, (p1, p2) = parts(m, [x1, x2])
    expected = negative_cosine(p1, p2.detach()) / 2 + negative_cosine(p2, p1.detach()) / 2
    loss = m(x1, x2)["loss"]
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    torch.testing.assert_close(encoder_grads(m, loss), encoder_grads(m, expected))


def test_mirror_moves_the_stop_gradient_to_the_predictor_input():
    m = model(mirror=True)
    x1, x2 = views()

    def by_hand() -> torch.Tensor:  # D(h(sg(z1)), z2)/2 + D(h(sg(z2)), z1)/2
        (z1, z2), _ = parts(m, [x1, x2])
        return (
            negative_cosine(m.predictor(z1.detach()), z2) / 2
            + negative_cosine(m.predictor(z2.detach()), z1) / 2
        )

    def simsiam() -> torch.Tensor:  # the stop-gradient on the target instead
        (z1, z2), (p1, p2) = parts(m, [x1, x2])
        return negative_cosine(p1, z2.detach()) / 2 + negative_cosine(p2, z1.detach()) / 2

    loss = m(x1, x2)["loss"]
    assert loss.item() == pytest.approx(by_hand().item(), abs=1e-6)
    mirror_grads = encoder_grads(m, loss)
    torch.testing.assert_close(mirror_grads, encoder_grads(m, by_hand()))
    assert any(
        not torch.allclose(a, b)
        for a, b in zip(mirror_grads, encoder_grads(m, simsiam()), strict=True)
    )


@pytest.mark.parametrize("kind", ["none", "fixed_random", "linear", "bias"])
def test_predictor_variants_train_only_what_they_should(tiny_fmnist, kind):
    m = build_method(tiny_config(tiny_fmnist, f"method.predictor='{kind}'"))
    trainable = [p for p in m.predictor.parameters() if p.requires_grad]
    expected = {"none": 0, "fixed_random": 0, "linear": 2, "bias": 1}[kind]
    assert len(trainable) == expected
    x = torch.randn(8, 1, 28, 28)
    assert torch.isfinite(m(x, x.flip(-1))["loss"])


def test_constant_lr_predictor_is_fix_pred_lr(tiny_fmnist):
    from pretrain.optim import build_optimizer
    from pretrain.schedules import apply_lr

    cfg = tiny_config(tiny_fmnist, "optim.fix_pred_lr=true")
    opt = build_optimizer(build_method(cfg), cfg)
    apply_lr(opt, cfg.init_lr, 0.1 * cfg.init_lr)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"encoder": pytest.approx(0.1 * cfg.init_lr), "predictor": cfg.init_lr}
