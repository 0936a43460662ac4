"""The valid range of every number and named choice of the pretraining config, in one table.

``RULES`` maps each dotted key ("section.key") to a :class:`Rule`; ``pretrain.config`` checks
every value against it when a config is built (a recipe, overrides, a stored run's config),
and a bad value is one :class:`ConfigError` line naming the key, the value and the range.
"""

from __future__ import annotations

from common.errors import UserError
from common.ranges import Rule, above, at_least, between, one_of

__all__ = ["FREE_TEXT", "RULES", "ConfigError", "Rule", "above", "at_least", "between", "one_of"]


class ConfigError(UserError, ValueError):
    """A recipe or override that does not fit the config schema."""


def check(path: str, value: object) -> None:
    """One :class:`ConfigError` line naming ``path``, ``value`` and the valid range of
    ``RULES[path]`` (``common.ranges.Rule``, the same rule class as the transfer options')."""
    RULES[path].check(path, value, ConfigError)


def _methods() -> list[str]:
    from pretrain.methods import METHODS  # imports this module: looked up when checked

    return sorted(METHODS)


def _stems() -> tuple[str, ...]:
    from hub.backbones import STEMS  # imports torch and timm: looked up when checked

    return STEMS


def _backbones() -> list[str]:
    from hub.backbones import available

    return available()


def _predictors() -> tuple[str, ...]:
    from pretrain.heads import PREDICTORS

    return PREDICTORS


def _bn_layouts() -> tuple[str, ...]:
    from pretrain.heads import BN_LAYOUTS

    return ("default", *BN_LAYOUTS)


def _losses() -> tuple[str, ...]:
    from pretrain.methods.simsiam import LOSS_MODES

    return LOSS_MODES


# ``train.seed`` bound: pretrain.data.batch_seed = (seed·1000003 + epoch)·1000033 + index must
# stay a 64-bit generator seed (< 2**64) for any epoch and batch index.
MAX_SEED = 2**24 - 1

# Every number and named choice of the config, by dotted key ("section.key"); checked by
# from_dict. Booleans need no rule (their type is checked); free text (paths, the recipe's
# name) is listed in FREE_TEXT. A new numeric or choice field needs a row here (a test checks).
RULES: dict[str, Rule] = {
    # model (hub.backbones.BackboneSpec)
    "model.name": Rule(choices=_backbones),
    "model.in_chans": one_of(1, 3, note="grayscale or RGB"),
    "model.width": at_least(1),
    "model.stem": Rule(choices=_stems),
    "model.stem_stride": one_of(1, 2),
    "model.img_size": at_least(8),
    "model.num_heads": at_least(0, "0 keeps timm's default"),
    "model.patch_size": at_least(1),
    "model.depth": at_least(0, "0 keeps timm's default"),
    "model.embed_dim": at_least(0, "0 keeps timm's default"),
    "model.pos_embed": one_of("learn", "sincos"),
    # method
    "method.name": Rule(choices=_methods),
    "method.proj_dim": at_least(1),
    "method.proj_hidden_dim": at_least(1),
    "method.proj_layers": at_least(1),
    "method.pred_hidden_dim": at_least(1),
    "method.predictor": Rule(choices=_predictors),
    "method.loss": Rule(choices=_losses),
    "method.bn": Rule(choices=_bn_layouts),
    "method.target_refresh_steps": at_least(0, "SimSiam §5 alternation; 0: SimSiam itself"),
    "method.momentum_base": between(0, 1, note="BYOL's tau_base; 1 = a fixed target"),
    "method.momentum_schedule": one_of("cosine", "constant"),
    "method.temperature": above(0, note="InfoNCE divides by it"),
    "method.out_dim": at_least(1, "DINO's K"),
    "method.student_temp": above(0, note="DINO divides by it"),
    "method.teacher_temp": above(0, note="DINO divides by it"),
    "method.warmup_teacher_temp": above(0, note="DINO divides by it"),
    "method.warmup_teacher_temp_epochs": at_least(0, "0: no warmup"),
    "method.center_momentum": between(0, 1),
    "method.freeze_last_layer_epochs": at_least(0, "0: never frozen"),
    "method.clip_grad": at_least(0, "0 disables clipping"),
    "method.drop_path_rate": Rule(lo=0, hi=1, hi_open=True, note="stochastic depth"),
    # data
    "data.dataset": one_of("fashion_mnist", "imagefolder"),
    "data.augment": one_of("small", "small_byol", "small_dino", "mocov2", "byol", "dino"),
    "data.img_size": at_least(8),
    "data.crop_min_scale": between(0, 1, lo_open=True, note="RandomResizedCrop's area fraction"),
    "data.num_workers": at_least(0, "0 loads in the training process"),
    "data.local_crops": at_least(0, "DINO's local crops; 0: the 2 global ones only"),
    "data.local_img_size": at_least(8),
    "data.local_crop_min_scale": between(0, 1, lo_open=True, note="an area fraction"),
    "data.local_crop_max_scale": between(0, 1, lo_open=True, note="an area fraction"),
    # optim
    "optim.name": one_of("sgd", "lars", "adamw"),
    "optim.base_lr": at_least(0),
    "optim.momentum": between(0, 1),
    "optim.weight_decay": at_least(0),
    "optim.weight_decay_end": at_least(0),
    "optim.lars_eta": at_least(0),
    "optim.warmup_epochs": at_least(0),
    "optim.large_batch": at_least(0, "0 turns the large-batch warmup rule off"),
    "optim.large_batch_warmup_epochs": at_least(0),
    "optim.schedule": one_of("cosine", "constant"),
    "optim.pred_lr_mult": at_least(0, "the predictor's lr / the encoder's (Su 2020)"),
    "optim.pred_freeze_steps": at_least(0, "steps without a predictor update (SimSiam Table 1b)"),
    # train
    "train.batch_size": at_least(1, "the global batch, split over the processes"),
    "train.accum_steps": at_least(1),
    "train.epochs": above(0),
    "train.max_steps": at_least(0, "0: unset, train.epochs decides"),
    "train.seed": between(0, MAX_SEED, note="the per-batch seeds must fit 64 bits"),
    "train.device": one_of("auto", "cpu", "cuda"),
    "train.precision": one_of("auto", "bf16", "fp32"),
    "train.threads": at_least(0, "0 keeps torch's default"),
    "train.log_every": at_least(1),
    "train.ckpt_every": at_least(0, "0: a checkpoint only at the end"),
    # monitor
    "monitor.every": at_least(1),
    "monitor.knn_every_epochs": at_least(0, "0 disables the kNN monitor"),
    "monitor.knn_bank": at_least(1),
    "monitor.knn_queries": at_least(1),
    "monitor.knn_k": at_least(1),
    "monitor.knn_t": above(0, note="the kNN vote divides by it"),
    "monitor.collapse_threshold": at_least(0),
    # eval
    "eval.knn_k": at_least(1),
    "eval.knn_t": above(0, note="the kNN vote divides by it"),
}
FREE_TEXT = ("recipe", "data.root", "data.val_root")
