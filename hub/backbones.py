"""Backbones through timm: ResNet-18/50 (ImageNet or small-image stem) and ViT-S/B patch 16.

Every backbone is a timm model with ``num_classes=0``: ``forward`` returns pooled features
``(N, num_features)``. timm's ResNet keys equal torchvision's, so the authors' checkpoints map
onto them by stripping a prefix.

Options from the papers:
- ``zero_init_residual``: the last BN gamma of each residual block starts at zero
  (SimSiam §4 / repository ``zero_init_residual=True``; Goyal et al. 2017).
- ``stem="small"``: a 3×3 stride-1 convolution and no max-pool, the usual variant for 28–64 px
  inputs (SimSiam App. D uses it for CIFAR); ``stem_stride=2`` keeps the 3×3 stem but halves
  the resolution once, a cheaper variant for CPU runs.
- ViT (MoCo v3 §4.1 and Appendix): fixed 2-D sin-cos position embedding, frozen random patch
  projection, and 12 heads for ViT-S (timm's ViT-S has 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import timm
import torch
from torch import nn

RESNETS = {"resnet18": "resnet18", "resnet50": "resnet50"}
VITS = {
    "vit_tiny": "vit_tiny_patch16_224",  # test-size ViT (5.7M parameters); not a paper backbone
    "vit_small": "vit_small_patch16_224",
    "vit_base": "vit_base_patch16_224",
}
STEMS = ("imagenet", "small")


@dataclass(frozen=True)
class BackboneSpec:
    """What builds a backbone; stored in every config and checkpoint."""

    name: str = "resnet18"  # the backbone (timm): resnet18, resnet50, vit_small, vit_base, ...
    in_chans: int = 3  # input channels: 1 (grayscale) or 3 (RGB)
    width: int = 64  # ResNet stem/first-stage width; 64 is the standard network
    stem: str = "imagenet"  # ResNet stem: "imagenet" (7×7, max-pool) or "small" (3×3, none)
    stem_stride: int = 1  # stride of the "small" stem's 3×3 convolution (2 halves the input)
    zero_init_residual: bool = True  # last BN gamma of each residual block starts at 0
    img_size: int = 224  # ViT only: the input side its position embedding is built for
    num_heads: int = 0  # ViT only; 0 keeps timm's default
    patch_size: int = 16  # ViT only: patch side in pixels
    depth: int = 0  # ViT only; 0 keeps timm's default (12)
    embed_dim: int = 0  # ViT only; 0 keeps timm's default (384 ViT-S, 768 ViT-B)
    pos_embed: str = "learn"  # ViT only: "learn" or "sincos"
    freeze_patch_embed: bool = False  # ViT only: frozen random patch projection (MoCo v3)


def available() -> list[str]:
    """The backbone names the factory accepts."""
    return sorted([*RESNETS, *VITS])


def create_backbone(spec: BackboneSpec) -> nn.Module:
    """Build the backbone a spec describes; ``.num_features`` is its output width."""
    if spec.in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {spec.in_chans}")
    if spec.name in RESNETS:
        return _resnet(spec)
    if spec.name in VITS:
        return _vit(spec)
    raise ValueError(f"unknown backbone {spec.name!r}; available: {', '.join(available())}")


def timm_call(spec: BackboneSpec) -> tuple[str, dict[str, Any]]:
    """The timm architecture name and the ``timm.create_model`` keyword arguments
    ``create_backbone`` builds ``spec`` with (before any change timm cannot express: the
    small-image stem, a stem narrower or wider than timm's 64). ``hub.encoder`` writes exactly
    these into ``config.json``'s ``architecture`` and ``model_args``, so that timm's own
    ``create_model`` makes the same call."""
    if spec.name in RESNETS:
        w = spec.width
        return RESNETS[spec.name], {
            "num_classes": 0,
            "in_chans": spec.in_chans,
            "stem_width": w,
            "channels": [w, 2 * w, 4 * w, 8 * w],
            "zero_init_last": spec.zero_init_residual,
        }
    if spec.name in VITS:
        kwargs: dict[str, Any] = {
            "img_size": spec.img_size,
            "in_chans": spec.in_chans,
            "num_classes": 0,
            "patch_size": spec.patch_size,
        }
        for key in ("num_heads", "depth", "embed_dim"):
            if getattr(spec, key):  # 0 keeps timm's default for the architecture
                kwargs[key] = getattr(spec, key)
        return VITS[spec.name], kwargs
    raise ValueError(f"unknown backbone {spec.name!r}; available: {', '.join(available())}")


def _resnet(spec: BackboneSpec) -> nn.Module:
    if spec.stem not in STEMS:
        raise ValueError(f"unknown stem {spec.stem!r}; use one of {STEMS}")
    w = spec.width
    arch, kwargs = timm_call(spec)
    model = timm.create_model(arch, pretrained=False, **kwargs)
    if spec.stem == "small":
        if spec.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {spec.stem_stride}")
        # Same key names as the ImageNet stem (conv1, bn1), so checkpoints stay torchvision-shaped.
        model.conv1 = _conv(spec.in_chans, w, 3, spec.stem_stride)
        model.maxpool = nn.Identity()
    if w != model.bn1.num_features:
        _narrow_stem(model, w)
    return model


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _narrow_stem(model: nn.Module, w: int) -> None:
    """timm's plain stem is always 64 wide; make it ``w`` wide, as torchvision's width scaling.

    The first block of layer1 then reads ``w`` channels; a BasicBlock whose input and output
    widths now match loses its projection shortcut, exactly as in a standard ResNet-18.
    """
    conv1 = model.conv1
    model.conv1 = _conv(conv1.in_channels, w, conv1.kernel_size[0], conv1.stride[0])
    model.bn1 = nn.BatchNorm2d(w)
    block = model.layer1[0]
    block.conv1 = _conv(
        w, block.conv1.out_channels, block.conv1.kernel_size[0], block.conv1.stride[0]
    )
    down = block.downsample
    if down is not None:
        out_chans = down[0].out_channels
        if out_chans == w and down[0].stride == (1, 1):
            block.downsample = None
        else:
            down[0] = _conv(w, out_chans, 1, down[0].stride[0])


def _vit(spec: BackboneSpec) -> nn.Module:
    if spec.img_size % spec.patch_size:
        raise ValueError(
            f"img_size {spec.img_size} is not a multiple of patch_size {spec.patch_size}"
        )
    if spec.pos_embed not in ("learn", "sincos"):
        raise ValueError(f"pos_embed must be 'learn' or 'sincos', got {spec.pos_embed!r}")
    arch, kwargs = timm_call(spec)
    model = timm.create_model(arch, pretrained=False, **kwargs)
    if spec.pos_embed == "sincos":
        _set_sincos_pos_embed(model)
    if spec.freeze_patch_embed:
        _freeze_random_patch_projection(model)
    return model


def _freeze_random_patch_projection(model: nn.Module) -> None:
    """Xavier-uniform random patch projection, zero bias, both frozen (MoCo v3 §4.1, repository).

    The uniform bound is sqrt(6 / (C·p·p + D)), as moco-v3's ``VisionTransformerMoCo``.
    """
    import math

    proj = model.patch_embed.proj
    fan = proj.in_channels * proj.kernel_size[0] * proj.kernel_size[1] + proj.out_channels
    bound = math.sqrt(6.0 / fan)
    with torch.no_grad():
        proj.weight.uniform_(-bound, bound)
        if proj.bias is not None:
            proj.bias.zero_()
    for p in proj.parameters():
        p.requires_grad_(False)


def _set_sincos_pos_embed(model: nn.Module) -> None:
    """Fixed 2-D sin-cos embedding with a zero class-token row (MoCo v3 §4.1, repository).

    Layout as moco-v3's ``build_2d_sincos_position_embedding``: per token at (row, col),
    ``[sin(row·ω), cos(row·ω), sin(col·ω), cos(col·ω)]`` with ω_i = 1/10000^(i/(D/4)), so the
    authors' checkpoints and ours agree (timm's ``interleave_sin_cos=True`` order).
    """
    from timm.layers import build_sincos2d_pos_embed

    grid = model.patch_embed.grid_size
    dim = model.pos_embed.shape[-1]
    table = build_sincos2d_pos_embed(
        grid, dim=dim, temperature=10000.0, interleave_sin_cos=True
    )  # (H*W, D)
    prefix = model.pos_embed.shape[1] - table.shape[0]
    full = torch.cat([torch.zeros(prefix, dim), table], dim=0).unsqueeze(0)  # (1, P+H*W, D)
    with torch.no_grad():
        model.pos_embed.copy_(full)
    model.pos_embed.requires_grad_(False)
