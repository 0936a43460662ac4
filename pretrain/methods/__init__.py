"""Pretraining methods, one file each, registered by name.

Every method takes ``forward(*views) -> {"loss", "z", "h"}`` and ``param_groups(fix_pred_lr)``;
methods with an EMA target also have ``update_target(momentum)``, which the Trainer calls after
each optimizer step with ``pretrain.schedules.momentum_at``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from hub.backbones import VITS, create_backbone
from pretrain.config import Config, ConfigError
from pretrain.dino_head import DINOHead
from pretrain.methods.byol import BYOL
from pretrain.methods.dino import DINO
from pretrain.methods.mocov3 import MoCoV3
from pretrain.methods.simsiam import SimSiam

# ``method.bn = "default"`` means each paper's own BN placement.
DEFAULT_BN = {"simsiam": "hidden_proj_out", "byol": "hidden"}


def _bn(cfg: Config) -> str:
    if cfg.method.bn != "default":
        return cfg.method.bn
    if cfg.method.name == "mocov3":  # repository: ViT predictor has an output BN, ResNet not
        return "all" if cfg.model.name in VITS else "hidden_proj_out"
    return DEFAULT_BN[cfg.method.name]


def _only_simsiam(cfg: Config) -> None:
    m = cfg.method
    simsiam_only = ("symmetric_predictor", "mirror", "target_refresh_steps", "center_target")
    used = [k for k in simsiam_only if getattr(m, k)]
    if not m.stop_grad:
        used.append("stop_grad=false")
    if used:
        raise ConfigError(
            f"method {m.name!r} has an EMA target; {', '.join(used)} are SimSiam ablations "
            "(set method.name='simsiam')"
        )


def _simsiam(cfg: Config) -> nn.Module:
    m = cfg.method
    return SimSiam(
        create_backbone(cfg.model),
        proj_dim=m.proj_dim,
        proj_hidden_dim=m.proj_hidden_dim,
        proj_layers=m.proj_layers,
        pred_hidden_dim=m.pred_hidden_dim,
        stop_grad=m.stop_grad,
        predictor=m.predictor,
        loss=m.loss,
        bn=_bn(cfg),
        symmetric_predictor=m.symmetric_predictor,
        mirror=m.mirror,
        target_refresh_steps=m.target_refresh_steps,
        center_target=m.center_target,
    )


def _byol(cfg: Config) -> nn.Module:
    _only_simsiam(cfg)
    m = cfg.method
    if m.proj_layers != 2:
        raise ConfigError(
            f"BYOL's projector has 2 layers (§3.3); got method.proj_layers={m.proj_layers}"
        )
    return BYOL(
        create_backbone(cfg.model),
        proj_dim=m.proj_dim,
        proj_hidden_dim=m.proj_hidden_dim,
        pred_hidden_dim=m.pred_hidden_dim,
        predictor=m.predictor,
        loss=m.loss,
        bn=_bn(cfg),
    )


def _mocov3(cfg: Config) -> nn.Module:
    _only_simsiam(cfg)
    m = cfg.method
    return MoCoV3(
        create_backbone(cfg.model),
        proj_dim=m.proj_dim,
        proj_hidden_dim=m.proj_hidden_dim,
        proj_layers=m.proj_layers,
        pred_hidden_dim=m.pred_hidden_dim,
        temperature=m.temperature,
        predictor=m.predictor,
        loss=m.loss,
        bn=_bn(cfg),
    )


def _dino(cfg: Config) -> nn.Module:
    _only_simsiam(cfg)
    m = cfg.method
    backbone = create_backbone(cfg.model)
    head = DINOHead(
        backbone.num_features,
        m.out_dim,
        hidden_dim=m.proj_hidden_dim,
        bottleneck_dim=m.proj_dim,
        layers=m.proj_layers,
        bn=m.head_bn,
        norm_last_layer=m.norm_last_layer,
    )
    return DINO(
        backbone,
        head,
        student_temp=m.student_temp,
        teacher_temp=m.teacher_temp,
        warmup_teacher_temp=m.warmup_teacher_temp,
        warmup_teacher_temp_epochs=m.warmup_teacher_temp_epochs,
        center_momentum=m.center_momentum,
        freeze_last_layer_epochs=m.freeze_last_layer_epochs,
        clip_grad=m.clip_grad,
        drop_path_rate=m.drop_path_rate,
    )


METHODS: dict[str, Callable[[Config], nn.Module]] = {
    "simsiam": _simsiam,
    "byol": _byol,
    "mocov3": _mocov3,
    "dino": _dino,
}


def build_method(cfg: Config) -> nn.Module:
    """The method a config names, with its backbone built from ``cfg.model``."""
    if cfg.method.name not in METHODS:
        raise ConfigError(
            f"unknown method {cfg.method.name!r}; available: {', '.join(sorted(METHODS))}"
        )
    try:
        return METHODS[cfg.method.name](cfg)
    except ValueError as e:  # a switch value the method rejects: name it as a config error
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"method {cfg.method.name!r}: {e}") from e
