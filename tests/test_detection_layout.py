"""The torchvision engine's CPU layout (``engine_torchvision.place``: the RoI heads in
channels_last) changes the speed, not the computation: losses and gradients agree with the
default layout to float rounding, and BatchNorm's backward gets the channels_last gradient its
fast path needs (``models.PooledHead``)."""

from __future__ import annotations

import copy

import torch

from hub.backbones import BackboneSpec, create_backbone
from transfer.detection import engine_torchvision as tv
from transfer.detection.models import build_detector


def _batch(n: int = 2) -> tuple[list, list]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 64, 80, generator=g) for _ in range(n)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 44.0], [30.0, 10.0, 70.0, 50.0]]),
         "labels": torch.tensor([1, 2])}
        for _ in range(n)
    ]  # fmt: skip
    return images, targets


def test_the_cpu_layout_computes_what_the_default_layout_computes() -> None:
    torch.manual_seed(0)
    backbone = create_backbone(
        BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2, zero_init_residual=False)
    )
    default = build_detector(
        backbone, 3, "c4", image_mean=(0.5,), image_std=(0.25,), min_size=(64,), max_size=128,
        anchor_sizes=(16, 32, 64), roi_resolution=8, box_batch_size_per_image=32,
        rpn_post_nms_top_n_train=64,
    )  # fmt: skip
    placed = tv.place(copy.deepcopy(default), torch.device("cpu"))
    res5 = placed.roi_heads.box_head.res5.res5
    assert next(res5.parameters()).is_contiguous(memory_format=torch.channels_last)
    assert placed.backbone.stem[0].weight.is_contiguous()  # the backbone keeps its layout

    grads_seen = []
    norm = placed.roi_heads.box_head.res5.norm
    norm.register_full_backward_hook(lambda m, gi, go: grads_seen.append(go[0]))
    images, targets = _batch()
    losses = {}
    for name, model in (("default", default), ("placed", placed)):
        model.train()
        torch.manual_seed(1)  # the same RoI sampling on both sides
        loss = sum(model(images, targets).values())
        loss.backward()
        losses[name] = loss
    torch.testing.assert_close(losses["placed"], losses["default"], rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(default.named_parameters(), placed.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=name)
    assert grads_seen and grads_seen[0].is_contiguous(memory_format=torch.channels_last)
