"""Linear probes: the one-pass grid equals separately trained heads; the frozen-backbone check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transfer.probe import (
    GridSpec,
    HeadGrid,
    fast_probe,
    grid_accuracy,
    grid_gradients,
    head_accuracy,
    train_grid,
    train_separate,
)
from transfer.probe_loop import (
    PRESETS,
    BackboneChangedError,
    check_unchanged,
    snapshot,
    tensor_batches,
    train_augment,
    train_in_loop,
)
from transfer.subsets import balanced_subset, load_subset, shipped_path


def _blobs(n: int = 600, dim: int = 16, classes: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=gen) * 2
    labels = torch.randint(classes, (n,), generator=gen)
    return centers[labels] + torch.randn(n, dim, generator=gen), labels


def test_grid_heads_equal_separately_trained_heads() -> None:
    feats, labels = _blobs()
    spec = GridSpec(lrs=(0.01, 0.3), bn=(False, True), epochs=3, batch_size=64, weight_decay=1e-4)
    grid = train_grid(feats, labels, spec, 4, progress=False)
    separate = train_separate(feats, labels, spec, 4, progress=False)
    for h, head in enumerate(separate):
        linear = head[-1] if isinstance(head, nn.Sequential) else head
        torch.testing.assert_close(grid.head_weight(h).T, linear.weight, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(grid.head_bias(h), linear.bias, rtol=1e-4, atol=1e-5)
    acc = grid_accuracy(grid, feats, labels)
    for h, head in enumerate(separate):
        assert acc[h].item() == pytest.approx(head_accuracy(head, feats, labels), abs=0.5)


def test_closed_form_gradients_equal_autograd() -> None:
    """dL/dW and dL/db of every head's mean cross-entropy, against autograd on the same grid."""
    feats, labels = _blobs(64, dim=16, classes=5)
    spec = GridSpec(lrs=(0.01, 0.1, 1.0), bn=(False, True))
    grid = HeadGrid(spec, 16, 5)
    with torch.no_grad():
        grid.bias.normal_()  # non-zero biases, so that they matter
    grid.train()
    logits = grid(feats)  # (H, B, C)
    loss = sum(nn.functional.cross_entropy(head_logits, labels) for head_logits in logits)
    loss.backward()
    expected = grid.weight.grad.clone(), grid.bias.grad.clone()
    grid_gradients(grid, feats, labels)
    torch.testing.assert_close(grid.weight.grad, expected[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grid.bias.grad, expected[1], rtol=1e-5, atol=1e-7)


def test_bf16_grid_picks_the_same_head_within_a_point() -> None:
    feats, labels = _blobs(800)
    spec = GridSpec(lrs=(0.01, 0.1, 1.0), bn=(False, True), epochs=3, batch_size=64)
    fp32 = grid_accuracy(train_grid(feats, labels, spec, 4, progress=False), feats, labels)
    bf16_spec = GridSpec(**{**spec.__dict__, "precision": "bf16"})
    bf16 = grid_accuracy(train_grid(feats, labels, bf16_spec, 4, progress=False), feats, labels)
    assert (bf16 - fp32).abs().max().item() <= 1.0


def test_nesterov_grid_matches_torch_sgd() -> None:
    feats, labels = _blobs(200)
    spec = GridSpec(lrs=(0.1,), bn=(False,), epochs=2, batch_size=50, nesterov=True)
    grid = train_grid(feats, labels, spec, 4, progress=False)
    (head,) = train_separate(feats, labels, spec, 4, progress=False)
    torch.testing.assert_close(grid.head_weight(0).T, head.weight, rtol=1e-4, atol=1e-5)


def test_fast_probe_picks_on_held_out_split() -> None:
    train, test = _blobs(800, seed=1), _blobs(200, seed=1)
    test = (test[0], test[1])
    spec = GridSpec(lrs=(1e-5, 0.1), bn=(False,), epochs=3, batch_size=64)
    result = fast_probe(train, test, spec, val_fraction=0.2, progress=False)
    assert result.heads[result.best] == (0.1, False)  # the tiny lr barely moves from init
    assert result.test_top1[result.best] > 90


def _tiny_backbone() -> nn.Module:
    from hub.backbones import BackboneSpec, create_backbone

    spec = BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2, zero_init_residual=False)
    return create_backbone(spec).eval()


def _loop(backbone: nn.Module, frozen: bool) -> nn.Module:
    images = torch.randint(0, 255, (64, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    batches, steps = tensor_batches(images, labels, 32, train_augment("fashion_mnist", 28, 1), 0)
    preset = PRESETS["mocov3"]
    return train_in_loop(
        backbone, batches, steps, 10, preset, 0.1, torch.device("cpu"), epochs=1, frozen=frozen
    )


def test_frozen_probe_leaves_backbone_unchanged() -> None:
    backbone = _tiny_backbone()
    before = snapshot(backbone)
    head = _loop(backbone, frozen=True)
    assert head.weight.shape == (10, backbone.num_features)
    check_unchanged(before, backbone)


def test_unfrozen_backbone_fails_the_sanity_check() -> None:
    with pytest.raises(BackboneChangedError, match="backbone changed during the linear probe"):
        _loop(_tiny_backbone(), frozen=False)


def test_bn_statistics_change_is_caught() -> None:
    backbone = _tiny_backbone()
    before = snapshot(backbone)
    backbone.train()
    with torch.no_grad():
        backbone(torch.randn(4, 1, 28, 28))  # only BN running stats move
    with pytest.raises(BackboneChangedError, match="running_mean|running_var|num_batches"):
        check_unchanged(before, backbone)


def test_lars_preset_trains_the_head() -> None:
    backbone = _tiny_backbone()
    images = torch.randint(0, 255, (64, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    batches, steps = tensor_batches(images, labels, 32, train_augment("fashion_mnist", 28, 1), 0)
    torch.manual_seed(0)
    head = train_in_loop(
        backbone, batches, steps, 10, PRESETS["simsiam"], 1.6, torch.device("cpu"), epochs=1
    )
    torch.manual_seed(0)
    fresh = nn.Linear(backbone.num_features, 10)
    nn.init.normal_(fresh.weight, std=0.01)
    assert not torch.equal(head.weight, fresh.weight)


def test_balanced_subsets_are_fixed_and_balanced() -> None:
    labels = torch.arange(10).repeat_interleave(100)
    a, b = balanced_subset(labels, 0.1, 0), balanced_subset(labels, 0.1, 0)
    assert torch.equal(a, b) and len(a) == 100
    assert torch.bincount(labels[a]).tolist() == [10] * 10
    assert not torch.equal(a, balanced_subset(labels, 0.1, 1))


def test_shipped_fashion_mnist_subsets_match_the_generator(real_fmnist) -> None:
    from common.datasets import load_fashion_mnist

    _, labels = load_fashion_mnist(real_fmnist, "train")
    for pct in (1, 10):
        assert shipped_path("fashion_mnist", pct).is_file()
        shipped = load_subset("fashion_mnist", pct, labels)
        assert torch.equal(shipped, balanced_subset(labels, pct / 100, 0))
        assert len(shipped) == 600 * pct


def test_precision_auto_follows_the_hardware() -> None:
    from transfer.probe import resolve_precision

    cpu = torch.device("cpu")
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="'auto', 'fp32' or 'bf16'"):
        resolve_precision("fp16", cpu)
