"""Collapse monitors for Siamese representations.

- ``z_std``: mean over channels of the batch std of l2-normalized z. A collapsed output has 0;
  a z spread like an isotropic Gaussian has about 1/√d (SimSiam §4.1, Fig. 2 middle).
  Logged as ``z_std_sqrt_d`` = z_std × √d, so 1 means healthy and 0 collapsed.
- ``rankme``: effective rank of z, exp of the entropy of its normalized singular values
  (Garrido et al., "RankMe", ICML 2023).
- ``m_o`` / ``m_r``: with z l2-normalized and split as z = o + r (o the batch center),
  m_o = ‖o‖ and m_r = mean ‖r‖, so m_o² + mean ‖r‖² = 1; collapse is m_o → 1
  (Zhang et al., "How does SimSiam avoid collapse without negative samples?", ICLR 2022, §3).
- ``r_over_o``: the median over samples of ‖r‖ / ‖o‖, the residual's size relative to the
  center. Cosine kNN on z ranks neighbours by the residual's direction whatever its size, so
  it reads the residual's class structure until this falls to fp32's resolution of cosine
  similarity (about 1e-4, ``tests/test_monitors.py``): a z can be collapsed by z-std and m_o
  and still classify by kNN while this is well above that.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


@torch.no_grad()
def collapse_stats(z: torch.Tensor) -> dict[str, float]:
    """Monitors of a batch of representations ``z (N, D)``."""
    z = z.float()
    n, d = z.shape
    zn = F.normalize(z, dim=1)  # (N, D)
    z_std = zn.std(dim=0).mean().item()
    center = zn.mean(dim=0)  # (D,)
    center_norm = center.norm()
    residual_norm = (zn - center).norm(dim=1)  # (N,)
    return {
        "z_std": z_std,
        "z_std_sqrt_d": z_std * math.sqrt(d),
        "rankme": rankme(z),
        "m_o": center_norm.item(),
        "m_r": residual_norm.mean().item(),
        "r_over_o": (residual_norm.median() / center_norm.clamp_min(1e-12)).item(),
    }


@torch.no_grad()
def rankme(z: torch.Tensor, eps: float = 1e-7) -> float:
    """exp(H(σ/‖σ‖₁)) over the singular values σ of z (N, D)."""
    s = torch.linalg.svdvals(z.float())
    p = s / (s.sum() + eps) + eps
    return math.exp(-(p * p.log()).sum().item())


def is_collapsed(z_std_sqrt_d: float, threshold: float = 0.2) -> bool:
    """Collapsed when z-std has fallen below ``threshold``/√d (Fig. 2: it tends to 0)."""
    return z_std_sqrt_d < threshold
