"""BYOL as the paper defines it: loss, EMA target and its τ schedule, heads, augmentations."""

from __future__ import annotations

import pytest
import torch

from hub.backbones import BackboneSpec, create_backbone
from pretrain.config import load_config
from pretrain.methods import build_method
from pretrain.methods.byol import BYOL, byol_loss
from tests.conftest import TINY


def small_byol(**kw) -> BYOL:
    spec = BackboneSpec(name="resnet18", in_chans=1, width=8, stem="small", stem_stride=2)
    return BYOL(create_backbone(spec), proj_dim=8, proj_hidden_dim=16, pred_hidden_dim=16, **kw)


def byol_tiny(root, *extra):
    heads = ["method.proj_dim=16", "method.proj_hidden_dim=32", "method.pred_hidden_dim=32"]
    return load_config(
        "byol_resnet18_fmnist",
        [*TINY, *heads, f"data.root={root}", "optim.warmup_epochs=0", *extra],
    )


def test_loss_is_two_minus_two_cosine_on_hand_made_vectors():
    q = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    z = torch.tensor([[0.0, 5.0], [2.0, 2.0], [-3.0, -4.0]])
    # cosines 0, 1, −1 → 2 − 2cos = 2, 0, 4 → mean 2
    assert byol_loss(q, z).item() == pytest.approx(2.0)
    # and it is the squared distance of the normalized vectors (BYOL Eq. 2)
    qn, zn = q / q.norm(dim=1, keepdim=True), z / z.norm(dim=1, keepdim=True)
    assert byol_loss(q, z).item() == pytest.approx(((qn - zn) ** 2).sum(1).mean().item())


def test_forward_is_the_symmetrized_sum_against_the_target_network():
    model = small_byol()
    with torch.no_grad():  # make the target differ from the online network
        for p in model.target_backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x1, x2 = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)
    loss = model(x1, x2)["loss"]
    q1 = model.predictor(model.projector(model.backbone(x1)))
    q2 = model.predictor(model.projector(model.backbone(x2)))
    t1 = model.target_projector(model.target_backbone(x1))
    t2 = model.target_projector(model.target_backbone(x2))

    def two_minus_two_cos(a, b):
        return (2 - 2 * torch.nn.functional.cosine_similarity(a, b, dim=1)).mean()

    expected = two_minus_two_cos(q1, t2) + two_minus_two_cos(q2, t1)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    asym = small_byol(loss="asymmetric")
    asym.load_state_dict(model.state_dict())
    assert asym(x1, x2)["loss"].item() == pytest.approx(two_minus_two_cos(q1, t2).item(), rel=1e-5)


def test_target_gets_no_gradient_and_is_not_optimized(tiny_fmnist):
    model = small_byol()
    model(torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28))["loss"].backward()
    assert all(p.grad is None for p in model.target().parameters())
    assert any(p.grad is not None for p in model.backbone.parameters())
    groups = model.param_groups(False)
    grouped = {id(p) for g in groups for p in g["params"]}
    assert not grouped & {id(p) for p in model.target().parameters()}


def test_heads_are_4096_to_256_without_output_bn():
    model = build_method(load_config("byol_resnet50_in1k_1000ep"))
    kinds = [type(m).__name__ for m in model.projector]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert [type(m).__name__ for m in model.predictor] == kinds
    assert (model.projector[0].in_features, model.projector[0].out_features) == (2048, 4096)
    assert (model.projector[3].in_features, model.projector[3].out_features) == (4096, 256)
    assert (model.predictor[0].in_features, model.predictor[3].out_features) == (256, 256)
    cfg = load_config("byol_resnet50_in1k_1000ep")
    assert cfg.method.momentum_base == 0.996 and cfg.optim.name == "lars"
    assert cfg.optim.exclude_bias_norm and cfg.init_lr == pytest.approx(0.2 * 4096 / 256)


def test_trainer_applies_the_tau_schedule_to_the_target(tiny_fmnist, tmp_path):
    from pretrain.schedules import cosine_to_one
    from pretrain.train import Trainer

    cfg = byol_tiny(tiny_fmnist, "train.max_steps=3")
    trainer = Trainer(cfg, tmp_path / "run")
    seen = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, m):
            seen.append(m)
            self.inner(m)

    trainer.model.update_target = Spy(trainer.model.update_target)
    trainer.fit()
    K = trainer.schedule_steps
    assert seen == [pytest.approx(cosine_to_one(0.99, k, K)) for k in range(3)]


def test_fixed_random_target_never_moves_and_tau_zero_copies(tiny_fmnist, tmp_path):
    from pretrain.train import Trainer

    cfg = byol_tiny(tiny_fmnist, "train.max_steps=2", "method.momentum_base=1.0")
    trainer = Trainer(cfg, tmp_path / "fixed")
    before = [p.clone() for p in trainer.model.target().parameters()]
    trainer.fit()
    after = list(trainer.model.target().parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    online = list(trainer.model.online().parameters())  # started equal to the target
    assert not all(torch.equal(a, b) for a, b in zip(before, online, strict=True))

    cfg = byol_tiny(
        tiny_fmnist,
        "train.max_steps=2",
        "method.momentum_base=0.0",
        "method.momentum_schedule='constant'",
    )
    trainer = Trainer(cfg, tmp_path / "tau0").fit()
    for t, o in zip(
        trainer.model.target().parameters(), trainer.model.online().parameters(), strict=True
    ):
        assert torch.equal(t, o)


def test_byol_rejects_simsiam_only_switches(tiny_fmnist):
    from pretrain.config import ConfigError

    with pytest.raises(ConfigError, match="SimSiam ablations"):
        build_method(byol_tiny(tiny_fmnist, "method.mirror=true"))


def test_asymmetric_views_blur_and_solarize_as_byol_table_6(tiny_fmnist):
    from common.small_augment import SmallImageAugment
    from pretrain.augment import BYOL_VIEWS
    from pretrain.data import pretrain_dataset

    assert BYOL_VIEWS == ({"blur_p": 1.0, "solarize_p": 0.0}, {"blur_p": 0.1, "solarize_p": 0.2})
    ds = pretrain_dataset(byol_tiny(tiny_fmnist))
    a, b = ds.augments
    assert (a.blur_p, a.solarize_p, b.blur_p, b.solarize_p) == (1.0, 0.0, 0.1, 0.2)
    assert a.interpolation == "bicubic"
    images = torch.full((4, 1, 28, 28), 255, dtype=torch.uint8)
    images[:, :, :, :14] = 0
    plain = dict(crop_min_scale=1.0, jitter_p=0.0, flip_p=0.0)
    gen = torch.Generator().manual_seed(0)
    sharp = SmallImageAugment(**plain)(images, gen)
    blurred = SmallImageAugment(**plain, blur_p=1.0)(images, torch.Generator().manual_seed(0))
    assert not torch.allclose(sharp, blurred)  # the edge is softened
    assert blurred[:, :, :, 13:15].std() < sharp[:, :, :, 13:15].std()
    sol = SmallImageAugment(**plain, solarize_p=1.0)(images, torch.Generator().manual_seed(0))
    from common.image_stats import FMNIST_MEAN, FMNIST_STD

    white = (1.0 - FMNIST_MEAN[0]) / FMNIST_STD[0]
    black = (0.0 - FMNIST_MEAN[0]) / FMNIST_STD[0]
    assert sharp[0, 0, 5, 25].item() == pytest.approx(white, abs=1e-4)
    assert sol[0, 0, 5, 25].item() == pytest.approx(black, abs=1e-4)  # ≥ 0.5 inverted


def test_gaussian_blur_keeps_a_constant_image():
    from common.small_augment import gaussian_blur_batch

    x = torch.full((3, 1, 10, 10), 0.7)
    y = gaussian_blur_batch(x, torch.tensor([0.1, 1.0, 2.0]), 3)
    torch.testing.assert_close(y, x)
