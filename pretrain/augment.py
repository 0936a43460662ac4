"""Two-view augmentation pipelines.

- ``mocov2``: the MoCo v2 augmentation SimSiam uses for ImageNet (SimSiam §4 "Implementation
  details"): RandomResizedCrop(scale 0.2–1), ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8,
  grayscale p 0.2, Gaussian blur σ 0.1–2 p 0.5, horizontal flip. Per image, PIL, in workers.
- ``small``: the Fashion-MNIST recipe, ``common.small_augment.SmallImageAugment`` (one
  ``grid_sample`` over a uint8 batch; the transfer probe uses it too).
- ``byol`` / ``small_byol``: BYOL's asymmetric pair (BYOL App. B, Table 6): bicubic
  RandomResizedCrop (scale 0.08–1 in the paper), flip, ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8,
  grayscale p 0.2, Gaussian blur p 1.0 for the first view and 0.1 for the second, solarize
  p 0 and 0.2. The small variant blurs with a 3-pixel kernel (BYOL's 23 px is 10% of 224) and
  leaves out saturation, hue and grayscale, which do nothing to a gray image.
"""

from __future__ import annotations

from torchvision import transforms as T

from common.image_stats import IMAGENET_MEAN, IMAGENET_STD


def mocov2_transform(img_size: int = 224, crop_min_scale: float = 0.2) -> T.Compose:
    """One view of MoCo v2's augmentation (PIL image -> normalized float tensor)."""
    return T.Compose(
        [
            T.RandomResizedCrop(img_size, scale=(crop_min_scale, 1.0)),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(kernel_size=23, sigma=(0.1, 2.0))], p=0.5),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


# BYOL App. B, Table 6: the two views' blur and solarization probabilities.
BYOL_VIEWS = ({"blur_p": 1.0, "solarize_p": 0.0}, {"blur_p": 0.1, "solarize_p": 0.2})


def byol_transform(
    img_size: int = 224,
    crop_min_scale: float = 0.08,
    blur_p: float = 1.0,
    solarize_p: float = 0.0,
    crop_max_scale: float = 1.0,
) -> T.Compose:
    """One view of BYOL's augmentation (PIL image -> normalized float tensor); DINO's global
    and local crops are the same pipeline at other sizes and scales (pretrain/multicrop.py)."""
    return T.Compose(
        [
            T.RandomResizedCrop(
                img_size,
                scale=(crop_min_scale, crop_max_scale),
                interpolation=T.InterpolationMode.BICUBIC,
            ),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(kernel_size=23, sigma=(0.1, 2.0))], p=blur_p),
            T.RandomSolarize(128, p=solarize_p),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
