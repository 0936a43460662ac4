"""MoCo v3 (Chen, Xie & He, "An Empirical Study of Training Self-Supervised Vision
Transformers", arXiv 2104.02057; facebookresearch/moco-v3).

- query: backbone + projector + predictor; key: the momentum encoder (backbone + projector),
  an EMA of the query encoder with m following a cosine from ``momentum_base`` to 1 (§3, Alg. 1).
- loss: symmetric InfoNCE over the batch's keys, gathered from every rank, with temperature τ,
  scaled by 2τ (repository ``contrastive_loss``): ctr(q1, k2) + ctr(q2, k1).
- the momentum encoder is updated after each optimizer step (``MomentumTargetMethod``); the
  repository updates it at the start of each forward, which gives the same sequence of
  weights with the schedule index shifted by one step.
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

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.heads import bn_layout, build_predictor, mlp_head
from pretrain.methods.momentum_target import MomentumTargetMethod
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


class MoCoV3(MomentumTargetMethod):
    """Query encoder (backbone + projector) + predictor; the momentum key encoder is the target
    (``target_backbone`` + ``target_projector``)."""

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
        super().__init__(loss)
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
        self._attach_target()
        self.temperature = temperature

    def pair_loss(self, q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(q, t, self.temperature)
