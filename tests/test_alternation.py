"""SimSiam's multi-step alternation (``method.target_refresh_steps``, SimSiam §5).

The hypothesis reads stop-gradient as one step of an alternating optimisation: targets η_x are
solved with θ fixed, then θ takes SGD steps against them. With k > 0 the targets come from a
frozen copy of backbone + projector refreshed to θ after every k optimizer steps; refreshing
after every step is SimSiam itself.
"""

from __future__ import annotations

import pytest
import torch

from hub.encoder import Encoder
from pretrain.config import ConfigError
from pretrain.hooks import Checkpointer
from pretrain.methods import build_method
from pretrain.optim import build_optimizer
from pretrain.schedules import apply_lr
from pretrain.train import Trainer
from tests.conftest import tiny_config


def views(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 1, 28, 28, generator=g)  # (N, 1, 28, 28)
    return x + 0.1 * torch.randn(x.shape, generator=g), x + 0.1 * torch.randn(x.shape, generator=g)


def train(model: torch.nn.Module, cfg, steps: int, start: int = 0) -> list[float]:
    """``steps`` SGD steps as the trainer takes them (lr, forward, step, refresh hook)."""
    opt = build_optimizer(model, cfg)
    losses = []
    for step in range(start, start + steps):
        apply_lr(opt, cfg.init_lr, cfg.init_lr)
        loss = model(*views(step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_optimizer_step()
        losses.append(loss.item())
    return losses


def params(*modules: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def build(tiny_fmnist, *extra: str):
    cfg = tiny_config(tiny_fmnist, "optim.weight_decay=0.0", *extra)
    torch.manual_seed(0)
    return build_method(cfg), cfg


def test_refreshing_every_step_is_simsiam(tiny_fmnist):
    plain, cfg = build(tiny_fmnist)
    alternating, cfg1 = build(tiny_fmnist, "method.target_refresh_steps=1")
    shared = params(plain.backbone, plain.projector, plain.predictor)  # same seed, same θ
    assert same(params(alternating.backbone, alternating.projector, alternating.predictor), shared)
    a = train(plain, cfg, 3)
    b = train(alternating, cfg1, 3)
    assert a == pytest.approx(b, abs=1e-6)
    for x, y in zip(params(plain.backbone), params(alternating.backbone), strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


def test_the_target_is_held_for_k_steps_then_becomes_theta(tiny_fmnist):
    k = 3
    model, cfg = build(tiny_fmnist, f"method.target_refresh_steps={k}")
    start = params(model.backbone, model.projector)
    assert same(params(model.target_backbone, model.target_projector), start)
    assert not any(p.requires_grad for p in model.target_backbone.parameters())
    for step in range(k - 1):
        train(model, cfg, 1, start=step)
        assert same(params(model.target_backbone, model.target_projector), start)
        assert not same(params(model.backbone, model.projector), start)  # θ moved
        assert int(model.steps_since_refresh) == step + 1
    train(model, cfg, 1, start=k - 1)
    theta = params(model.backbone, model.projector)
    assert same(params(model.target_backbone, model.target_projector), theta)
    assert int(model.steps_since_refresh) == 0


def test_no_gradient_reaches_the_target_and_the_loss_differs_from_simsiam(tiny_fmnist):
    model, cfg = build(tiny_fmnist, "method.target_refresh_steps=5")
    plain, _ = build(tiny_fmnist)
    train(model, cfg, 2)
    train(plain, cfg, 2)
    loss = model(*views(9))["loss"]
    loss.backward()
    assert all(p.grad is None for p in model.target_backbone.parameters())
    assert loss.item() != pytest.approx(plain(*views(9))["loss"].item(), abs=1e-6)


def test_a_resumed_model_refreshes_on_the_same_steps(tiny_fmnist):
    k = 4
    model, cfg = build(tiny_fmnist, f"method.target_refresh_steps={k}")
    train(model, cfg, 2)
    state = {n: t.clone() for n, t in model.state_dict().items()}
    assert int(state["steps_since_refresh"]) == 2
    assert any(n.startswith("target_backbone.") for n in state)
    resumed, _ = build(tiny_fmnist, f"method.target_refresh_steps={k}")
    resumed.load_state_dict(state)  # strict: the copy and the count are in the checkpoint
    held = params(resumed.target_backbone)
    train(resumed, cfg, 1, start=2)
    assert same(params(resumed.target_backbone), held)  # step 3 of 4: still held
    train(resumed, cfg, 1, start=3)
    assert same(params(resumed.target_backbone), params(resumed.backbone))  # refreshed


def test_the_trainer_refreshes_the_target_and_the_run_publishes(tiny_fmnist, tmp_path):
    cfg = tiny_config(tiny_fmnist, "method.target_refresh_steps=2", "train.max_steps=3")
    trainer = Trainer(cfg, tmp_path / "run", hooks=[Checkpointer()]).fit()
    assert trainer.step == 3
    assert int(trainer.model.steps_since_refresh) == 1  # refreshed after step 2, one since
    assert not same(params(trainer.model.target_backbone), params(trainer.model.backbone))
    # the checkpoint's encoder imports strictly: the copy and its count are heads, dropped
    encoder = Encoder.from_pretrained(tmp_path / "run" / "encoder")
    state = encoder.backbone.state_dict()
    for name, tensor in trainer.model.backbone.state_dict().items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (("method.target_refresh_steps=-1",), "target_refresh_steps"),
        (("method.target_refresh_steps=2", "method.stop_grad=false"), "stop_grad"),
        (("method.target_refresh_steps=2", "method.mirror=true"), "mirror"),
        (("method.name='byol'", "method.target_refresh_steps=2"), "target_refresh_steps"),
    ],
)
def test_the_alternation_is_refused_where_it_means_nothing(tiny_fmnist, extra, match):
    with pytest.raises(ConfigError, match=match):
        build(tiny_fmnist, *extra)
