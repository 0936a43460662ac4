"""SimSiam (Chen & He, "Exploring Simple Siamese Representation Learning", arXiv 2011.10566).

As the paper and facebookresearch/simsiam define it:
- encoder f = backbone + projector: 3 fc layers (SimSiam §3 "Baseline settings"), BN on every
  layer; the output BN has ``affine=False`` and the last fc bias is frozen (repository).
  ImageNet sizes 2048-2048-2048.
- predictor h: 2 fc layers, bottleneck 2048-512-2048, BN on the hidden layer only (§3, §4.4).
- loss: L = D(p1, sg(z2))/2 + D(p2, sg(z1))/2 with D the negative cosine similarity (§3 Eq. 1-4).
- ``stop_grad=False`` removes the stop-gradient (§4.1, Fig. 2: the run collapses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.heads import mlp_head


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """D(p, z) = −mean_i <p_i/‖p_i‖, z_i/‖z_i‖> (SimSiam Eq. 1), computed in fp32."""
    return -F.cosine_similarity(p.float(), z.float(), dim=-1).mean()


class SimSiam(nn.Module):
    """Backbone + projector + predictor; ``forward(x1, x2)`` returns the loss and the outputs."""

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_dim: int = 2048,
        proj_hidden_dim: int = 2048,
        proj_layers: int = 3,
        pred_hidden_dim: int = 512,
        stop_grad: bool = True,
    ) -> None:
        super().__init__()
        feat_dim = backbone.num_features
        self.backbone = backbone
        self.projector = mlp_head(
            [feat_dim] + [proj_hidden_dim] * (proj_layers - 1) + [proj_dim],
            bn_hidden=True,
            bn_last=True,
            bn_last_affine=False,
            freeze_last_bias=True,
        )
        self.predictor = mlp_head([proj_dim, pred_hidden_dim, proj_dim], bn_hidden=True)
        self.stop_grad = stop_grad

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        h1, h2 = self.backbone(x1), self.backbone(x2)  # (N, F)
        z1, z2 = self.projector(h1), self.projector(h2)  # (N, D)
        p1, p2 = self.predictor(z1), self.predictor(z2)  # (N, D)
        t1, t2 = (z1.detach(), z2.detach()) if self.stop_grad else (z1, z2)
        loss = negative_cosine(p1, t2) / 2 + negative_cosine(p2, t1) / 2
        return {"loss": loss, "z": z1.detach(), "h": h1.detach()}

    def param_groups(self, fix_pred_lr: bool) -> list[dict]:
        """SGD groups; with ``fix_pred_lr`` the predictor keeps the initial lr (Table 1, 68.1)."""
        encoder = [p for n, p in self.named_parameters() if not n.startswith("predictor.")]
        predictor = list(self.predictor.parameters())
        return [
            {"name": "encoder", "params": [p for p in encoder if p.requires_grad]},
            {"name": "predictor", "params": predictor, "fix_lr": fix_pred_lr},
        ]
