"""LARS (You et al. 2017) as the SimSiam linear probe uses it (RECIPES.md: trust 0.001,
momentum 0.9, wd 0): the update of a weight matrix is scaled by
``trust * ||w|| / (||g|| + wd * ||w||)``; 1-D parameters (biases, BN) are not adapted."""

from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust=trust_coefficient
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim interface
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if p.ndim > 1:
                    d_p = d_p.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.norm(p), torch.norm(d_p)
                    ratio = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["trust"] * w_norm / g_norm,
                        torch.ones_like(w_norm),
                    )
                    d_p = d_p.mul(ratio)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"].mul_(group["momentum"]).add_(d_p)
                p.add_(mu, alpha=-group["lr"])
