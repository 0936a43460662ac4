"""Optimizers and parameter groups built from the config.

- ``sgd``: SGD with momentum (SimSiam §4 "Optimizer").
- ``lars``: ``common.lars.LARS`` (BYOL App. C; MoCo v3 ResNet-50).
- ``adamw``: AdamW with torch's default betas (MoCo v3 ViT, repository ``main_moco.py``).

Groups come from the method (``param_groups(fix_pred_lr)``: encoder, predictor with
``fix_lr``); with ``optim.exclude_bias_norm`` each is split in two, and the 1-D parameters
(biases, BN/LayerNorm weights and biases) go to a ``no_decay`` group: no weight decay and, under
LARS, no trust ratio (BYOL App. C; MoCo v3 "skipping wd and adaptation for 1-D parameters").

The predictor's groups carry ``lr_mult`` (``optim.pred_lr_mult``: its lr = mult × the
encoder's, Su 2020; Tian et al., ICML 2021) and ``frozen_left`` (``optim.pred_freeze_steps``:
lr 0 for the first k steps, SimSiam §4.2 Table 1 (b) meanwhile); ``pretrain.schedules.apply_lr``
applies both every step, so each schedule keeps its shape.
"""

from __future__ import annotations

import torch
from torch import nn

from common.lars import LARS
from pretrain.config import Config, ConfigError

OPTIMIZERS = ("sgd", "lars", "adamw")


def is_bias_or_norm(param: torch.Tensor) -> bool:
    """Biases and norm-layer parameters are the 1-D parameters of these networks."""
    return param.ndim <= 1


def split_bias_and_norm(groups: list[dict]) -> list[dict]:
    """Each group → itself without its 1-D parameters, plus a ``no_decay`` group of them."""
    out = []
    for group in groups:
        params = list(group["params"])
        rest = {k: v for k, v in group.items() if k != "params"}
        decay = [p for p in params if not is_bias_or_norm(p)]
        no_decay = [p for p in params if is_bias_or_norm(p)]
        if decay:
            out.append({**rest, "params": decay})
        if no_decay:
            name = f"{group.get('name', 'group')}.no_decay"
            out.append(
                {**rest, "name": name, "params": no_decay, "weight_decay": 0.0, "no_decay": True}
            )
    return out


def is_predictor_group(group: dict) -> bool:
    """The predictor's group (or its ``no_decay`` half), named so by the method."""
    return str(group.get("name", "")).split(".")[0] == "predictor"


def build_param_groups(model: nn.Module, cfg: Config) -> list[dict]:
    """The method's groups (trainable parameters only), split when the recipe says so.

    The predictor's groups get ``lr_mult`` and ``frozen_left`` (see the module docstring) and
    their starting lr (init_lr × mult, or 0 while frozen); other groups start at init_lr.
    """
    o = cfg.optim
    groups = []
    for group in model.param_groups(o.fix_pred_lr):
        params = [p for p in group["params"] if p.requires_grad]
        if not params:
            continue
        group = {**group, "params": params}
        if is_predictor_group(group):
            frozen = o.pred_freeze_steps > 0
            group.update(
                lr_mult=o.pred_lr_mult,
                frozen_left=o.pred_freeze_steps,
                lr=0.0 if frozen else cfg.init_lr * o.pred_lr_mult,
            )
        groups.append(group)
    return split_bias_and_norm(groups) if cfg.optim.exclude_bias_norm else groups


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """The recipe's optimizer at lr = base_lr × batch/256 over the method's parameter groups."""
    o = cfg.optim
    groups = build_param_groups(model, cfg)
    if o.name == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.init_lr, momentum=o.momentum, weight_decay=o.weight_decay
        )
    if o.name == "lars":
        return LARS(
            groups, lr=cfg.init_lr, momentum=o.momentum, weight_decay=o.weight_decay, eta=o.lars_eta
        )
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.init_lr, weight_decay=o.weight_decay)
    raise ConfigError(f"unknown optimizer {o.name!r}; available: {', '.join(OPTIMIZERS)}")
