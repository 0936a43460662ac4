"""Multi-crop views for DINO (Caron et al., ICCV 2021, §3.1; Caron et al. 2020, SwAV §3.2).

Each image gives 2 global crops and ``data.local_crops`` local ones, in that order; the teacher
sees the global crops only, the student all of them (``pretrain.methods.dino``).

- ``dino`` (ImageFolder, PIL, per image; repository ``DataAugmentationDINO``): bicubic
  RandomResizedCrop (global: ``img_size``, scale ``crop_min_scale``–1, 224 px and 0.4–1 in the
  repository; local: ``local_img_size``, scale ``local_crop_min_scale``–``local_crop_max_scale``,
  96 px and 0.05–0.4), flip, ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, Gaussian
  blur (σ 0.1–2) p 1.0 / 0.1 / 0.5 for global 1 / global 2 / local, solarize p 0.2 on global 2
  only (BYOL's augmentations, DINO §3.2 "Implementation details").
- ``small_dino`` (in-memory gray batches): the same crops and probabilities through
  ``pretrain.augment.SmallImageAugment`` (one ``grid_sample`` per view over the whole uint8
  batch, bicubic, 3-pixel blur kernel), one augmentation at each of the two sizes.

``forward_crops`` runs a network once per run of equal-sized crops (repository
``MultiCropWrapper``), so BN statistics come from the concatenated crops of one size;
``allow_any_input_size`` lets a timm ViT take the 96 px crops by resampling its position
embedding to each crop's patch grid (bicubic; the repository's ``interpolate_pos_encoding``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from common.datasets import image_folder, load_fashion_mnist
from common.small_augment import SmallImageAugment
from pretrain.augment import byol_transform
from pretrain.config import Config, ConfigError
from pretrain.data import FolderTwoViews, TensorTwoViews

MULTICROP_AUGMENTS = {"small_dino": "fashion_mnist", "dino": "imagefolder"}
# (blur p, solarize p) of global crop 1, global crop 2 and every local crop (repository).
GLOBAL_1, GLOBAL_2, LOCAL = (1.0, 0.0), (0.1, 0.2), (0.5, 0.0)


def _pil_view(size: int, scale: tuple[float, float], blur_p: float, solarize_p: float):
    """A PIL crop of DINO's multi-crop: BYOL's view pipeline at this size and scale range."""
    return byol_transform(size, scale[0], blur_p, solarize_p, crop_max_scale=scale[1])


def _small_view(
    size: int, scale: tuple[float, float], blur_p: float, solarize_p: float, chans: int
) -> SmallImageAugment:
    return SmallImageAugment(
        size,
        scale[0],
        out_chans=chans,
        blur_p=blur_p,
        solarize_p=solarize_p,
        interpolation="bicubic",
        crop_max_scale=scale[1],
    )


def multicrop_views(cfg: Config) -> list:
    """One augmentation per crop: global 1, global 2, then ``data.local_crops`` local ones."""
    d = cfg.data
    if d.augment not in MULTICROP_AUGMENTS:
        raise ConfigError(f"multi-crop uses data.augment in {tuple(MULTICROP_AUGMENTS)}")
    if d.local_crops < 0 or not 0 < d.local_crop_min_scale <= d.local_crop_max_scale <= 1:
        raise ConfigError(
            f"data.local_crops={d.local_crops} must be >= 0 and 0 < data.local_crop_min_scale"
            f" ({d.local_crop_min_scale}) <= data.local_crop_max_scale"
            f" ({d.local_crop_max_scale}) <= 1"
        )
    if d.augment == "dino":
        make = _pil_view
    else:

        def make(size: int, scale: tuple[float, float], blur_p: float, solarize_p: float):
            return _small_view(size, scale, blur_p, solarize_p, cfg.model.in_chans)

    glob = (d.img_size, (d.crop_min_scale, 1.0))
    local = make(d.local_img_size, (d.local_crop_min_scale, d.local_crop_max_scale), *LOCAL)
    return [make(*glob, *GLOBAL_1), make(*glob, *GLOBAL_2)] + [local] * d.local_crops


def multicrop_dataset(cfg: Config) -> Dataset:
    """The dataset of multi-crop views a config names (``data.augment`` dino / small_dino)."""
    d = cfg.data
    views = multicrop_views(cfg)
    if MULTICROP_AUGMENTS[d.augment] != d.dataset:
        raise ConfigError(
            f"data.augment={d.augment!r} needs data.dataset={MULTICROP_AUGMENTS[d.augment]!r}"
        )
    if d.dataset == "fashion_mnist":
        images, _ = load_fashion_mnist(d.root, "train")
        return TensorTwoViews(images, views, cfg.train.seed)
    return FolderTwoViews(image_folder(d.root), views, cfg.train.seed)


def forward_crops(net: nn.Module, crops: Sequence[torch.Tensor]) -> torch.Tensor:
    """``net`` over the crops, one pass per run of equal-sized crops: (Σ N_i, F) in crop order."""
    out, start = [], 0
    while start < len(crops):
        end = start + 1
        while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
            end += 1
        out.append(net(torch.cat(list(crops[start:end]))))
        start = end
    return torch.cat(out)


def allow_any_input_size(backbone: nn.Module) -> nn.Module:
    """A timm ViT resamples its position embedding to each input's patch grid; others as is."""
    patch_embed = getattr(backbone, "patch_embed", None)
    if patch_embed is None:  # a ResNet takes any size
        return backbone
    from timm.layers import Format

    backbone.dynamic_img_size = True  # timm's VisionTransformer(dynamic_img_size=True)
    patch_embed.strict_img_size = False
    patch_embed.flatten = False
    patch_embed.output_fmt = Format.NHWC
    return backbone
