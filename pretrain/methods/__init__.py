"""Pretraining methods, one file each, registered by name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from hub.backbones import create_backbone
from pretrain.config import Config, ConfigError
from pretrain.methods.simsiam import SimSiam


def _simsiam(cfg: Config) -> nn.Module:
    m = cfg.method
    return SimSiam(
        create_backbone(cfg.model),
        proj_dim=m.proj_dim,
        proj_hidden_dim=m.proj_hidden_dim,
        proj_layers=m.proj_layers,
        pred_hidden_dim=m.pred_hidden_dim,
        stop_grad=m.stop_grad,
    )


METHODS: dict[str, Callable[[Config], nn.Module]] = {"simsiam": _simsiam}


def build_method(cfg: Config) -> nn.Module:
    """The method a config names, with its backbone built from ``cfg.model``."""
    if cfg.method.name not in METHODS:
        raise ConfigError(
            f"unknown method {cfg.method.name!r}; available: {', '.join(sorted(METHODS))}"
        )
    return METHODS[cfg.method.name](cfg)
