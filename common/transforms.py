"""Un-augmented (evaluation) transforms shared by the training monitors and transfer.

- ``imagenet_eval_transform``: resize 256 / center crop 224 (the SimSiam and MoCo v3
  linear-evaluation crop, SimSiam App. A), scaled to ``img_size``.
- ``eval_transform``: an encoder's own eval crop from its timm ``pretrained_cfg`` (input size,
  interpolation, crop_pct, mean / std) through ``timm.data.resolve_data_config`` and
  ``create_transform``; without one, ``imagenet_eval_transform``.
- ``normalize_small``: a uint8 Fashion-MNIST batch as the network sees it, no augmentation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from timm.data import create_transform, resolve_data_config
from torchvision import transforms as T

from common.image_stats import FMNIST_MEAN, FMNIST_STD, IMAGENET_MEAN, IMAGENET_STD


def imagenet_eval_transform(img_size: int = 224) -> T.Compose:
    """Resize 256, center crop 224 (SimSiam linear evaluation protocol), scaled to img_size."""
    return T.Compose(
        [
            T.Resize(int(round(img_size * 256 / 224))),
            T.CenterCrop(img_size),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def eval_transform(pretrained_cfg: dict[str, Any] | None, img_size: int = 224) -> Callable:
    """PIL image -> normalized tensor as the encoder's ``pretrained_cfg`` describes it (timm);
    ``imagenet_eval_transform(img_size)`` for an encoder without one."""
    if not pretrained_cfg:
        return imagenet_eval_transform(img_size)
    data_cfg = resolve_data_config(pretrained_cfg=dict(pretrained_cfg))
    return create_transform(**data_cfg, is_training=False)


def normalize_small(images: torch.Tensor, img_size: int, out_chans: int) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> normalized float (N, out_chans, S, S) with S = img_size; no augment."""
    x = images.float().div_(255.0)
    if x.shape[-1] != img_size:
        x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", antialias=True)
    x = (x - FMNIST_MEAN[0]) / FMNIST_STD[0]
    return x.expand(-1, out_chans, -1, -1).contiguous() if out_chans != x.shape[1] else x
