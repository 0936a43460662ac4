"""Resolve ``--model`` to a frozen encoder: a Hub repo id, a local encoder folder, or a pretraining
run directory (its ``encoder/`` folder, which every run writes beside ``checkpoints/last.pt``),
and with no model the embedded default's latest run under ``runs/``.

A value that looks like a path (``common.paths.looks_like_path``: ``./x``, ``runs/x``, ``a/b/c``,
``x.pt`` ...) is never sent to the Hub: when it does not exist the error says so and names the
closest existing folders. A Hub id that cannot be fetched (offline, unreachable, no such repo)
fails at once with one line (``hub.encoder.load_from_hub``). Encoder folders hold safetensors
and JSON only: loading one runs nothing of it.

Every loaded model carries its identity, ``pretrain.weights_sha256`` (``hub.encoder.
weights_sha256``: SHA-256 of the backbone's tensors), which its result records keep and by
which a model card finds them (``hub.card_results.records_for``), whatever the folder's name.

``random_init=True`` gives the same architecture at a seeded random initialization (the
baseline every result of the embedded run is shown beside), built from the encoder's
``config.json``; with no run at all, from the embedded default recipe's ``[model]`` table.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError
from common.paths import closest_names, looks_like_path, missing_path_message
from hub.backbones import BackboneSpec
from hub.encoder import Encoder, HubUnavailable, load_from_hub, weights_sha256
from hub.publish import RUN_ENCODER

DEFAULT_RUNS = Path(os.environ.get("SIAMHUB_RUNS", "runs"))
DEFAULT_RECIPE = "simsiam_resnet18_fmnist"
RECIPES = Path(__file__).resolve().parents[1] / "pretrain" / "recipes"  # data files, not code


class ModelError(UserError, RuntimeError):
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
    """The encoder folder a training run writes beside its checkpoint (``<run dir>/encoder/``)."""
    folder = run_dir / RUN_ENCODER
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"{run_dir} has checkpoints/last.pt but no encoder folder {RUN_ENCODER}/; write it "
            f"with 'python pretrain/run.py --run-dir {run_dir}' (resuming writes it) or "
            f"'python hub/publish.py {run_dir} --out {folder}'"
        )
    encoder = Encoder.from_pretrained(str(folder))
    encoder.config["ssl"]["source"] = f"run directory {run_dir.name}"
    return encoder


def local_path(model: str) -> Path | None:
    """The local path ``--model`` names, or None for a Hub repo id ``<org>/<name>``.

    A value that looks like a path but does not exist is a ModelError naming the closest
    existing folders; it is never tried on the Hub.
    """
    path = Path(model).expanduser()
    if path.exists():
        return path
    if looks_like_path(model):
        raise ModelError(
            f"--model {model}: {missing_path_message(model)}; a path is not tried as a Hub repo "
            "id. Pass an existing run directory or encoder folder"
        )
    if model.count("/") != 1:
        close = closest_names(path)
        hint = f" (closest here: {', '.join(str(p) for p in close)})" if close else ""
        raise ModelError(
            f"--model {model!r} is not an existing folder{hint} and not a Hub repo id "
            "('<org>/<name>')"
        )
    return None


def _from_hub(model: str, revision: str | None) -> Encoder:
    try:
        return load_from_hub(model, revision=revision)
    except HubUnavailable as e:
        raise ModelError(
            f"--model {model}: no folder {model} here ({Path.cwd()}), and as a Hub repo id: {e}. "
            "Pass a local encoder folder or run directory, or fix the network / HF_ENDPOINT"
        ) from None


def default_architecture() -> Encoder:
    """The embedded default recipe's encoder architecture (weights: torch's current RNG), from
    the recipe file's ``[model]`` table (``BackboneSpec``: the config section and the hub's
    architecture are one dataclass)."""
    with (RECIPES / f"{DEFAULT_RECIPE}.toml").open("rb") as f:
        recipe = tomllib.load(f)
    recipe_name = recipe.get("recipe", DEFAULT_RECIPE)
    ssl = {
        "method": recipe["method"]["name"],
        "recipe_name": recipe_name,
        "dataset": recipe["data"]["dataset"],
        "source": f"architecture of the {recipe_name} recipe",
    }
    return Encoder.from_spec(BackboneSpec(**recipe["model"]), ssl=ssl)


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
        summary = {
            **pretrain_summary(encoder.config),
            "weights_sha256": weights_sha256(encoder),
            "random_init": True,
            "init_seed": seed,
        }
        return LoadedModel(encoder, DEFAULT_RECIPE, None, "recipe+random_init", summary)
    path = latest_run() if model is None else local_path(model)
    if path is not None and (path / "checkpoints" / "last.pt").is_file():
        encoder, kind, model_id = _from_run_dir(path), "run_dir", path.name
    elif path is not None and (path / "config.json").is_file():
        encoder, kind, model_id = Encoder.from_pretrained(str(path)), "encoder_dir", path.name
    elif path is not None:
        raise ModelError(
            f"{path} is neither a pretraining run directory (checkpoints/last.pt) nor an "
            "encoder folder (config.json + model.safetensors); write one with "
            "'python pretrain/run.py --run-dir DIR' or 'python hub/publish.py'"
            + (" (for a checkpoint file, pass the run directory that holds it)" if path.is_file()
               else "")
        )  # fmt: skip
    else:
        assert model is not None
        encoder, kind, model_id = _from_hub(model, revision), "hub", model
    if random_init:
        torch.manual_seed(seed)
        fresh = Encoder(encoder.config)
        fresh.config = encoder.config
        encoder, kind = fresh, kind + "+random_init"
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    summary = {**pretrain_summary(encoder.config), "weights_sha256": weights_sha256(encoder)}
    if random_init:
        summary = {**summary, "random_init": True, "init_seed": seed}
    return LoadedModel(encoder, model_id, revision, kind, summary)
