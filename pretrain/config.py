"""The typed pretraining config: recipe files (TOML) plus ``section.key=value`` overrides.

A recipe is a TOML file in ``pretrain/recipes/`` whose tables mirror the dataclasses below.
Unknown keys and wrong types are errors that name the valid keys; nothing is silently
ignored. The whole config travels with the run (checkpoint, summary, published encoder), so
nothing downstream has to parse a model name to learn its recipe.

Every number and every named choice has its valid range in one table, ``RULES``, checked
when a config is built (a recipe, overrides, a stored run's config): a bad value is one line
naming the key, the value and the range.

A run directory keeps its config (``config.json`` and every checkpoint). Resuming it
(``resume_config``) starts from that stored config; a checkpointed run may then change only
the keys of ``RESUME_MUTABLE``, which leave the trained state and the batches still to come
as they are (the Trainer checks, and logs each change in the run's event log).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from hub.backbones import STEMS, BackboneSpec
from records.verdict import Z_COLLAPSED_BELOW

RECIPES_DIR = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "simsiam_resnet18_fmnist"


class ConfigError(UserError, ValueError):
    """A recipe or override that does not fit the config schema."""


@dataclass
class MethodConfig:
    name: str = "simsiam"
    proj_dim: int = 2048  # projector output d (SimSiam §3: 2048)
    proj_hidden_dim: int = 2048  # projector hidden width (SimSiam §3: 2048)
    proj_layers: int = 3  # SimSiam §3: 3 fc layers
    pred_hidden_dim: int = 512  # predictor bottleneck (SimSiam §3: 512)
    stop_grad: bool = True  # SimSiam §4.1 / Fig. 2
    # Ablation switches (pretrain/methods/*.py docstrings cite each one's source):
    predictor: str = "mlp"  # "mlp", "none", "fixed_random", "linear", "bias" (SimSiam Table 1)
    loss: str = "symmetric"  # "symmetric", "asymmetric", "asymmetric_2x" (SimSiam §4.6)
    bn: str = (
        "default"  # "default" (the method's paper), "none", "hidden", "hidden_proj_out", "all"
    )
    symmetric_predictor: bool = False  # predictor on both branches (Zhang et al. 2022)
    mirror: bool = False  # stop-gradient on the predictor's input, not the target (Zhang et al.)
    # EMA target (BYOL, MoCo v3): m = 1 - (1 - momentum_base)(cos(pi k/K) + 1)/2 per step k.
    momentum_base: float = 0.996  # BYOL tau_base; 1.0 = a fixed random target (Table 5a)
    momentum_schedule: str = "cosine"  # "cosine" (to 1) or "constant" (tau_base every step)
    temperature: float = 1.0  # MoCo v3 InfoNCE tau (ResNet 1.0, ViT 0.2)
    # DINO (Caron et al. 2021; methods/dino.py, docs/recipes.md): proj_hidden_dim, proj_dim and
    # proj_layers are its head's MLP (2048, bottleneck 256, 3 layers), then K prototypes.
    out_dim: int = 65536  # K (repository --out_dim)
    norm_last_layer: bool = True  # weight-normed last layer, its norm fixed at 1 (repository)
    head_bn: bool = False  # BN in the head's MLP (repository --use_bn_in_head)
    student_temp: float = 0.1  # tau_s (§3.1, §3.2)
    teacher_temp: float = 0.07  # tau_t after its warmup (§3.2; repository default 0.04)
    warmup_teacher_temp: float = 0.04  # tau_t at epoch 0 (§3.2)
    warmup_teacher_temp_epochs: int = 30  # linear warmup of tau_t (§3.2; repository default 0)
    center_momentum: float = 0.9  # m of the center's EMA (§3.1, Eq. 4)
    freeze_last_layer_epochs: float = 1.0  # last layer not updated (repository)
    clip_grad: float = 3.0  # per-parameter gradient-norm clip, 0 disables (repository)
    drop_path_rate: float = 0.0  # the student ViT's stochastic depth (repository 0.1)


@dataclass
class DataConfig:
    dataset: str = "fashion_mnist"  # "fashion_mnist" or "imagefolder"
    root: str = "/usr/share/datasets/fashion-mnist"
    augment: str = "small"  # "small" / "small_byol" (in-memory gray) or "mocov2" / "byol" (PIL)
    img_size: int = 28
    crop_min_scale: float = 0.2  # MoCo v2 RandomResizedCrop scale (0.2, 1)
    num_workers: int = 1
    val_root: str = ""  # ImageFolder only: labelled split for the kNN monitor
    # Multi-crop (DINO §3.1; pretrain/multicrop.py), with augment "dino" (PIL) / "small_dino":
    # 2 global crops (img_size, scale crop_min_scale-1) + local_crops local ones.
    local_crops: int = 0
    local_img_size: int = 96
    local_crop_min_scale: float = 0.05
    local_crop_max_scale: float = 0.4


@dataclass
class OptimConfig:
    name: str = "sgd"  # "sgd", "lars" (BYOL, MoCo v3 ResNet) or "adamw" (MoCo v3 ViT)
    base_lr: float = 0.05  # SimSiam §4: lr = 0.05 × batch / 256
    momentum: float = 0.9
    weight_decay: float = 1e-4
    weight_decay_end: float | None = None  # set: cosine from weight_decay to this per step
    exclude_bias_norm: bool = False  # biases and norm params (1-D): no weight decay, no LARS
    lars_eta: float = 1e-3  # LARS trust coefficient (BYOL App. C: 1e-3)
    fix_pred_lr: bool = True  # SimSiam Table 1 / repository --fix-pred-lr
    warmup_epochs: float = 0.0  # linear warmup from 0 (BYOL, MoCo v3: 10 epochs)
    # SimSiam §4.2 / Table 2: no warmup, but 10 epochs of it for batches >= 1024. 0: no rule.
    large_batch: int = 0
    large_batch_warmup_epochs: float = 0.0
    schedule: str = "cosine"  # "cosine" or "constant"
    per_step: bool = False  # repository decays per epoch; True decays every step


@dataclass
class TrainConfig:
    batch_size: int = 512  # global batch, split across ranks
    # Micro-batches per step: each rank's share of the batch is split in `accum_steps` chunks
    # whose gradients add up before the step (for a batch that does not fit). BN statistics and
    # MoCo v3's in-batch negatives then come from a chunk, not the whole batch: it is recorded.
    accum_steps: int = 1
    epochs: float = 100.0
    max_steps: int = 0  # > 0 stops early at this step (the schedule still spans `epochs`)
    seed: int = 0
    device: str = "auto"  # "auto", "cpu" or "cuda"
    precision: str = "auto"  # "auto" (bf16 on CUDA), "bf16", "fp32"
    channels_last: bool = True
    threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default
    log_every: int = 50
    ckpt_every: int = 500
    deterministic: bool = False
    sync_bn: bool = True  # with > 1 process: SyncBN over the global batch (SimSiam §4, MoCo v3)


@dataclass
class MonitorConfig:
    every: int = 50  # collapse statistics every N steps (on the training batch's z)
    knn_every_epochs: float = 1.0  # kNN monitor period; 0 disables
    knn_bank: int = 10000  # labelled images in the monitor's bank
    knn_queries: int = 2000  # held-out labelled images queried
    knn_k: int = 20
    knn_t: float = 0.07
    collapse_threshold: float = Z_COLLAPSED_BELOW  # z-std × √d below this: collapsed


@dataclass
class EvalConfig:
    final_knn: bool = True  # after training: full kNN vs random init and raw pixels
    knn_k: int = 20
    knn_t: float = 0.07


@dataclass
class Config:
    recipe: str = DEFAULT_RECIPE
    model: BackboneSpec = field(default_factory=BackboneSpec)
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def warmup_epochs(self) -> float:
        """The recipe's warmup, or its large-batch warmup when the batch reaches
        ``optim.large_batch`` (SimSiam §4.2: 10 epochs for batch >= 1024)."""
        o = self.optim
        if o.large_batch and self.train.batch_size >= o.large_batch:
            return max(o.warmup_epochs, o.large_batch_warmup_epochs)
        return o.warmup_epochs

    @property
    def init_lr(self) -> float:
        """lr = base_lr × batch / 256 (SimSiam §4, linear scaling rule of Goyal et al.)."""
        return self.optim.base_lr * self.train.batch_size / 256


# ---------------------------------------------------------------------------- valid ranges


@dataclass(frozen=True)
class Rule:
    """The valid values of one config key: a numeric interval or a set of choices.

    ``choices`` may be a callable, for sets owned by a module that imports this one (the
    method registry). ``note`` says why, where the bound is not obvious.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself excluded
    hi_open: bool = False
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None
    note: str = ""

    def allowed(self) -> Sequence[Any] | None:
        return self.choices() if callable(self.choices) else self.choices

    def describe(self) -> str:
        choices = self.allowed()
        if choices is not None:
            return "one of " + ", ".join(repr(c) for c in choices)
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"in {left}{_num(self.lo)}, {_num(self.hi)}{right}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"

    def ok(self, value: Any) -> bool:
        choices = self.allowed()
        if choices is not None:
            return value in choices
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)

    def check(self, path: str, value: Any) -> None:
        """Raise a one-line ConfigError naming ``path``, ``value`` and the valid range."""
        if value is None or self.ok(value):
            return
        why = f" ({self.note})" if self.note else ""
        what = "not a valid choice" if self.choices is not None else "out of range"
        raise ConfigError(f"{path}={value!r} is {what}: must be {self.describe()}{why}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def at_least(lo: float, note: str = "") -> Rule:
    return Rule(lo=lo, note=note)


def above(lo: float, note: str = "") -> Rule:
    return Rule(lo=lo, lo_open=True, note=note)


def between(lo: float, hi: float, lo_open: bool = False, note: str = "") -> Rule:
    return Rule(lo=lo, hi=hi, lo_open=lo_open, note=note)


def one_of(*choices: Any, note: str = "") -> Rule:
    return Rule(choices=tuple(choices), note=note)


def _methods() -> list[str]:
    from pretrain.methods import METHODS  # imports this module: looked up when checked

    return sorted(METHODS)


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
    "model.stem": one_of(*STEMS),
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


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def load_config(recipe: str = DEFAULT_RECIPE, overrides: list[str] | None = None) -> Config:
    """Read a recipe (a name in ``pretrain/recipes`` or a path); apply ``a.b=value`` overrides."""
    path = Path(recipe)
    if not path.suffix:
        path = RECIPES_DIR / f"{recipe}.toml"
    if not path.is_file():
        raise ConfigError(
            f"recipe {recipe!r} not found; available: {', '.join(available_recipes())} "
            "(or pass a path to a .toml file)"
        )
    with path.open("rb") as f:
        raw = tomllib.load(f)
    raw.setdefault("recipe", path.stem)
    return with_overrides(raw, overrides)


def with_overrides(raw: dict[str, Any], overrides: list[str] | None = None) -> Config:
    """A Config from plain data (a recipe, a stored config) with ``a.b=value`` overrides."""
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        _set_dotted(raw, key.strip(), _parse_value(value.strip()))
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> Config:
    """Build a Config from plain data (a recipe, or the dict a checkpoint stored)."""
    return _build(Config, raw, "")


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'} must be a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(
                f"unknown config key {path!r}; valid keys in {where or 'the top level'}: "
                f"{', '.join(names)}"
            )
        kwargs[key] = _coerce(hints[key], value, path)
        if path in RULES:
            RULES[path].check(path, kwargs[key])
    return cls(**kwargs)


def _coerce(kind: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, path)
    if typing.get_origin(kind) in (types.UnionType, typing.Union):  # e.g. str | None
        for option in typing.get_args(kind):
            if option is type(None) and value is None:
                return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float, str, bool) and type(value) is kind:
        return value
    raise ConfigError(
        f"{path} must be of type {kind.__name__}, got {type(value).__name__} ({value!r})"
    )


def _parse_value(text: str) -> Any:
    """Parse an override's value as a TOML value; bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


# ---------------------------------------------------------------------------- resuming a run

# What an override may change when a run directory that holds a checkpoint is resumed, and
# why each is safe: none touches the weights, the optimizer state, or what the remaining
# batches hold (seed, batch size, augmentation, data set, model, method and optimizer stay
# as the run began; change those in a new run directory).
RESUME_MUTABLE: dict[str, str] = {
    "train.epochs": "extend only: the lr and EMA-momentum schedules stretch to the new length",
    "train.max_steps": "where training stops; the schedules still span train.epochs",
    "train.log_every": "how often metrics are logged",
    "train.ckpt_every": "how often checkpoints are saved",
    "train.threads": "CPU threads of this process",
    "data.num_workers": "loader processes; a batch does not depend on them",
    "data.root": "the same data, moved",
    "data.val_root": "the same labelled split, moved",
    "monitor.every": "how often the collapse statistics are measured",
    "monitor.knn_every_epochs": "how often the kNN monitor measures",
    "eval.final_knn": "the report after training",
    "eval.knn_k": "the report after training",
    "eval.knn_t": "the report after training",
}


@dataclass(frozen=True)
class Change:
    """One config value a resumed run changes."""

    key: str
    old: Any
    new: Any


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"seed": 0}}`` -> ``{"train.seed": 0}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def config_changes(stored: dict[str, Any], cfg: Config) -> list[Change]:
    """The values ``cfg`` changes relative to a stored config (missing keys: their defaults)."""
    try:
        old = flatten(from_dict(stored).to_dict())
    except ConfigError as e:
        raise ConfigError(f"the run's stored config no longer loads: {e}") from e
    new = flatten(cfg.to_dict())
    return [Change(k, old.get(k), new[k]) for k in new if old.get(k) != new[k]]


def check_resume_changes(changes: list[Change], where: str) -> None:
    """Refuse the changes a resumed run cannot take (``RESUME_MUTABLE``), in one line."""
    refused = [c for c in changes if c.key not in RESUME_MUTABLE]
    if refused:
        listed = ", ".join(f"{c.key} (run: {c.old!r}, given: {c.new!r})" for c in refused)
        raise ConfigError(
            f"resuming {where} cannot change {listed}; a resumed run keeps its config except "
            f"{', '.join(RESUME_MUTABLE)} (train.epochs only upward); drop those overrides, "
            "or start a new --run-dir"
        )
    for c in changes:
        if c.key == "train.epochs" and c.new < c.old:
            raise ConfigError(
                f"resuming {where}: train.epochs may only be extended (run: {c.old!r}, given: "
                f"{c.new!r}); to stop earlier set train.max_steps=N"
            )


def resume_config(
    stored: dict[str, Any], overrides: list[str] | None = None, recipe: str | None = None
) -> Config:
    """A stored run's config with ``overrides``; ``recipe``, when given, must be the run's."""
    if recipe is not None:
        given, theirs = load_config(recipe).recipe, stored.get("recipe", DEFAULT_RECIPE)
        if given != theirs:
            raise ConfigError(
                f"--recipe {recipe} does not match the run's recipe {theirs!r}; drop --recipe "
                "to resume the run, or start a new --run-dir"
            )
    return with_overrides(stored, overrides)
