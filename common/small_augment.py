"""The small-image augmentation: one random view of a whole uint8 batch with one ``grid_sample``.

The Fashion-MNIST recipe (pretraining's ``small`` / ``small_byol`` views, DINO's small crops)
and the transfer probe's training crop share it: per-sample random resized crop (scale
``crop_min_scale``–``crop_max_scale``, ratio 3/4–4/3), horizontal flip p 0.5,
brightness/contrast jitter 0.4 p 0.8 (no hue/saturation on gray images, and no blur at 28 px,
as SimSiam App. D drops blur for CIFAR); BYOL's blur and solarization (BYOL App. B, Table 6)
when a view asks for them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from common.image_stats import FMNIST_MEAN, FMNIST_STD


def gaussian_blur_batch(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur each image of ``x (N, C, H, W)`` with its own σ ``(N,)``: separable, reflect pad."""
    n, c, h, w = x.shape
    r = kernel_size // 2
    offsets = torch.arange(-r, r + 1, dtype=x.dtype)  # (K,)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None] ** 2))  # (N, K)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (N·C, K)
    y = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, kernel.view(n * c, 1, 1, -1), groups=n * c)  # along W
    y = F.conv2d(y, kernel.view(n * c, 1, -1, 1), groups=n * c)  # along H
    return y.view(n, c, h, w)


class SmallImageAugment:
    """One random view of a uint8 batch (N, 1, H, W), sampled from a torch.Generator."""

    def __init__(
        self,
        img_size: int = 28,
        crop_min_scale: float = 0.2,
        jitter: float = 0.4,
        jitter_p: float = 0.8,
        flip_p: float = 0.5,
        out_chans: int = 1,
        blur_p: float = 0.0,
        blur_kernel: int = 3,
        solarize_p: float = 0.0,
        interpolation: str = "bilinear",
        crop_max_scale: float = 1.0,  # < 1: DINO's local crops (pretrain/multicrop.py)
    ) -> None:
        self.img_size = img_size
        self.crop_min_scale = crop_min_scale
        self.jitter = jitter
        self.jitter_p = jitter_p
        self.flip_p = flip_p
        self.out_chans = out_chans
        self.blur_p = blur_p
        self.blur_kernel = blur_kernel
        self.solarize_p = solarize_p
        self.interpolation = interpolation
        self.crop_max_scale = crop_max_scale

    def __call__(
        self, images: torch.Tensor, gen: torch.Generator, offset: int = 0, total: int = 0
    ) -> torch.Tensor:
        """Augment ``images``, rows ``offset ..`` of a global batch of ``total`` (0: this batch).

        The random parameters are drawn for the whole global batch and sliced, so an image gets
        the same view whichever process (rank) augments it.
        """
        n = images.shape[0]
        total = total or n
        x = images.float().div_(255.0)  # (N, 1, H, W) in [0, 1]

        def rand() -> torch.Tensor:
            return torch.rand(total, generator=gen)[offset : offset + n]

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return rand() * (hi - lo) + lo

        # RandomResizedCrop: area share s, aspect ratio r; sides in units of the image side.
        area = uniform(self.crop_min_scale, self.crop_max_scale)
        ratio = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (rand() * 2 - 1) * (1 - w)
        cy = (rand() * 2 - 1) * (1 - h)
        flip = torch.where(rand() < self.flip_p, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = w * flip
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = h
        theta[:, 1, 2] = cy
        size = (n, x.shape[1], self.img_size, self.img_size)
        grid = F.affine_grid(theta, size, align_corners=False)
        x = F.grid_sample(
            x, grid, mode=self.interpolation, padding_mode="border", align_corners=False
        ).clamp_(0.0, 1.0)  # bicubic overshoots

        # Brightness and contrast jitter, applied together with probability jitter_p.
        apply = (rand() < self.jitter_p).float().view(n, 1, 1, 1)
        j = self.jitter
        bright = uniform(1 - j, 1 + j).view(n, 1, 1, 1)
        contrast = uniform(1 - j, 1 + j).view(n, 1, 1, 1)
        jittered = x * bright
        mean = jittered.mean(dim=(1, 2, 3), keepdim=True)
        jittered = ((jittered - mean) * contrast + mean).clamp_(0.0, 1.0)
        x = apply * jittered + (1 - apply) * x

        # BYOL's blur (σ 0.1–2) and solarization, each with its view's probability; the draws
        # happen only when enabled, so the plain recipe's random stream is unchanged.
        if self.blur_p > 0:
            sigma = uniform(0.1, 2.0)
            blur = (rand() < self.blur_p).float().view(n, 1, 1, 1)
            x = blur * gaussian_blur_batch(x, sigma, self.blur_kernel) + (1 - blur) * x
        if self.solarize_p > 0:
            sol = (rand() < self.solarize_p).view(n, 1, 1, 1)
            x = torch.where(sol & (x >= 0.5), 1.0 - x, x)

        x = (x - FMNIST_MEAN[0]) / FMNIST_STD[0]
        if self.out_chans != x.shape[1]:
            x = x.expand(-1, self.out_chans, -1, -1).contiguous()
        return x  # (N, out_chans, img_size, img_size)
