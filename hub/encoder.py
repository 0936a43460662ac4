"""The published artifact: an ``Encoder`` (backbone only) that round-trips through the Hub.

``save_pretrained(folder)`` writes

- ``model.safetensors``: the timm backbone's own state dict (``conv1.weight``, ``blocks.0...``),
  no prefix, no projector or predictor (those stay in training checkpoints);
- ``config.json`` in timm's hub format (``architecture``, ``num_features``, ``num_classes``,
  ``model_args``, ``pretrained_cfg`` with mean/std/input size/crop), so the same folder loads
  with ``timm.create_model("local-dir:<folder>")`` or ``"hf-hub:<org>/<name>"``, plus an ``ssl``
  block: the full backbone spec, method, recipe name and full recipe, epochs, global batch
  size, dataset, git sha, source and the transfer results known for it;
- ``README.md``: the model card (``hub/card.py``).

``Encoder.from_pretrained(folder_or_repo_id)`` loads strictly: a missing, unexpected or
mis-shaped key is an ``EncoderLoadError`` that names the keys. ``load_from_hub(repo_id)`` is
``from_pretrained`` for a Hub repo id that fails at once, in one line, when the Hub cannot be
reached and the repo is not cached (``HubUnavailable``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import timm
import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from common.errors import UserError
from common.files import atomic_write_bytes, atomic_write_text
from common.image_stats import FMNIST_MEAN, FMNIST_STD, IMAGENET_MEAN, IMAGENET_STD
from hub.backbones import RESNETS, VITS, BackboneSpec, create_backbone, timm_call

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class EncoderLoadError(UserError, RuntimeError):
    """Weights that do not fit the encoder's architecture (names the keys)."""


class HubUnavailable(EncoderLoadError):
    """A Hub repo id that cannot be loaded: not cached and the Hub unreachable or offline, no
    such repo or revision (the message says what was tried and how to fix it)."""


def timm_compatible(spec: BackboneSpec) -> bool:
    """Whether plain ``timm.create_model(architecture, **model_args)`` builds this backbone.

    ``model_args`` are the very arguments ``create_backbone`` gives timm
    (``hub.backbones.timm_call``). What it changes afterwards decides: timm's ResNet has a fixed
    64-wide 7×7 stem, so the small stem and width scaling are not expressible as timm
    arguments; a ViT is changed only in its weights (the sin-cos position embedding is a stored
    tensor) and in what training updates (the frozen patch projection), so every ViT is.
    ``tests/test_timm_roundtrip.py`` loads every recipe's encoder through timm alone.
    """
    if spec.name in RESNETS:
        return spec.stem == "imagenet" and spec.width == 64
    return spec.name in VITS


def timm_model_args(spec: BackboneSpec) -> dict[str, Any]:
    """The keyword arguments that rebuild ``spec`` through ``timm.create_model``: exactly those
    ``create_backbone`` passes (patch size, width, depth, heads, image size, channels ...)."""
    return timm_call(spec)[1]


def pretrained_cfg(spec: BackboneSpec, dataset: str = "imagenet") -> dict[str, Any]:
    """timm's preprocessing description: input size, mean/std and the eval crop.

    ImageNet encoders are evaluated at resize 256 / center crop 224 (crop_pct 0.875, SimSiam
    and MoCo v3 linear evaluation, docs/recipes.md, "Evaluation protocols"); small-image
    encoders see the whole image.
    """
    if dataset == "fashion_mnist":
        mean, std, size, crop_pct = FMNIST_MEAN, FMNIST_STD, 28, 1.0
    else:
        mean, std, size, crop_pct = IMAGENET_MEAN, IMAGENET_STD, 224, 0.875
    if spec.name in VITS:
        size = spec.img_size
    if len(mean) != spec.in_chans:  # gray data fed to an RGB stem is repeated to 3 channels
        mean, std = (mean[0],) * spec.in_chans, (std[0],) * spec.in_chans
    vit = spec.name in VITS
    return {
        "input_size": [spec.in_chans, size, size],
        "interpolation": "bicubic",
        "mean": list(mean),
        "std": list(std),
        "crop_pct": crop_pct,
        "crop_mode": "center",
        "num_classes": 0,
        "first_conv": "patch_embed.proj" if vit else "conv1",
        "classifier": "head" if vit else "fc",
        "fixed_input_size": vit,
        "license": "apache-2.0",
    }


def encoder_config(
    spec: BackboneSpec, ssl: dict[str, Any] | None = None, num_features: int | None = None
) -> dict[str, Any]:
    """The ``config.json`` of an encoder: timm's hub format plus the ``ssl`` block.

    ``num_features`` is the backbone's output width (built once to measure it when omitted).
    """
    ssl = dict(ssl or {})
    ssl["backbone"] = dataclasses.asdict(spec)
    ssl["timm_compatible"] = timm_compatible(spec)
    arch = timm_call(spec)[0]
    if num_features is None:
        num_features = create_backbone(spec).num_features
    return {
        "architecture": arch,
        "num_features": num_features,
        "num_classes": 0,
        "global_pool": "token" if spec.name in VITS else "avg",
        "model_args": timm_model_args(spec),
        "pretrained_cfg": pretrained_cfg(spec, ssl.get("dataset", "imagenet")),
        "ssl": ssl,
    }


def spec_from_config(config: dict[str, Any]) -> BackboneSpec | None:
    """The backbone spec an encoder config records (``None`` for a plain timm config)."""
    raw = (config.get("ssl") or {}).get("backbone")
    if raw is None:
        return None
    names = {f.name for f in dataclasses.fields(BackboneSpec)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise EncoderLoadError(
            f"config.json ssl.backbone has unknown fields {unknown}; valid fields: {sorted(names)} "
            "(was it written by a newer siamhub?)"
        )
    return BackboneSpec(**raw)


class Encoder(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="timm",
    license="apache-2.0",
    pipeline_tag="image-feature-extraction",
    tags=["self-supervised", "siamhub"],
):
    """A pretrained backbone: ``forward(images (N, C, H, W)) -> features (N, num_features)``.

    Build one from a config dict (what ``from_pretrained`` does) or from a spec with
    ``Encoder.from_spec``. ``.backbone`` is the timm model itself.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        spec = spec_from_config(config)
        if spec is not None:
            self.backbone = create_backbone(spec)
        elif "architecture" not in config:
            raise EncoderLoadError(
                f"config.json names no architecture (keys: {sorted(config)}); an encoder config "
                "has timm's 'architecture' and 'model_args' (and siamhub's 'ssl' block)"
            )
        else:  # a plain timm hub config: architecture + model_args
            args = {**config.get("model_args", {}), "num_classes": 0}
            self.backbone = timm.create_model(config["architecture"], pretrained=False, **args)
        self.spec = spec

    @classmethod
    def from_spec(
        cls,
        spec: BackboneSpec,
        ssl: dict[str, Any] | None = None,
        backbone: nn.Module | None = None,
    ) -> Encoder:
        """An encoder of ``spec``; with ``backbone`` given, it carries that module's weights."""
        config = encoder_config(spec, ssl, num_features=0)
        encoder = cls(config) if backbone is None else cls.for_loading(config)
        encoder.config["num_features"] = encoder.backbone.num_features
        if backbone is not None:
            encoder.load_backbone_state(backbone.state_dict(), source="the given backbone")
        return encoder

    @classmethod
    def for_loading(cls, config: dict[str, Any]) -> Encoder:
        """An encoder whose weights are about to be loaded: built on the meta device, then
        given uninitialised CPU storage, so no time goes into a random init that the strict
        load overwrites. Falls back to a normal build when the backbone has state outside
        its state dict (non-persistent buffers), which a load would not fill."""
        with torch.device("meta"):
            encoder = cls(config)
        persistent = set(encoder.backbone.state_dict())
        named = [n for n, _ in encoder.backbone.named_parameters()]
        named += [n for n, _ in encoder.backbone.named_buffers()]
        if not set(named) <= persistent:
            return cls(config)
        return encoder.to_empty(device="cpu")

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    @property
    def ssl(self) -> dict[str, Any]:
        return self.config.get("ssl", {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (N, num_features)

    # ------------------------------------------------------------------ weights

    def load_backbone_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Strict load of backbone keys; any missing, unexpected or mis-shaped key is an error."""
        ours = self.backbone.state_dict()
        missing = sorted(set(ours) - set(state))
        unexpected = sorted(set(state) - set(ours))
        shapes = sorted(
            f"{k}: {tuple(state[k].shape)} in the weights, {tuple(ours[k].shape)} in the model"
            for k in set(ours) & set(state)
            if tuple(state[k].shape) != tuple(ours[k].shape)
        )
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append(f"missing keys {_clip(missing)}")
            if unexpected:
                parts.append(f"unexpected keys {_clip(unexpected)}")
            if shapes:
                parts.append(f"shape mismatches {_clip(shapes)}")
            arch = self.config.get("architecture")
            raise EncoderLoadError(
                f"weights from {source} do not fit {arch} ({self._describe()}): "
                + "; ".join(parts)
                + ". Load them with the config.json they were saved with, or convert an original "
                "checkpoint with hub.importer.import_checkpoint."
            )
        self.backbone.load_state_dict(state, strict=True)

    def _describe(self) -> str:
        return str(dataclasses.asdict(self.spec)) if self.spec else "plain timm config"

    # ------------------------------------------------------------------ hub mixin

    def _save_pretrained(self, save_directory: Path) -> None:
        from hub.card import model_card

        # atomic, mode from the umask (common.files): a reader never sees half a weights file
        state = {k: v.detach().contiguous().cpu() for k, v in self.backbone.state_dict().items()}
        weights = safetensors_bytes(state, metadata={"format": "pt"})
        atomic_write_bytes(save_directory / WEIGHTS_NAME, weights)
        text = json.dumps(self.config, indent=2, sort_keys=False) + "\n"
        atomic_write_text(save_directory / CONFIG_NAME, text)
        atomic_write_text(save_directory / "README.md", model_card(self.config))

    def save_pretrained(
        self, save_directory: str | Path, *, config: dict | None = None, **kwargs: Any
    ) -> str | None:
        """Write ``model.safetensors``, ``config.json`` and ``README.md`` (always regenerated).

        The encoder's own config is what gets written; ``config`` (which ``push_to_hub``
        passes along) must be that config or None.
        """
        if config is not None and config != self.config:
            raise ValueError("an Encoder saves its own config; set encoder.config instead")
        (Path(save_directory) / "README.md").unlink(missing_ok=True)
        return super().save_pretrained(save_directory, config=self.config, **kwargs)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> Encoder:
        if not strict:
            raise ValueError("Encoder.from_pretrained always loads strictly; drop strict=False")
        if model_kwargs.get("config") is None and not os.path.isdir(model_id):
            # The mixin swallows the download error of config.json; fetch it again so that
            # the client's own error (repo or revision not found, no connection) surfaces.
            hf_hub_download(
                repo_id=model_id,
                filename=CONFIG_NAME,
                revision=revision,
                cache_dir=cache_dir,
                token=token,
                local_files_only=local_files_only,
            )
        if model_kwargs.get("config") is None:
            raise EncoderLoadError(
                f"{model_id} has no config.json; an encoder folder holds config.json and "
                f"{WEIGHTS_NAME} (write one with Encoder.save_pretrained or hub/publish.py)"
            )
        model = cls.for_loading(**model_kwargs)
        if os.path.isdir(model_id):
            weights = Path(model_id) / WEIGHTS_NAME
            if not weights.is_file():
                raise EncoderLoadError(f"{weights} not found; the folder holds no encoder weights")
            source = str(weights)
        else:
            weights = hf_hub_download(
                repo_id=model_id,
                filename=WEIGHTS_NAME,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
            source = f"{model_id}@{revision or 'main'}"
        state = read_weights(Path(weights), map_location, local=os.path.isdir(model_id))
        model.load_backbone_state(state, source=source)
        model.eval()
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> Encoder:
        """``PyTorchModelHubMixin.from_pretrained`` (a folder or a Hub repo id); a config.json
        that is not JSON is an :class:`EncoderLoadError` naming it, not a parser traceback."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except json.JSONDecodeError as e:
            where = Path(pretrained_model_name_or_path) / CONFIG_NAME
            if not os.path.isdir(pretrained_model_name_or_path):
                where = f"{CONFIG_NAME} of Hub repo {pretrained_model_name_or_path}"
            raise EncoderLoadError(
                f"{where} is not valid JSON ({e}); write the folder again with "
                "Encoder.save_pretrained or hub/publish.py (or restore the file from where the "
                "folder came from)"
            ) from None


def read_weights(path: Path, device: str = "cpu", local: bool = True) -> dict[str, torch.Tensor]:
    """An encoder folder's ``model.safetensors``; a file safetensors cannot read (truncated,
    not safetensors at all) is one :class:`EncoderLoadError` that names it and the fix."""
    try:
        return load_file(str(path), device=device)
    except SafetensorError as e:
        fix = (
            "write the folder again (hub/publish.py <run dir> --out <folder>; a run directory's "
            "encoder/ is rewritten when the run resumes) or copy the file again from where it "
            "came"
            if local
            else "the downloaded copy is damaged: load again with force_download=True (or "
            "delete the repo from the Hugging Face cache)"
        )
        raise EncoderLoadError(f"{path} is not a readable safetensors file ({e}); {fix}") from None


def weights_sha256(state: dict[str, torch.Tensor] | nn.Module) -> str:
    """The encoder's identity: SHA-256 over its tensors (a backbone state dict, or an Encoder /
    module whose ``state_dict`` it hashes), in key order, each as its name, dtype, shape and
    raw bytes. Equal for the same weights whatever folder, file name or safetensors metadata
    they sit in; every transfer record carries it (``pretrain.weights_sha256``) and the model
    card attaches a record to an encoder by it (``hub.card_results.records_for``)."""
    if isinstance(state, Encoder):
        state = state.backbone.state_dict()
    elif isinstance(state, nn.Module):
        state = state.state_dict()
    digest = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        header = f"{key}|{str(t.dtype).removeprefix('torch.')}|{tuple(t.shape)}\n"
        digest.update(header.encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, not copied
    return digest.hexdigest()


def load_from_hub(repo_id: str, revision: str | None = None) -> Encoder:
    """``Encoder.from_pretrained(repo_id, revision=revision)`` for a Hub repo id, failing fast.

    huggingface_hub retries a first request that cannot connect five times with backoff
    (about 23 s) before it looks in its cache. Here one request without retries asks the Hub
    for the repo's ``config.json``; when it cannot connect, the cache is used if it holds the
    repo, else a :class:`HubUnavailable` says so at once. ``HF_HUB_OFFLINE`` set: the cache only.
    """
    from huggingface_hub import constants, errors

    where = f"{repo_id}@{revision}" if revision else repo_id
    endpoint = constants.ENDPOINT
    if constants.HF_HUB_OFFLINE:
        try:
            return Encoder.from_pretrained(repo_id, revision=revision, local_files_only=True)
        except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled):
            raise HubUnavailable(
                f"Hub repo {where} is not in the local Hugging Face cache and HF_HUB_OFFLINE is "
                "set; unset HF_HUB_OFFLINE (with a network) to download it"
            ) from None
    unreachable = _hub_unreachable(repo_id, revision)
    if unreachable is not None:
        try:
            return Encoder.from_pretrained(repo_id, revision=revision, local_files_only=True)
        except errors.LocalEntryNotFoundError:
            raise HubUnavailable(
                f"the Hub at {endpoint} cannot be reached ({unreachable}) and {where} is not in "
                "the local Hugging Face cache; check the network (or HF_ENDPOINT)"
            ) from None
    try:
        return Encoder.from_pretrained(repo_id, revision=revision)
    except errors.HFValidationError as e:
        raise HubUnavailable(f"{repo_id!r} is not a valid Hub repo id: {e}") from None
    except errors.RevisionNotFoundError:
        raise HubUnavailable(f"Hub repo {repo_id} has no revision {revision!r}") from None
    except errors.RepositoryNotFoundError:
        raise HubUnavailable(
            f"no Hub repo {repo_id} at {endpoint} (or it is private or gated: log in with "
            "`hf auth login` or set HF_TOKEN)"
        ) from None
    except errors.EntryNotFoundError:
        raise HubUnavailable(
            f"Hub repo {where} holds no encoder (config.json and {WEIGHTS_NAME}); publish one "
            "with hub/publish.py"
        ) from None


def _hub_unreachable(repo_id: str, revision: str | None) -> str | None:
    """Why one HEAD request (no retries) for the repo's config.json got no answer, or None
    when the Hub answered (whatever the answer: the download that follows reports it)."""
    from huggingface_hub import errors, get_hf_file_metadata, hf_hub_url

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, CONFIG_NAME, revision=revision))
    except (errors.HfHubHTTPError, errors.HFValidationError):
        return None
    except Exception as e:  # no answer: connection refused, DNS, timeout, proxy ...
        lines = str(e).strip().splitlines()
        return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return None


def _clip(keys: list[str], n: int = 12) -> str:
    shown = ", ".join(keys[:n])
    return f"[{shown}{f', ... ({len(keys) - n} more)' if len(keys) > n else ''}]"
