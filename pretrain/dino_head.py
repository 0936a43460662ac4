"""DINO's projection head (Caron et al., ICCV 2021, §3.1 "Network architecture").

``mlp``: a 3-layer MLP, hidden 2048 with GELU, to a bottleneck of 256; then l2-normalization
and ``last_layer``, a weight-normalized linear layer without bias to K outputs (§3.1; the
bottleneck, GELU and K = 65536 are the repository's ``DINOHead``). No BN by default: "when
applying DINO to ViT we do not use any BN also in the projection heads" (§3.1); ``bn`` puts
BN after each hidden linear (repository ``use_bn_in_head``). With ``norm_last_layer`` the
norm g of every row is fixed at 1 and not trained, so the K prototypes stay on the unit sphere
(repository default; "not normalizing leads to better performance but can make the training
unstable"). The MLP's linears start from a truncated normal (std 0.02) with zero bias, as in
the repository.

``forward(h)`` returns the bottleneck z (what the kNN and collapse monitors read, as the
projector's output of the other methods); ``logits(z)`` is the head's K-way output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class DINOHead(nn.Module):
    """MLP to a bottleneck, then l2-normalize and a weight-normalized linear to K outputs."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        *,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        layers: int = 3,
        bn: bool = False,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"the DINO head needs at least one layer, got {layers}")
        dims = [in_dim] + [hidden_dim] * (layers - 1) + [bottleneck_dim]
        mlp: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-2], dims[1:-1], strict=True):
            mlp += [nn.Linear(d_in, d_out), *([nn.BatchNorm1d(d_out)] if bn else []), nn.GELU()]
        mlp.append(nn.Linear(dims[-2], dims[-1]))
        self.mlp = nn.Sequential(*mlp)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        g = self.last_layer.parametrizations.weight.original0  # (K, 1): each row's norm
        with torch.no_grad():
            g.fill_(1.0)
        g.requires_grad_(not norm_last_layer)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mlp(h)  # (N, bottleneck)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """The K-way output of bottleneck features ``z (N, bottleneck)``."""
        return self.last_layer(F.normalize(z, dim=-1))  # (N, K)
