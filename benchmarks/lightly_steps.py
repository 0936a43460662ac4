"""lightly's side of the throughput benchmark: its SimSiam, BYOL and MoCo v3 training steps.

Built from lightly's own heads, losses, ``update_momentum`` and ``LARS`` on a fresh backbone of
the recipe's spec, in the contiguous memory format (see ``pretrain_throughput.py`` for the
method). lightly is the project's optional ``bench`` extra: without it ``LIGHTLY_MISSING`` holds
the import error and nothing here can be built.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.step_setup import MOMENTUM
from benchmarks.step_timing import Step
from hub.backbones import create_backbone
from pretrain.config import Config

try:
    import lightly
    from lightly.loss import NegativeCosineSimilarity
    from lightly.models.modules import (
        BYOLPredictionHead,
        BYOLProjectionHead,
        MoCoProjectionHead,
        SimSiamPredictionHead,
        SimSiamProjectionHead,
    )
    from lightly.models.utils import update_momentum
    from lightly.utils.lars import LARS as LightlyLARS

    LIGHTLY_MISSING = None
    LIGHTLY_VERSION = lightly.__version__
except ImportError as e:  # the project's `bench` extra; our side runs without it
    LIGHTLY_MISSING = e
    LIGHTLY_VERSION = None


class LightlySimSiam(nn.Module):
    """lightly's SimSiam model (its docs' example) on a given backbone."""

    def __init__(self, backbone: nn.Module, proj_hidden: int, proj_dim: int, pred_hidden: int):
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimSiamProjectionHead(backbone.num_features, proj_hidden, proj_dim)
        self.prediction_head = SimSiamPredictionHead(proj_dim, pred_hidden, proj_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(f)
        p = self.prediction_head(z)
        return z.detach(), p


def lightly_step(
    cfg: Config,
    device: torch.device,
    x1: torch.Tensor,
    x2: torch.Tensor,
    amp_dtype: torch.dtype | None,
) -> tuple[Step, nn.Module]:
    """lightly's SimSiam on a fresh backbone of the same spec, contiguous memory format."""
    m = cfg.method
    model = LightlySimSiam(
        create_backbone(cfg.model), m.proj_hidden_dim, m.proj_dim, m.pred_hidden_dim
    ).to(device)
    model.train()
    criterion = NegativeCosineSimilarity()
    o = cfg.optim
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.init_lr, momentum=o.momentum, weight_decay=o.weight_decay
    )

    def step() -> torch.Tensor:
        amp = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
        with amp:
            z1, p1 = model(x1)
            z2, p2 = model(x2)
            loss = 0.5 * (criterion(z1, p2) + criterion(z2, p1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step, model


class LightlyEMA(nn.Module):
    """lightly's BYOL or MoCo v3 model (heads from lightly) with deep-copied target networks."""

    def __init__(self, backbone: nn.Module, method: str, cfg: Config) -> None:
        super().__init__()
        m = cfg.method
        feats = backbone.num_features
        self.backbone = backbone
        if method == "byol":
            self.projection_head = BYOLProjectionHead(feats, m.proj_hidden_dim, m.proj_dim)
        else:
            self.projection_head = MoCoProjectionHead(
                feats, m.proj_hidden_dim, m.proj_dim, num_layers=m.proj_layers, batch_norm=True
            )
        self.prediction_head = BYOLPredictionHead(m.proj_dim, m.pred_hidden_dim, m.proj_dim)
        self.backbone_momentum = copy.deepcopy(backbone).requires_grad_(False)
        self.projection_head_momentum = copy.deepcopy(self.projection_head).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1))


def lightly_ema_step(
    cfg: Config,
    device: torch.device,
    x1: torch.Tensor,
    x2: torch.Tensor,
    amp_dtype: torch.dtype | None,
    method: str,
) -> tuple[Step, nn.Module]:
    """lightly's BYOL / MoCo v3 pieces on a fresh backbone of the same spec, LARS, EMA update."""
    model = LightlyEMA(create_backbone(cfg.model), method, cfg).to(device)
    model.train()
    o = cfg.optim
    online = [p for n, p in model.named_parameters() if "momentum" not in n]
    groups = [
        {"params": [p for p in online if p.ndim > 1], "weight_decay": o.weight_decay},
        {"params": [p for p in online if p.ndim <= 1], "weight_decay": 0.0},
    ]
    optimizer = LightlyLARS(
        groups, lr=cfg.init_lr, momentum=o.momentum, trust_coefficient=o.lars_eta
    )
    criterion = NegativeCosineSimilarity()
    tau = cfg.method.temperature

    def moco_loss(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        labels = torch.arange(q.shape[0], device=q.device)
        return F.cross_entropy(q @ k.T / tau, labels) * (2 * tau)

    def step() -> torch.Tensor:
        amp = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
        with amp:
            p1, p2 = model(x1), model(x2)
            with torch.no_grad():
                t1, t2 = model.forward_momentum(x1), model.forward_momentum(x2)
            if method == "byol":  # 2 − 2cos = 2 + 2·D, summed over both view orders
                loss = 4.0 + 2.0 * (criterion(p1, t2) + criterion(p2, t1))
            else:
                loss = moco_loss(p1.float(), t2.float()) + moco_loss(p2.float(), t1.float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        update_momentum(model.backbone, model.backbone_momentum, MOMENTUM)
        update_momentum(model.projection_head, model.projection_head_momentum, MOMENTUM)
        return loss

    return step, model
