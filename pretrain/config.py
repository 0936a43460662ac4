"""The typed pretraining config: recipe files (TOML) plus ``section.key=value`` overrides.

A recipe is a TOML file in ``pretrain/recipes/`` whose tables mirror the dataclasses below.
Unknown keys and wrong types are errors that name the valid keys; nothing is silently
ignored. The whole config travels with the run (checkpoint, summary, published encoder), so
nothing downstream has to parse a model name to learn its recipe.

Every number and every named choice has its valid range in ``pretrain.config_rules.RULES``;
resuming a run directory with its stored config is ``pretrain.resume``.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.overrides import parse_value, split_override
from hub.backbones import BackboneSpec
from pretrain.config_rules import RULES, ConfigError, check
from pretrain.recipe_index import DEFAULT_RECIPE, RECIPES_DIR, available_recipes
from records.verdict import Z_COLLAPSED_BELOW

# Each field's comment is its meaning: ``pretrain/run.py --list-keys`` prints it (a field with no
# comment of its own takes the comment lines right above it; pretrain.config_keys).


@dataclass
class MethodConfig:
    name: str = "simsiam"  # the method (pretrain/methods/): simsiam, byol, mocov3 or dino
    proj_dim: int = 2048  # projector output d (SimSiam §3: 2048; DINO: the head's bottleneck)
    proj_hidden_dim: int = 2048  # projector hidden width (SimSiam §3: 2048)
    proj_layers: int = 3  # projector depth in fc layers (SimSiam §3: 3)
    pred_hidden_dim: int = 512  # predictor bottleneck (SimSiam §3: 512)
    stop_grad: bool = True  # stop-gradient on the target branch (SimSiam §4.1 / Fig. 2)
    # Ablation switches (pretrain/methods/*.py docstrings cite each one's source):
    predictor: str = "mlp"  # "mlp", "none", "fixed_random", "linear", "bias" (SimSiam Table 1)
    loss: str = "symmetric"  # "symmetric", "asymmetric", "asymmetric_2x" (SimSiam §4.6)
    bn: str = (
        "default"  # BN layout of the heads: "default" (the method's paper), "none", "hidden", ...
    )
    symmetric_predictor: bool = False  # predictor on both branches (Zhang et al. 2022)
    mirror: bool = False  # stop-gradient on the predictor's input, not the target (Zhang et al.)
    target_refresh_steps: int = 0  # SimSiam §5 k-step alternation; 0: the live target (k = 1)
    # SimSiam: the stop-gradient target de-centred, sg(z/|z| - its batch mean) (Zhang et al.
    # 2022 §3's z = o + r, target r); with predictor "none" it isolates de-centering.
    center_target: bool = False
    # EMA target (BYOL, MoCo v3): m = 1 - (1 - momentum_base)(cos(pi k/K) + 1)/2 per step k.
    momentum_base: float = 0.996  # EMA target momentum (BYOL tau_base); 1.0 = a fixed target
    momentum_schedule: str = "cosine"  # "cosine" (to 1) or "constant" (tau_base every step)
    temperature: float = 1.0  # MoCo v3 InfoNCE tau (ResNet 1.0, ViT 0.2)
    # DINO (Caron et al. 2021; methods/dino.py, docs/recipes.md): proj_hidden_dim, proj_dim and
    # proj_layers are its head's MLP (2048, bottleneck 256, 3 layers), then K prototypes.
    out_dim: int = 65536  # DINO's K: prototypes in the head's last layer (repository --out_dim)
    norm_last_layer: bool = True  # DINO: weight-normed last layer, norm fixed at 1 (repository)
    head_bn: bool = False  # DINO: BN in the head's MLP (repository --use_bn_in_head)
    student_temp: float = 0.1  # DINO's student temperature tau_s (§3.1, §3.2)
    teacher_temp: float = 0.07  # DINO's tau_t after its warmup (§3.2; repository default 0.04)
    warmup_teacher_temp: float = 0.04  # DINO's tau_t at epoch 0 (§3.2)
    warmup_teacher_temp_epochs: int = 30  # epochs of tau_t's linear warmup (§3.2; repo 0)
    center_momentum: float = 0.9  # DINO: momentum of the center's EMA (§3.1, Eq. 4)
    freeze_last_layer_epochs: float = 1.0  # DINO: epochs the last layer is not updated (repo)
    clip_grad: float = 3.0  # DINO: per-parameter gradient-norm clip, 0 disables (repository)
    drop_path_rate: float = 0.0  # DINO: the student ViT's stochastic depth (repository 0.1)


@dataclass
class DataConfig:
    dataset: str = "fashion_mnist"  # "fashion_mnist" (IDX files) or "imagefolder"
    root: str = "/usr/share/datasets/fashion-mnist"  # the dataset's folder (--data sets it)
    augment: str = "small"  # "small" / "small_byol" (in-memory gray) or "mocov2" / "byol" (PIL)
    img_size: int = 28  # training crop side in pixels (DINO: the global crops')
    crop_min_scale: float = 0.2  # smallest crop area fraction (MoCo v2 RandomResizedCrop 0.2)
    num_workers: int = 1  # DataLoader worker processes (capped at the CPUs available)
    val_root: str = ""  # ImageFolder only: labelled split for the kNN monitor
    # Multi-crop (DINO §3.1; pretrain/multicrop.py), with augment "dino" (PIL) / "small_dino":
    # 2 global crops (img_size, scale crop_min_scale-1) + local_crops local ones.
    local_crops: int = 0  # DINO's local crops per image besides the 2 global ones (§3.1)
    local_img_size: int = 96  # side of DINO's local crops in pixels (§3.1: 96)
    local_crop_min_scale: float = 0.05  # smallest area fraction of a local crop (repo 0.05)
    local_crop_max_scale: float = 0.4  # largest area fraction of a local crop (repo 0.4)


@dataclass
class OptimConfig:
    name: str = "sgd"  # "sgd", "lars" (BYOL, MoCo v3 ResNet) or "adamw" (MoCo v3 ViT)
    base_lr: float = 0.05  # lr per 256 images: lr = base_lr × batch / 256 (SimSiam §4)
    momentum: float = 0.9  # SGD / LARS momentum
    weight_decay: float = 1e-4  # weight decay (SimSiam §4: 1e-4)
    weight_decay_end: float | None = None  # set: cosine from weight_decay to this per step
    exclude_bias_norm: bool = False  # biases and norm params (1-D): no weight decay, no LARS
    lars_eta: float = 1e-3  # LARS trust coefficient (BYOL App. C: 1e-3)
    fix_pred_lr: bool = True  # predictor keeps the initial lr (SimSiam Table 1, --fix-pred-lr)
    # The predictor's lr = this × the encoder's, under every schedule (Su 2020; Tian et al.,
    # ICML 2021: the predictor must adapt faster than the encoder). 1: the papers' recipe.
    pred_lr_mult: float = 1.0
    # The predictor gets no update for the first k steps (lr 0): a fixed random predictor
    # meanwhile (SimSiam §4.2, Table 1 (b)), then it adapts. 0: no freeze.
    pred_freeze_steps: int = 0
    warmup_epochs: float = 0.0  # linear warmup from 0 (BYOL, MoCo v3: 10 epochs)
    # SimSiam §4.2 / Table 2: no warmup, but 10 epochs of it for batches >= 1024. 0: no rule.
    large_batch: int = 0
    large_batch_warmup_epochs: float = 0.0  # the warmup of a batch >= large_batch (SimSiam: 10)
    schedule: str = "cosine"  # lr schedule after the warmup: "cosine" or "constant"
    per_step: bool = False  # repository decays per epoch; True decays every step


@dataclass
class TrainConfig:
    batch_size: int = 512  # global batch, split across ranks
    # Micro-batches per step: each rank's share of the batch is split in `accum_steps` chunks
    # whose gradients add up before the step (for a batch that does not fit). BN statistics and
    # MoCo v3's in-batch negatives then come from a chunk, not the whole batch: it is recorded.
    accum_steps: int = 1
    epochs: float = 100.0  # the schedules' length in epochs (fractions allowed)
    max_steps: int = 0  # > 0 stops early at this step (the schedule still spans `epochs`)
    seed: int = 0  # weights, data order and augmentation (keyed by step: resumes exactly)
    device: str = "auto"  # "auto", "cpu" or "cuda"
    precision: str = "auto"  # "auto" (bf16 on CUDA), "bf16", "fp32"
    channels_last: bool = True  # NHWC memory format (faster convolutions on most devices)
    threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default
    log_every: int = 50  # a metrics.jsonl row every N steps (and at every monitor point)
    ckpt_every: int = 500  # checkpoints/last.pt every N steps; 0: at the end (and on Ctrl-C)
    deterministic: bool = False  # torch's deterministic algorithms (bitwise repeatable runs)
    sync_bn: bool = True  # with > 1 process: SyncBN over the global batch (SimSiam §4, MoCo v3)


@dataclass
class MonitorConfig:
    every: int = 50  # collapse statistics every N steps (on the training batch's z)
    knn_every_epochs: float = 1.0  # kNN monitor period; 0 disables
    knn_bank: int = 10000  # labelled images in the monitor's bank
    knn_queries: int = 2000  # held-out labelled images queried
    knn_k: int = 20  # the monitor's kNN neighbours
    knn_t: float = 0.07  # the monitor's kNN vote temperature (exp(sim / t))
    # Not read any more: a run's verdict is records.verdict's, over a window of monitor points,
    # not one reading against this (kept so that the configs earlier runs stored still load).
    collapse_threshold: float = Z_COLLAPSED_BELOW


@dataclass
class EvalConfig:
    final_knn: bool = True  # after training: full kNN vs random init and raw pixels
    knn_k: int = 20  # the final report's kNN neighbours (Wu et al. 2018: 200; small data: 20)
    knn_t: float = 0.07  # the final report's kNN vote temperature (exp(sim / t))


@dataclass
class Config:
    recipe: str = DEFAULT_RECIPE  # the recipe's name (pretrain/recipes/<name>.toml)
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


def check_batch_split(batch_size: int, world_size: int) -> None:
    """``train.batch_size`` is the global batch: it must split evenly over the processes."""
    if batch_size % world_size:
        raise ConfigError(
            f"train.batch_size={batch_size} is out of range for {world_size} processes: must be "
            f"a multiple of {world_size} (the global batch splits evenly over the processes)"
        )


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
        key, value = split_override(item)
        _set_dotted(raw, key, parse_value(value))
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
                f"{', '.join(names)} (pretrain/run.py --list-keys describes each)"
            )
        kwargs[key] = _coerce(hints[key], value, path)
        if path in RULES:
            check(path, kwargs[key])
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


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value
