"""The normalization statistics of the pipelines: ImageNet's (timm's own constants, the
values every paper recipe normalizes RGB input with) and Fashion-MNIST's training-set mean/std
(computed over the 60 000 training images, the embedded default's normalization).

The one definition: pretraining, the hub's ``pretrained_cfg`` and transfer import these.
"""

from __future__ import annotations

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

IMAGENET_MEAN: tuple[float, ...] = tuple(IMAGENET_DEFAULT_MEAN)
IMAGENET_STD: tuple[float, ...] = tuple(IMAGENET_DEFAULT_STD)
FMNIST_MEAN: tuple[float, ...] = (0.2860,)
FMNIST_STD: tuple[float, ...] = (0.3530,)
