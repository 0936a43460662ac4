"""Resolve ``--model`` to a frozen encoder: a Hub repo id, a local encoder folder, or a pretraining
run directory (``checkpoints/last.pt`` plus its config), and with no model the embedded
default's latest run under ``runs/``.

``random_init=True`` gives the same architecture at a seeded random initialization (the
baseline every result of the embedded run is shown beside).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hub.encoder import Encoder
from hub.importer import import_checkpoint

DEFAULT_RUNS = Path(os.environ.get("SIAMHUB_RUNS", "runs"))
DEFAULT_RECIPE = "simsiam_resnet18_fmnist"


class ModelError(RuntimeError):
    """A ``--model`` that names nothing loadable; the message says what was looked for."""


@dataclass
class LoadedModel:
    """An encoder in eval mode and what the result record says about it."""

    encoder: Encoder
    model_id: str
    revision: str | None
    kind: str  # "hub", "encoder_dir", "run_dir", plus "+random_init"
    pretrain: dict[str, Any] = field(default_factory=dict)

    @property
    def preprocess(self) -> dict[str, Any]:
        """timm's ``pretrained_cfg`` of the encoder (mean, std, input size, crop)."""
        return dict(self.encoder.config.get("pretrained_cfg", {}))


def latest_run(runs: Path | None = None, recipe: str = DEFAULT_RECIPE) -> Path:
    """The newest ``runs/<recipe>-*`` directory that holds ``checkpoints/last.pt``."""
    runs = runs or DEFAULT_RUNS
    found = sorted(
        (p for p in runs.glob(f"{recipe}-*") if (p / "checkpoints" / "last.pt").is_file()),
        key=lambda p: (p / "checkpoints" / "last.pt").stat().st_mtime,
    )
    if not found:
        raise ModelError(
            f"no --model given and no pretraining run of {recipe} under {runs}/ holds "
            "checkpoints/last.pt; run 'python pretrain/run.py' first (the embedded default, "
            "about 6 minutes on a 2-core CPU) or pass --model <hub id | encoder folder | run dir>"
        )
    return found[-1]


def _has_runs() -> bool:
    try:
        latest_run()
    except ModelError:
        return False
    return True


def pretrain_summary(config: dict[str, Any]) -> dict[str, Any]:
    """The pretraining facts a result record carries, from the encoder's ``ssl`` block."""
    ssl = config.get("ssl", {}) or {}
    recipe = ssl.get("recipe") if isinstance(ssl.get("recipe"), dict) else {}
    train = recipe.get("train", {}) if recipe else {}
    return {
        "method": ssl.get("method"),
        "recipe": ssl.get("recipe_name") or recipe.get("recipe"),
        "backbone": ssl.get("backbone"),
        "epochs": ssl.get("epochs", train.get("epochs")),
        "trained_steps": ssl.get("trained_steps"),  # run directories: the checkpoint's own
        "trained_epochs": ssl.get("trained_epochs"),
        "batch_size": ssl.get("batch_size", train.get("batch_size")),
        "dataset": ssl.get("dataset", (recipe.get("data") or {}).get("dataset")),
        "git_sha": ssl.get("git_sha"),
        "source": ssl.get("source"),
    }


def _from_run_dir(run_dir: Path) -> Encoder:
    ckpt = run_dir / "checkpoints" / "last.pt"
    encoder, _ = import_checkpoint(ckpt)
    recipe = encoder.ssl.get("recipe") or {}
    dataset = (recipe.get("data") or {}).get("dataset")
    if dataset:  # the run's preprocessing (e.g. Fashion-MNIST statistics at 28 px)
        from hub.encoder import encoder_config

        config = encoder_config(encoder.spec, {**encoder.ssl, "dataset": dataset}, 0)
        config["num_features"] = encoder.num_features
        encoder.config = config
    encoder.config["ssl"]["source"] = f"run directory {run_dir.name}"
    # How far the checkpoint got (a run may be evaluated before its recipe's last epoch).
    meta = torch.load(ckpt, map_location="cpu", weights_only=False)
    encoder.config["ssl"]["trained_steps"] = meta.get("step")
    encoder.config["ssl"]["trained_epochs"] = meta.get("epoch")
    return encoder


def default_architecture() -> Encoder:
    """The embedded default recipe's encoder architecture (weights: torch's current RNG)."""
    from hub.backbones import BackboneSpec
    from pretrain.config import load_config

    cfg = load_config(DEFAULT_RECIPE, [])
    ssl = {"method": cfg.method.name, "recipe_name": cfg.recipe, "dataset": cfg.data.dataset}
    ssl["source"] = f"architecture of the {cfg.recipe} recipe"
    return Encoder.from_spec(BackboneSpec(**cfg.to_dict()["model"]), ssl=ssl)


def load_model(
    model: str | None,
    revision: str | None = None,
    random_init: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """The encoder ``model`` names, frozen and in eval mode."""
    if model is None and random_init and not _has_runs():
        torch.manual_seed(seed)
        encoder = default_architecture().eval()
        for p in encoder.parameters():
            p.requires_grad_(False)
        summary = {**pretrain_summary(encoder.config), "random_init": True, "init_seed": seed}
        return LoadedModel(encoder, DEFAULT_RECIPE, None, "recipe+random_init", summary)
    if model is None:
        path: Path | None = latest_run()
    else:
        path = Path(model) if Path(model).exists() else None
    if path is not None and (path / "checkpoints" / "last.pt").is_file():
        encoder, kind, model_id = _from_run_dir(path), "run_dir", path.name
    elif path is not None and (path / "config.json").is_file():
        encoder, kind, model_id = Encoder.from_pretrained(str(path)), "encoder_dir", path.name
    elif path is not None:
        raise ModelError(
            f"{path} is neither a pretraining run directory (checkpoints/last.pt) nor an "
            "encoder folder (config.json + model.safetensors); write one with "
            "'python pretrain/run.py --run-dir DIR' or 'python hub/publish.py'"
        )
    else:
        if model is None or model.count("/") != 1:
            raise ModelError(
                f"--model {model!r} is not an existing folder and not a Hub repo id "
                "('<org>/<name>')"
            )
        encoder, kind, model_id = Encoder.from_pretrained(model, revision=revision), "hub", model
    if random_init:
        torch.manual_seed(seed)
        fresh = Encoder(encoder.config)
        fresh.config = encoder.config
        encoder, kind = fresh, kind + "+random_init"
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    summary = pretrain_summary(encoder.config)
    if random_init:
        summary = {**summary, "random_init": True, "init_seed": seed}
    return LoadedModel(encoder, model_id, revision, kind, summary)
