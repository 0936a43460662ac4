"""The EMA (momentum) target update shared by BYOL and MoCo v3, in place with foreach kernels.

ξ ← m·ξ + (1 − m)·θ over every parameter (BYOL §3.1 Eq. 1; MoCo v3 Alg. 1). Written as a
multiply then an add so that m = 1 leaves ξ bit-for-bit unchanged and m = 0 copies θ exactly.
Buffers (BN running statistics) are not averaged: each network keeps its own, as both
repositories do.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place: every parameter of ``target`` ← m·target + (1 − m)·online."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    if len(t_params) != len(o_params):
        raise ValueError(
            f"EMA target has {len(t_params)} parameters, the online network {len(o_params)}"
        )
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum must lie in [0, 1], got {momentum}")
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - momentum)
