"""LARS (You et al. 2017) as BYOL (App. C) and MoCo v3 (repository ``optimizer.LARS``) use it.

For a parameter w with gradient g, weight decay λ, trust coefficient η, momentum μ, lr γ:

    u = g + λ·w
    u ← η·‖w‖/‖u‖ · u      (only when ‖w‖ > 0 and ‖u‖ > 0; otherwise the ratio is 1)
    v ← μ·v + u
    w ← w − γ·v

A group with ``no_decay=True`` (biases and norm parameters; ``pretrain.optim`` builds the
groups for training, ``transfer.probe_loop`` for the probe) skips both the weight decay and
the trust ratio: BYOL App. C "biases and batch normalization parameters
are excluded from the LARS adaptation and weight decay"; MoCo v3 skips every 1-D parameter.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class LARS(Optimizer):
    """SGD with momentum and a layer-wise trust ratio; foreach kernels over each group."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 1e-3,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or eta <= 0:
            raise ValueError(
                f"LARS needs lr >= 0, momentum >= 0, weight_decay >= 0 and eta > 0; got "
                f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}, eta={eta}"
            )
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            updates = [p.grad for p in params]
            if not group.get("no_decay", False):
                if group["weight_decay"]:
                    updates = torch._foreach_add(updates, params, alpha=group["weight_decay"])
                w_norms = torch._foreach_norm(params)
                u_norms = torch._foreach_norm(updates)
                ratios = [
                    torch.where(
                        (w > 0) & (u > 0), group["eta"] * w / u.clamp_min(1e-30), torch.ones_like(w)
                    )
                    for w, u in zip(w_norms, u_norms, strict=True)
                ]
                updates = torch._foreach_mul(updates, ratios)
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, updates)
            torch._foreach_add_(params, bufs, alpha=-group["lr"])
        return loss
