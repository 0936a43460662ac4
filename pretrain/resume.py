"""Resuming a run directory: its stored config, and the few overrides a resumed run may take.

A run directory keeps its config (``config.json`` and every checkpoint). ``resume_config``
starts from that stored config; a checkpointed run may then change only the keys of
``RESUME_MUTABLE``, which leave the trained state and the batches still to come as they are
(the Trainer checks with ``check_resume_changes`` and logs each change in the run's event log).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pretrain.config_rules import ConfigError
from pretrain.recipe_index import DEFAULT_RECIPE

if TYPE_CHECKING:
    from pretrain.config import Config

# This module imports no torch: ``pretrain/run.py --help`` lists RESUME_MUTABLE (pretrain.config,
# which builds on hub.backbones and so on torch and timm, is imported where it is used).

# What an override may change when a run directory that holds a checkpoint is resumed, and
# why each is safe: none touches the weights, the optimizer state, or what the remaining
# batches hold (seed, batch size, augmentation, data set, model, method and optimizer stay
# as the run began; change those in a new run directory). DINO's four are what its authors
# change when restarting a run that does not learn (main_dino.py's --teacher_temp,
# --warmup_teacher_temp, --freeze_last_layer and --clip_grad help; their restart keeps the
# weights and takes the new arguments): they change the remaining steps, so each change is
# logged in job_events.jsonl and listed in summary.json's config_changes.
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
    "method.teacher_temp": "DINO's tau_t from the next step on (repository: lower it if the "
    "loss does not fall)",
    "method.warmup_teacher_temp": "DINO's tau_t warm-up start, from the next step on",
    "method.freeze_last_layer_epochs": "DINO: how long the last layer stays frozen "
    "(repository: raise it if the loss does not fall)",
    "method.clip_grad": "DINO's gradient clipping from the next step on (repository: "
    "0.3-1.0 helps large ViTs)",
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
    from pretrain.config import from_dict

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
    from pretrain.config import load_config, with_overrides

    if recipe is not None:
        given, theirs = load_config(recipe).recipe, stored.get("recipe", DEFAULT_RECIPE)
        if given != theirs:
            raise ConfigError(
                f"--recipe {recipe} does not match the run's recipe {theirs!r}; drop --recipe "
                "to resume the run, or start a new --run-dir"
            )
    return with_overrides(stored, overrides)
