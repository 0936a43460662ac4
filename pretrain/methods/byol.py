"""BYOL (Grill et al., "Bootstrap Your Own Latent", arXiv 2006.07733).

- online network: backbone + projector + predictor; target network: backbone + projector whose
  weights ξ are an EMA of the online weights θ, ξ ← τξ + (1 − τ)θ after every step (§3.1),
  with τ_k = 1 − (1 − τ_base)(cos(πk/K) + 1)/2 (§3.2; ``pretrain.schedules.cosine_to_one``).
- projector and predictor: Linear 4096 → BN → ReLU → Linear 256, no BN on the output (§3.3).
- loss: ‖q̄ − z̄'‖² = 2 − 2·cos(q, sg(z')), symmetrized by summing the two view orders
  (§3.1 Eq. 2, L^BYOL = L + L̃).

Ablation switches: ``momentum_base`` (Table 5a: 0.99 → 72.5, 0 → 0.3 collapse; 1.0 keeps the
target at its random init, 18.8), ``momentum_schedule='constant'`` (τ = τ_base every step, so
τ_base = 0 means no momentum at all), ``predictor`` (``pretrain.heads.build_predictor``),
``loss`` (symmetric / asymmetric), ``bn`` (SimSiam Table 3 layouts; BYOL's own is ``hidden``).

``forward`` returns the loss, z and h of the first view and, where there is a predictor (not
for ``predictor='none'``), p: the first view's predictor output q1 (detached), whose input is
z (``pretrain.monitors.p_stats`` and ``pred_alignment`` read the pair).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.heads import bn_layout, build_predictor, mlp_head
from pretrain.methods.momentum_target import MomentumTargetMethod


def byol_loss(q: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """mean_i ‖q_i/‖q_i‖ − z_i/‖z_i‖‖² = mean_i (2 − 2·cos(q_i, z_i)) (BYOL Eq. 2), in fp32."""
    return (2.0 - 2.0 * F.cosine_similarity(q.float(), z.float(), dim=-1)).mean()


class BYOL(MomentumTargetMethod):
    """Online backbone + projector + predictor; EMA target backbone + projector."""

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_dim: int = 256,
        proj_hidden_dim: int = 4096,
        pred_hidden_dim: int = 4096,
        predictor: str = "mlp",
        loss: str = "symmetric",
        bn: str = "hidden",
    ) -> None:
        super().__init__(loss)
        layout = bn_layout(bn)
        self.backbone = backbone
        self.projector = mlp_head(
            [backbone.num_features, proj_hidden_dim, proj_dim],
            bn_hidden=layout["hidden"],
            bn_last=layout["proj_out"],
            hidden_bias=True,
        )
        self.predictor = build_predictor(
            predictor,
            proj_dim,
            pred_hidden_dim,
            bn_hidden=layout["hidden"],
            bn_last=layout["pred_out"],
        )
        self.returns_p = predictor != "none"  # p = q1 beside z and h (the shared forward)
        self._attach_target()

    def pair_loss(self, q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return byol_loss(q, t)
