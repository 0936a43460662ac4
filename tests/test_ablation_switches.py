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


def identity_simsiam(**kw) -> SimSiam:
    """SimSiam whose backbone and projector are the identity: forward(z1, z2) sees z directly,
    so the loss's gradient w.r.t. z can be checked by hand."""
    m = model(**kw)
    m.backbone, m.projector = nn.Identity(), nn.Identity()
    return m


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def test_center_target_gradient_by_hand():
    """predictor 'none', center_target: L = D(z1, sg(t2))/2 + D(z2, sg(t1))/2 with
    t = ẑ − mean_batch ẑ (Zhang et al. 2022's residual r of the normalized z). Only the first
    term reaches z1: dL/dz1_i = −(1/2N)(t̂2_i − (ẑ1_i·t̂2_i) ẑ1_i)/‖z1_i‖."""
    m = identity_simsiam(predictor="none", center_target=True)
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    z2 = torch.randn(4, 3, generator=gen, dtype=torch.float64) + 1.0
    leaf = z1.clone().float().requires_grad_(True)
    out = m(leaf, z2.float())
    out["loss"].backward()

    t2 = unit(unit(z2) - unit(z2).mean(0))  # (N, D): the de-centred target, normalized
    t1 = unit(unit(z1) - unit(z1).mean(0))
    n = len(z1)
    loss = -((unit(z1) * t2).sum(1).mean() + (unit(z2) * t1).sum(1).mean()) / 2
    cos = (unit(z1) * t2).sum(1, keepdim=True)  # (N, 1)
    grad = -(t2 - cos * unit(z1)) / z1.norm(dim=1, keepdim=True) / (2 * n)
    assert out["loss"].item() == pytest.approx(loss.item(), abs=1e-6)
    torch.testing.assert_close(leaf.grad.double(), grad, rtol=1e-5, atol=1e-7)
    assert "p" not in out  # no predictor, no p
    # the plain target gives another gradient: the switch is not a no-op
    plain = identity_simsiam(predictor="none")
    other = z1.clone().float().requires_grad_(True)
    plain(other, z2.float())["loss"].backward()
    assert not torch.allclose(other.grad, leaf.grad, atol=1e-4)


def test_center_target_is_not_a_no_op_behind_the_output_bn():
    """SimSiam's projector ends in BN (affine=False): in training mode every channel of the raw
    z has batch mean 0, so the center is taken from the l2-normalized z, which still has one."""
    m = model(center_target=True)
    x1, x2 = views()
    (z1, z2), (p1, p2) = parts(m, [x1, x2])
    assert z2.mean(0).abs().max() < 1e-5  # the raw z is centred already
    r1, r2 = (unit(z) - unit(z).mean(0) for z in (z1.detach(), z2.detach()))
    expected = negative_cosine(p1, r2) / 2 + negative_cosine(p2, r1) / 2
    loss = m(x1, x2)["loss"]
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    plain = negative_cosine(p1, z2.detach()) / 2 + negative_cosine(p2, z1.detach()) / 2
    assert abs(loss.item() - plain.item()) > 1e-3
    torch.testing.assert_close(encoder_grads(m, loss), encoder_grads(m, expected))


def test_center_target_of_a_constant_batch_is_zero_and_pushes_nothing():
    """Every z2 equal: the residual is zero (fp32 rounding of the mean set to exactly 0), the
    cosine with a zero target is 0, so that term has loss 0 and gives z1 no gradient."""
    from pretrain.methods.simsiam import centered_target

    z2 = torch.tensor([[0.3, -1.7, 2.9]]).repeat(5, 1)  # (5, 3), every row equal
    assert torch.equal(centered_target(z2), torch.zeros(5, 3))
    near = z2 + 1e-3 * torch.randn(5, 3)  # a residual far above rounding is kept
    assert (centered_target(near).norm(dim=1) > 1e-5).all()
    m = identity_simsiam(predictor="none", center_target=True, loss="asymmetric")
    z1 = torch.randn(5, 3, requires_grad=True)
    out = m(z1, z2)
    out["loss"].backward()
    assert out["loss"].item() == 0.0
    assert torch.equal(z1.grad, torch.zeros(5, 3))


def test_center_target_needs_the_stop_gradient_target():
    for kw in ({"stop_grad": False}, {"mirror": True}, {"symmetric_predictor": True}):
        with pytest.raises(ValueError, match="center_target"):
            model(center_target=True, **kw)


def test_center_target_is_a_config_key(tiny_fmnist):
    from pretrain.config import load_config
    from pretrain.config_keys import config_keys

    cfg = tiny_config(tiny_fmnist, "method.center_target=true")
    assert cfg.method.center_target is True
    assert load_config("simsiam_resnet18_fmnist").method.center_target is False
    with pytest.raises(ConfigError, match="method.center_target must be of type bool"):
        tiny_config(tiny_fmnist, "method.center_target=2")
    info = {k.key: k for k in config_keys()}["method.center_target"]
    assert info.default is False and "de-cent" in info.meaning


def test_center_target_reaches_simsiam_and_only_simsiam(tiny_fmnist):
    assert build_method(tiny_config(tiny_fmnist, "method.center_target=true")).center_target
    assert not build_method(tiny_config(tiny_fmnist)).center_target
    with pytest.raises(ConfigError, match="center_target are SimSiam ablations"):
        build_method(tiny_config(tiny_fmnist, "method.name='byol'", "method.center_target=true"))
