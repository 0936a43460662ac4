"""Optimizers built from the config; SGD with momentum as SimSiam §4 ("Optimizer")."""

from __future__ import annotations

import torch
from torch import nn

from pretrain.config import Config, ConfigError


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """SGD(momentum 0.9, weight decay 1e-4 on all parameters) at lr = base_lr × batch/256."""
    groups = model.param_groups(cfg.optim.fix_pred_lr)
    o = cfg.optim
    if o.name != "sgd":
        raise ConfigError(f"unknown optimizer {o.name!r}; available: sgd")
    return torch.optim.SGD(groups, lr=cfg.init_lr, momentum=o.momentum, weight_decay=o.weight_decay)
