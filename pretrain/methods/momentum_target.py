"""What BYOL and MoCo v3 share: an online network trained against an EMA copy of itself.

The online side is backbone + projector + predictor; the target (BYOL's target network, MoCo
v3's momentum encoder) is a copy of backbone + projector whose weights follow
ξ ← m·ξ + (1 − m)·θ after every optimizer step (BYOL §3.1; MoCo v3 Alg. 1), never optimized
and never wrapped by DDP (each rank updates its own identical copy). A subclass builds its
heads, calls ``_attach_target()`` and defines ``pair_loss(q, t)``; the loss is
``pair_loss(q1, t2) + pair_loss(q2, t1)`` (symmetric, both papers) or the first term alone
(``loss = 'asymmetric'``, SimSiam Table 4's ablation).

``EMATarget`` is the target alone (attach, update, ``ddp_ignore``); DINO's teacher uses it too.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from pretrain.ema import ema_update_

LOSS_MODES = ("symmetric", "asymmetric")


class EMATarget(nn.Module):
    """An EMA copy (``target_backbone`` + ``target_projector``) of ``backbone`` + ``projector``.

    Shared by BYOL, MoCo v3 and DINO (whose teacher is this target: DINO §3.1, "teacher
    network ... exponential moving average"); the Trainer calls ``update_target(m)``.
    """

    ddp_ignore = ("target_backbone", "target_projector")  # each rank updates its own copy
    backbone: nn.Module
    projector: nn.Module

    def _attach_target(self) -> None:
        """The target starts as an exact copy of the online backbone + projector."""
        self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def online(self) -> nn.ModuleList:
        return nn.ModuleList([self.backbone, self.projector])

    def target(self) -> nn.ModuleList:
        return nn.ModuleList([self.target_backbone, self.target_projector])

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """ξ ← m·ξ + (1 − m)·θ, called after each optimizer step."""
        ema_update_(self.target(), self.online(), momentum)


class MomentumTargetMethod(EMATarget):
    """Base of the EMA-target methods; see the module docstring."""

    predictor: nn.Module
    returns_p = False  # a subclass sets it where its predictor's output is monitored (BYOL)

    def __init__(self, loss: str) -> None:
        super().__init__()
        if loss not in LOSS_MODES:
            raise ValueError(f"{type(self).__name__}'s loss is one of {LOSS_MODES}, got {loss!r}")
        self.loss_mode = loss

    def pair_loss(self, q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The loss of online predictions ``q (N, D)`` against target outputs ``t (N, D)``."""
        raise NotImplementedError

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        h1, h2 = self.backbone(x1), self.backbone(x2)  # (N, F)
        z1, z2 = self.projector(h1), self.projector(h2)  # (N, D)
        q1 = self.predictor(z1)  # (N, D)
        with torch.no_grad():
            t2 = self.target_projector(self.target_backbone(x2))  # (N, D)
        loss = self.pair_loss(q1, t2)
        if self.loss_mode == "symmetric":
            q2 = self.predictor(z2)
            with torch.no_grad():
                t1 = self.target_projector(self.target_backbone(x1))
            loss = loss + self.pair_loss(q2, t1)
        out = {"loss": loss, "z": z1.detach(), "h": h1.detach()}
        if self.returns_p:
            out["p"] = q1.detach()  # (N, D): the predictor's output, for its monitors
        return out

    def param_groups(self, fix_pred_lr: bool) -> list[dict]:
        """Online parameters only; the target is never optimized."""
        return [
            {"name": "encoder", "params": list(self.online().parameters())},
            {
                "name": "predictor",
                "params": list(self.predictor.parameters()),
                "fix_lr": fix_pred_lr,
            },
        ]
