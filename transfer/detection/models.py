"""torchvision detectors on our encoder's ResNet backbone, as close to the MoCo protocol as
torchvision allows (docs/recipes.md, "Detection transfer").

- ``c4``: the R50-C4 design of detectron2 that MoCo and SimSiam use. stem..res4 is the
  backbone (one stride-16 feature map, or stride 8 with the small stem at stride 2); RoIAlign
  14×14 on it; res5 (the encoder's own ``layer4``, stride 2) is the box head, followed by an
  extra BatchNorm (MoCo's ``Res5ROIHeadsExtraNorm``) and average pooling. Mask R-CNN reuses the
  same res5 on the mask RoIs (detectron2's shared res5), then a 2× deconvolution to 14×14 masks.
- ``fpn``: torchvision's ``BackboneWithFPN`` over res2..res5 with the standard two-fc box head.

BN stays trainable and nothing is frozen (FREEZE_AT 0): the encoder's BatchNorm layers train
with batch statistics (SyncBN when the run is distributed), unlike torchvision's default
FrozenBatchNorm.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from common.image_stats import IMAGENET_MEAN, IMAGENET_STD

VARIANTS = ("c4", "fpn")


def _out_channels(layer: nn.Module) -> int:
    last = layer[-1]
    for name in ("bn3", "bn2"):
        if hasattr(last, name):
            return getattr(last, name).num_features
    raise ValueError(f"cannot tell the output width of {type(last).__name__}")


def _check_resnet(backbone: nn.Module) -> None:
    needed = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
    missing = [n for n in needed if not hasattr(backbone, n)]
    if missing:
        raise ValueError(
            f"detection needs a ResNet encoder; this backbone ({type(backbone).__name__}) has no "
            f"{missing}. ViT encoders are not supported by the detection tasks."
        )


class C4Body(nn.Module):
    """stem + res2..res4: ``forward(x) -> {"0": (N, C4, H/s, W/s)}``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        _check_resnet(backbone)
        act = getattr(backbone, "act1", None) or nn.ReLU(inplace=True)
        pool = getattr(backbone, "maxpool", None) or nn.Identity()
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, act, pool)
        self.res2, self.res3, self.res4 = backbone.layer1, backbone.layer2, backbone.layer3
        self.out_channels = _out_channels(backbone.layer3)

    def forward(self, x: torch.Tensor) -> OrderedDict:
        return OrderedDict([("0", self.res4(self.res3(self.res2(self.stem(x)))))])


class Res5ExtraNorm(nn.Module):
    """res5 on RoI features, then the extra BN: ``(R, C4, 14, 14) -> (R, C5, 7, 7)``."""

    def __init__(self, layer4: nn.Module) -> None:
        super().__init__()
        self.res5 = layer4
        self.out_channels = _out_channels(layer4)
        self.norm = nn.BatchNorm2d(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.res5(x))


class _ChannelsLastGrad(torch.autograd.Function):
    """The identity on a channels_last tensor, whose gradient is made channels_last contiguous.

    ``mean`` over H, W hands back an expanded (stride-0) gradient, and BatchNorm's CPU backward
    on a channels_last input takes a slow path for it: 5.3 s against 0.35 s for one
    ``(8192, 128, 7, 7)`` map, one thread (BENCHMARKS.md, "Detection iteration on the CPU")."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


class PooledHead(nn.Module):
    """Box head: shared res5 + extra norm, then global average pooling: ``(R, C5)``."""

    def __init__(self, res5: Res5ExtraNorm) -> None:
        super().__init__()
        self.res5 = res5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.res5(x)  # (R, C5, h, w)
        if (
            y.dim() == 4
            and not y.is_contiguous()
            and y.is_contiguous(memory_format=torch.channels_last)
        ):
            y = _ChannelsLastGrad.apply(y)  # the engine's CPU layout (engine_torchvision.place)
        return y.mean(dim=(2, 3))


def build_detector(
    backbone: nn.Module,
    num_classes: int,
    variant: str = "c4",
    masks: bool = False,
    image_mean: tuple[float, ...] = IMAGENET_MEAN,
    image_std: tuple[float, ...] = IMAGENET_STD,
    min_size: tuple[int, ...] = (800,),
    max_size: int = 1333,
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512),
    roi_resolution: int = 14,
    fpn_channels: int = 256,
    **rcnn_kwargs,
) -> FasterRCNN:
    """Faster R-CNN (``masks=False``) or Mask R-CNN on a copy of ``backbone``.

    ``num_classes`` counts foreground classes; the background class is added here.
    ``roi_resolution`` is the C4 RoIAlign size (14 in detectron2; res5 halves it);
    ``fpn_channels`` the FPN width (256 in the papers). ``rcnn_kwargs`` go to torchvision's
    ``FasterRCNN`` (RPN/RoI sampling sizes, NMS, detections per image).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown detector variant {variant!r}; available: {VARIANTS}")
    backbone = copy.deepcopy(backbone)
    _check_resnet(backbone)
    for p in backbone.parameters():
        p.requires_grad_(True)  # nothing frozen (FREEZE_AT 0)
    common = dict(
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        image_mean=list(image_mean),
        image_std=list(image_std),
        **rcnn_kwargs,
    )
    cls = MaskRCNN if masks else FasterRCNN
    if variant == "c4":
        body = C4Body(backbone)
        res5 = Res5ExtraNorm(backbone.layer4)
        anchors = AnchorGenerator((tuple(anchor_sizes),), ((0.5, 1.0, 2.0),))
        extra = {}
        if masks:
            extra = dict(
                mask_roi_pool=MultiScaleRoIAlign(["0"], roi_resolution, 0),
                mask_head=res5,  # the same module: detectron2 C4 shares res5 with the box head
                mask_predictor=MaskRCNNPredictor(res5.out_channels, 256, num_classes + 1),
            )
        return cls(
            body,
            rpn_anchor_generator=anchors,
            box_roi_pool=MultiScaleRoIAlign(["0"], roi_resolution, 0),
            box_head=PooledHead(res5),
            box_predictor=FastRCNNPredictor(res5.out_channels, num_classes + 1),
            **extra,
            **common,
        )
    widths = [_out_channels(getattr(backbone, f"layer{i}")) for i in (1, 2, 3, 4)]
    body = BackboneWithFPN(
        backbone,
        return_layers={f"layer{i}": str(i - 1) for i in (1, 2, 3, 4)},
        in_channels_list=widths,
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    anchors = AnchorGenerator(tuple((s,) for s in anchor_sizes), ((0.5, 1.0, 2.0),) * 5)
    if len(anchor_sizes) != 5:
        raise ValueError("the FPN variant takes 5 anchor sizes, one per level (P2..P6)")
    common["num_classes"] = num_classes + 1
    return cls(body, rpn_anchor_generator=anchors, **common)
