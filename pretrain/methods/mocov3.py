"""MoCo v3 (Chen, Xie & He, "An Empirical Study of Training Self-Supervised Vision
Transformers", arXiv 2104.02057; facebookresearch/moco-v3).

- query: backbone + projector + predictor; key: the momentum encoder (backbone + projector),
  an EMA of the query encoder with m following a cosine from ``momentum_base`` to 1 (§3, Alg. 1).
- loss: symmetric InfoNCE over the batch's keys, gathered from every rank, with temperature τ,
  scaled by 2τ (repository ``contrastive_loss``): ctr(q1, k2) + ctr(q2, k1).
- MLP heads (repository ``_build_mlp``): every linear without bias, BN on every layer, output
  BN without affine; ResNet: 2-layer projector, predictor without output BN (``bn =
  hidden_proj_out``); ViT: 3-layer projector, predictor with output BN (``bn = all``).
- ViT options (2-D sin-cos position embedding, frozen random patch projection, 12 heads for
  ViT-S) live in ``hub.backbones`` (``model.*`` in the config).

Ablation switches: ``temperature``, ``momentum_base`` / ``momentum_schedule``, ``predictor``,
``loss`` (symmetric / asymmetric), ``bn``; learned vs frozen patch projection is
``model.freeze_patch_embed`` (§4.2: frozen 73.4 vs learned 71.7, ViT-B 100 ep).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.ema import ema_update_
from pretrain.heads import bn_layout, build_predictor, mlp_head
from slurm.dist import all_gather, current


def contrastive_loss(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of queries ``q (N, D)`` against this batch's keys of every rank, × 2τ.

    logits = q̄ · k̄_allᵀ / τ (N, world·N); the positive of query i on rank r is key r·N + i.
    """
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(all_gather(k.float()), dim=1)  # (world·N, D), no gradient (keys)
    logits = q @ k.T / temperature  # (N, world·N)
    labels = torch.arange(q.shape[0], device=q.device) + current().rank * q.shape[0]
    return F.cross_entropy(logits, labels) * (2 * temperature)


class MoCoV3(nn.Module):
    """Query encoder (backbone + projector) + predictor; momentum key encoder."""

    ddp_ignore = ("momentum_backbone", "momentum_projector")  # each rank updates its own copy

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_dim: int = 256,
        proj_hidden_dim: int = 4096,
        proj_layers: int = 2,
        pred_hidden_dim: int = 4096,
        temperature: float = 1.0,
        predictor: str = "mlp",
        loss: str = "symmetric",
        bn: str = "hidden_proj_out",
    ) -> None:
        super().__init__()
        if loss not in ("symmetric", "asymmetric"):
            raise ValueError(f"MoCo v3's loss is 'symmetric' or 'asymmetric', got {loss!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        layout = bn_layout(bn)
        self.backbone = backbone
        self.projector = mlp_head(
            [backbone.num_features] + [proj_hidden_dim] * (proj_layers - 1) + [proj_dim],
            bn_hidden=layout["hidden"],
            bn_last=layout["proj_out"],
            bn_last_affine=False,
            last_bias=False,
        )
        self.predictor = build_predictor(
            predictor,
            proj_dim,
            pred_hidden_dim,
            bn_hidden=layout["hidden"],
            bn_last=layout["pred_out"],
            bn_last_affine=False,
            bias=False,
        )
        self.momentum_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.temperature = temperature
        self.loss_mode = loss

    def online(self) -> nn.ModuleList:
        return nn.ModuleList([self.backbone, self.projector])

    def target(self) -> nn.ModuleList:
        return nn.ModuleList([self.momentum_backbone, self.momentum_projector])

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        h1, h2 = self.backbone(x1), self.backbone(x2)  # (N, F)
        z1, z2 = self.projector(h1), self.projector(h2)  # (N, D)
        q1 = self.predictor(z1)  # (N, D)
        with torch.no_grad():
            k2 = self.momentum_projector(self.momentum_backbone(x2))  # (N, D)
        loss = contrastive_loss(q1, k2, self.temperature)
        if self.loss_mode == "symmetric":
            q2 = self.predictor(z2)
            with torch.no_grad():
                k1 = self.momentum_projector(self.momentum_backbone(x1))
            loss = loss + contrastive_loss(q2, k1, self.temperature)
        return {"loss": loss, "z": z1.detach(), "h": h1.detach()}

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """Momentum encoder ← m·itself + (1 − m)·query encoder.

        The repository updates at the start of each forward; updating after each optimizer step
        gives the same sequence of weights, the schedule index shifted by one step.
        """
        ema_update_(self.target(), self.online(), momentum)

    def param_groups(self, fix_pred_lr: bool) -> list[dict]:
        """Query-side parameters only; the momentum encoder is never optimized."""
        return [
            {"name": "encoder", "params": list(self.online().parameters())},
            {
                "name": "predictor",
                "params": list(self.predictor.parameters()),
                "fix_lr": fix_pred_lr,
            },
        ]
