"""Collapse monitors for Siamese representations: z, the predictor's output p, the predictor's
eigen-alignment, and the spectrum of z.

On z (the projector's output) and, with a ``_p`` suffix, on p (the predictor's output), both
l2-normalized as the cosine loss sees them:

- ``z_std``: mean over channels of the batch std of l2-normalized z. A collapsed output has 0;
  a z spread like an isotropic Gaussian has about 1/√d (SimSiam §4.1, Fig. 2 middle).
  Logged as ``z_std_sqrt_d`` = z_std × √d, so 1 means healthy and 0 collapsed
  (``p_std_sqrt_d`` for p).
- ``rankme``: effective rank, exp of the entropy of the normalized singular values
  (Garrido et al., "RankMe", ICML 2023) (``rankme_p``).
- ``m_o`` / ``m_r``: with z l2-normalized and split as z = o + r (o the batch center),
  m_o = ‖o‖ and m_r = mean ‖r‖, so m_o² + mean ‖r‖² = 1; collapse is m_o → 1
  (Zhang et al., "How does SimSiam avoid collapse without negative samples?", ICLR 2022, §3)
  (``m_o_p``).
- ``r_over_o``: the median over samples of ‖r‖ / ‖o‖, the residual's size relative to the
  center. Cosine kNN on z ranks neighbours by the residual's direction whatever its size, so
  it reads the residual's class structure until this falls to fp32's resolution of cosine
  similarity (about 1e-4, ``tests/test_monitors.py``): a z can be collapsed by z-std and m_o
  and still classify by kNN while this is well above that (``r_over_o_p``).

Zhang et al. §3 decompose the output that meets the loss; in SimSiam that is p on the online
branch and z on the target branch, so a collapse the loss drives may show in p before (or
instead of) z: ``p_stats`` reads p with the same four statistics.

``pred_alignment`` / ``pred_eig_spread``: how far the predictor's best linear fit shares its
eigenbasis with the correlation of its input (Tian, Chen & Ganguli, "Understanding
self-supervised learning dynamics without contrastive pairs", ICML 2021, §4-§5, DirectPred).

``z_spectrum``: the singular values of the centred z over the largest, descending: the
log-spectrum Jing et al. plot for dimensional collapse ("Understanding dimensional collapse in
contrastive self-supervised learning", ICLR 2022, §3 / Fig. 2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

P_KEYS = ("p_std_sqrt_d", "rankme_p", "m_o_p", "r_over_o_p")  # p_stats' keys
# Eigen-directions of z's correlation kept by pred_alignment: variance above this share of the
# largest (singular values above 1e-3 of the largest); below it a fit in fp32 is rounding.
MIN_VARIANCE_RATIO = 1e-6


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
def p_stats(p: torch.Tensor) -> dict[str, float]:
    """z-std × √d, RankMe, m_o and r_over_o of the predictor's output ``p (N, D)``
    (l2-normalized as in ``collapse_stats``), under the keys ``P_KEYS``.

    Zhang et al. (ICLR 2022, §3) decompose the l2-normalized p = o + r as they do z; a
    predictor that keeps z spread while p collapses (m_o_p → 1) is a collapse a monitor on z
    does not read.
    """
    s = collapse_stats(p)
    return {
        "p_std_sqrt_d": s["z_std_sqrt_d"],
        "rankme_p": s["rankme"],
        "m_o_p": s["m_o"],
        "r_over_o_p": s["r_over_o"],
    }


@torch.no_grad()
def rankme(z: torch.Tensor, eps: float = 1e-7) -> float:
    """exp(H(σ/‖σ‖₁)) over the singular values σ of z (N, D)."""
    s = torch.linalg.svdvals(z.float())
    p = s / (s.sum() + eps) + eps
    return math.exp(-(p * p.log()).sum().item())


@torch.no_grad()
def z_spectrum(z: torch.Tensor) -> list[float]:
    """The singular values of the centred ``z (N, D)`` divided by the largest, descending
    (min(N, D) values; the first is 1, all zeros for a constant z).

    Jing et al. (ICLR 2022, §3, Fig. 2) plot the log singular values of the embeddings'
    covariance matrix, sorted: dimensional collapse is a spectrum that drops to ~0 after a few
    values. The covariance's singular values are the squares of these (up to the factor 1/N),
    so the same drop reads at half the log-depth here. Rounded to 4 significant digits (a
    metrics row keeps the whole list).
    """
    zc = z.detach().to("cpu", torch.float64)
    zc = zc - zc.mean(dim=0)
    s = torch.linalg.svdvals(zc)  # (min(N, D),), descending
    if s[0] <= 0:
        return [0.0] * len(s)
    return [float(f"{v:.4g}") for v in (s / s[0]).tolist()]


@torch.no_grad()
def predictor_fit(
    z: torch.Tensor, p: torch.Tensor, min_variance_ratio: float = MIN_VARIANCE_RATIO
) -> tuple[torch.Tensor, torch.Tensor]:
    """The predictor's best affine fit p ≈ z W + c over a batch, in the eigenbasis of z's
    correlation: ``(M (k, k), λ (k,))`` with M = Uₖᵀ W Uₖ and λ the k kept eigenvalues of F,
    descending, Uₖ their eigenvectors (float64, on the CPU).

    ``z (N, D)`` is the predictor's input (the method's "z"), ``p (N, D)`` its output (the
    method's "p"). Both are centred over the batch first, so W is the linear part of the best
    affine map and a bias (a predictor p = z + b) is not read as a rotation; F = E[z zᵀ] of the
    centred z is its covariance, which for SimSiam's z (the output BN, affine=False, centres
    every channel over the batch) is also its uncentred correlation (Tian et al., ICML 2021, §4:
    F = E[f fᵀ]).

    W = argmin ‖P − Z W‖_F is ``torch.linalg.lstsq``'s solution; here it is taken through the
    normal equations in F's eigenbasis: with Zᵀ Z = U Λ Uᵀ (``torch.linalg.eigh``) and
    W = (ZᵀZ)⁺ Zᵀ P, UᵀWU = Λ⁺ Uᵀ (ZᵀP) U, row i divided by λ_i (``tests/test_monitors.py``
    checks it against lstsq + eigh). Where N ≤ D (fewer samples than dimensions; the centred
    batch spans at most N − 1 directions) W is not determined outside the span of the batch;
    what is well-posed is its compression onto that span, the eigen-directions with λ_i > 0:
    only the eigen-directions whose variance is above ``min_variance_ratio`` × the largest are
    kept (k of them; for N > D and a spread z, k = D and M is UᵀWU itself).
    """
    zc = z.detach().to("cpu", torch.float64)
    pc = p.detach().to("cpu", torch.float64)
    zc = zc - zc.mean(dim=0)  # (N, D)
    pc = pc - pc.mean(dim=0)  # (N, D)
    lam, u = torch.linalg.eigh(zc.T @ zc)  # (D,), (D, D): ascending
    lam, u = lam.flip(0), u.flip(1)
    keep = lam > min_variance_ratio * lam[0].clamp_min(1e-300)
    lam_k, u_k = lam[keep], u[:, keep]  # (k,), (D, k)
    m = (u_k.T @ (zc.T @ pc) @ u_k) / lam_k[:, None]  # (k, k) = Λ⁻¹ Uᵀ (ZᵀP) U
    return m, lam_k / len(zc)


@torch.no_grad()
def pred_alignment(
    z: torch.Tensor, p: torch.Tensor, min_variance_ratio: float = MIN_VARIANCE_RATIO
) -> dict[str, float]:
    """Eigen-alignment of the predictor with the correlation of its input.

    Tian, Chen & Ganguli (ICML 2021, §4-§5, DirectPred) show that under SimSiam / BYOL's
    dynamics the predictor W_p aligns its eigenspace with that of F = E[z zᵀ]: W_p and F come
    to commute. Measured without a model of the predictor: its best linear fit W
    (``predictor_fit``: p ≈ z W + c over the batch) has the symmetric part S = (W + Wᵀ)/2;
    rotated into F's eigenbasis U, an aligned S is diagonal. The statistics:

    - ``pred_alignment`` = ‖diag(UᵀSU)‖² / ‖UᵀSU‖²_F in [0, 1]: 1 when S commutes with F
      (e.g. W a polynomial of F). A random symmetric matrix (GOE: off-diagonal variance half
      the diagonal's, invariant under rotation) reads 2/(k + 1) in expectation over k
      dimensions: 0.031 at k = 64, 0.016 at k = 128 (``tests/test_monitors.py``).
    - ``pred_eig_spread``: the coefficient of variation of S's eigenvalues, std(μ) / mean|μ|.
      An identity-like predictor (the identity, a bias-only predictor p = z + b, a scalar
      multiple) reads alignment 1 *trivially*: the identity commutes with every F. Alignment
      alone does not say the predictor does anything; its spread 0 says that it is the
      identity up to a scale, a spread well above 0 with alignment near 1 that it is aligned.
    - ``pred_fit_dims``: k, the eigen-directions the fit was read on (``predictor_fit``; at most
      N − 1 for a batch of N, so a batch smaller than D reads the leading N − 1 directions).

    Where F has repeated eigenvalues (a whitened z: F ∝ I) its eigenbasis is not unique and the
    alignment reads an arbitrary basis; it is meaningful where F's spectrum is spread, as it is
    in training (the z spectrum, ``z_spectrum``).
    """
    m, _ = predictor_fit(z, p, min_variance_ratio)
    s = (m + m.T) / 2  # (k, k), already in F's eigenbasis
    total = (s * s).sum()
    if m.numel() == 0 or total <= 0:
        return {"pred_alignment": math.nan, "pred_eig_spread": math.nan, "pred_fit_dims": 0}
    mu = torch.linalg.eigvalsh(s)  # (k,)
    return {
        "pred_alignment": (s.diagonal().square().sum() / total).item(),
        "pred_eig_spread": (mu.std(correction=0) / mu.abs().mean()).item(),
        "pred_fit_dims": int(len(s)),
    }
