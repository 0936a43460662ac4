"""Import the original papers' checkpoints (and this project's training checkpoints) as Encoders.

Layouts, auto-detected from the keys (docs/recipes.md, "Original checkpoint prefixes"):

- SimSiam (facebookresearch/simsiam): ``module.encoder.`` = torchvision ResNet whose ``fc`` is the
  3-layer projector; ``module.predictor.`` is the predictor.
- MoCo v3 (facebookresearch/moco-v3): ``module.base_encoder.`` = ResNet (``fc`` = projector) or
  timm ViT (``head`` = projector); ``module.momentum_encoder.`` and ``module.predictor.`` heads.
- MoCo v1/v2 (facebookresearch/moco): ``module.encoder_q.`` = ResNet (``fc`` = MLP or linear
  head); ``module.encoder_k.`` key encoder and ``module.queue``/``module.queue_ptr``.
- BYOL, PyTorch conversion: the Haiku release converted to a plain torchvision ResNet-50 state
  dict (no prefix; a linear-eval ``fc`` when present).
- siamhub training checkpoint (``checkpoints/last.pt``): ``backbone.`` plus ``projector.``,
  ``predictor.`` and, for BYOL and MoCo v3, the EMA target (``target_backbone.``,
  ``target_projector.``); its config gives the backbone spec and the method.

Heads are dropped and reported; the encoder keys load strictly; a key that belongs to no known
part of the layout is an error naming it.

Every file is read with ``torch.load(..., weights_only=True)`` (:func:`read_checkpoint_file`): a
checkpoint downloaded from a URL or handed over by anyone may carry tensors and plain containers
only, so a pickle that would build any other object (and so could run code) is refused before
anything of it runs (:class:`UnsafeCheckpointError`); a file that is no PyTorch checkpoint at all
is a :class:`NotACheckpointError`.
"""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hub.backbones import BackboneSpec
from hub.encoder import Encoder, EncoderLoadError, encoder_config


@dataclass(frozen=True)
class Layout:
    name: str
    prefix: str  # the encoder's keys live under this prefix
    head_parts: tuple[str, ...]  # inside the prefix: the projector / classifier
    other_parts: tuple[str, ...]  # outside the prefix: predictor, momentum encoder, queue
    method: str


LAYOUTS = (
    Layout("simsiam", "module.encoder.", ("fc.",), ("module.predictor.",), "simsiam"),
    Layout(
        "mocov3",
        "module.base_encoder.",
        ("fc.", "head."),
        ("module.momentum_encoder.", "module.predictor."),
        "mocov3",
    ),
    Layout(
        "mocov2",
        "module.encoder_q.",
        ("fc.",),
        ("module.encoder_k.", "module.queue", "module.queue_ptr"),
        "mocov2",
    ),
    Layout(
        "siamhub",
        "backbone.",
        (),
        # BYOL's and MoCo v3's EMA target (pretrain/methods/momentum_target.py) is a head too,
        # and so is SimSiam's §5 alternation target with its refresh count
        (
            *("projector.", "predictor.", "target_backbone.", "target_projector."),
            "steps_since_refresh",
        ),
        "simsiam",
    ),
    Layout("byol_torchvision", "", ("fc.",), (), "byol"),
)


class NotACheckpointError(EncoderLoadError):
    """A file that ``torch.load`` cannot read as a checkpoint (truncated, HTML, garbage)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path} is not a PyTorch checkpoint ({reason})")
        self.reason = reason


class UnsafeCheckpointError(EncoderLoadError):
    """A checkpoint whose pickle builds objects a weights-only load refuses (it could run code).

    ``refused`` is the Python object the pickle asked for (e.g. ``builtins.eval``).
    """

    def __init__(self, path: str | Path, refused: str) -> None:
        super().__init__(
            f"refused to load {path}: its pickle asks for {refused}, and checkpoints are loaded "
            "with weights_only=True (tensors and plain containers only) so that no file can run "
            "code; nothing of it was run. Use a checkpoint that holds only tensors, numbers, "
            "strings, lists and dicts, or an encoder folder (model.safetensors)"
        )
        self.refused = refused


_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def read_checkpoint_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, its failures as one-line errors.

    Raises :class:`UnsafeCheckpointError` when the pickle asks for anything but tensors and plain
    containers (nothing of it has run: the weights-only unpickler stops at the first such
    object), :class:`NotACheckpointError` when the file is not a PyTorch checkpoint.
    """
    if not Path(path).is_file():
        raise EncoderLoadError(f"checkpoint {path} not found")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise NotACheckpointError(path, "the file is empty")
    if not head.startswith((b"PK", b"\x80")):  # torch.save's zip archive, or a legacy pickle
        raise NotACheckpointError(path, f"neither a zip archive nor a pickle; it starts {head!r}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _REFUSED_GLOBAL.search(str(e))
        if refused:
            raise UnsafeCheckpointError(path, refused.group(1)) from None
        raise NotACheckpointError(path, _short(str(e))) from None
    except Exception as e:  # torch.load's many ways to fail on a foreign file
        reason = f"{type(e).__name__}: {_short(str(e))}" if _short(str(e)) else type(e).__name__
        raise NotACheckpointError(path, reason) from None


def _short(text: str, limit: int = 160) -> str:
    """The telling line of a torch.load error (its WeightsUnpickler reason when it has one)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            text = rest or (lines[i + 1] if i + 1 < len(lines) else line)
            break
    else:
        text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ImportReport:
    layout: str
    spec: BackboneSpec
    kept: int
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        heads = sorted({k.rsplit(".", 2)[0] if "." in k else k for k in self.dropped})
        return (
            f"layout {self.layout}: {self.kept} encoder tensors loaded strictly into "
            f"{self.spec.name}; dropped {len(self.dropped)} head keys ({', '.join(heads[:8])}"
            f"{', ...' if len(heads) > 8 else ''})"
        )


def read_state_dict(source: str | Path | dict[str, Any]) -> tuple[dict[str, Any], dict | None]:
    """The flat state dict of a checkpoint file (read weights-only) or object, and the config it
    carries if any."""
    ckpt = source if isinstance(source, dict) else read_checkpoint_file(source)
    if not isinstance(ckpt, dict):
        raise EncoderLoadError(f"{source} holds a {type(ckpt).__name__}, not a checkpoint dict")
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
    for key in ("state_dict", "model"):
        if isinstance(ckpt.get(key), dict):
            return ckpt[key], config
    if all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt, config
    raise EncoderLoadError(
        f"no state dict found in the checkpoint (top-level keys: {sorted(ckpt)[:10]}); expected "
        "'state_dict' (the authors' releases), 'model' (siamhub) or a flat tensor dict"
    )


def detect_layout(state: dict[str, Any]) -> Layout:
    """The layout whose encoder prefix holds the checkpoint's keys."""
    for layout in LAYOUTS[:-1]:
        if any(k.startswith(layout.prefix) for k in state):
            return layout
    if "conv1.weight" in state and any(k.startswith("layer1.") for k in state):
        return LAYOUTS[-1]
    raise EncoderLoadError(
        "unrecognised checkpoint layout (first keys: "
        f"{sorted(state)[:6]}); known prefixes: "
        + ", ".join(f"{lay.name} '{lay.prefix}'" for lay in LAYOUTS[:-1])
        + ", or plain torchvision ResNet keys (BYOL conversions)"
    )


def split_keys(
    state: dict[str, Any], layout: Layout
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(encoder tensors without the prefix, dropped head keys, keys no part of the layout owns)."""
    encoder, dropped, unknown = {}, [], []
    for key, value in state.items():
        if key.startswith(layout.prefix):
            inner = key[len(layout.prefix) :]
            if inner.startswith(layout.head_parts):
                dropped.append(key)
            else:
                encoder[inner] = value
        elif key.startswith(layout.other_parts):
            dropped.append(key)
        else:
            unknown.append(key)
    return encoder, sorted(dropped), sorted(unknown)


def infer_spec(encoder: dict[str, torch.Tensor], layout: Layout) -> BackboneSpec:
    """The backbone spec the encoder tensors describe (ResNet-18/50, ViT by width)."""
    if "pos_embed" in encoder:
        dim = encoder["pos_embed"].shape[-1]
        names = {192: "vit_tiny", 384: "vit_small", 768: "vit_base"}
        if dim not in names:
            raise EncoderLoadError(f"ViT of width {dim} is not a known backbone; pass spec=")
        grid = math.isqrt(encoder["pos_embed"].shape[1] - 1)
        patch = encoder["patch_embed.proj.weight"]
        mocov3 = layout.name == "mocov3"
        return BackboneSpec(
            name=names[dim],
            in_chans=patch.shape[1],
            img_size=grid * patch.shape[-1],
            num_heads=12 if mocov3 and dim == 384 else 0,  # MoCo v3 ViT-S: 12 heads (§4.1)
            pos_embed="sincos" if mocov3 else "learn",
            freeze_patch_embed=mocov3,
        )
    if "conv1.weight" not in encoder:
        raise EncoderLoadError("neither a ResNet (conv1.weight) nor a ViT (pos_embed); pass spec=")
    conv1 = encoder["conv1.weight"]
    name = "resnet50" if "layer1.0.conv3.weight" in encoder else "resnet18"
    return BackboneSpec(
        name=name,
        in_chans=conv1.shape[1],
        width=conv1.shape[0],
        stem="imagenet" if conv1.shape[-1] == 7 else "small",
    )


def import_checkpoint(
    source: str | Path | dict[str, Any],
    spec: BackboneSpec | None = None,
    ssl: dict[str, Any] | None = None,
) -> tuple[Encoder, ImportReport]:
    """Convert a checkpoint of any known layout into an Encoder (strict; heads dropped)."""
    state, config = read_state_dict(source)
    layout = detect_layout(state)
    encoder_state, dropped, unknown = split_keys(state, layout)
    if unknown:
        raise EncoderLoadError(
            f"checkpoint in the {layout.name} layout has keys outside its encoder "
            f"'{layout.prefix}' and known heads: {unknown[:12]}"
            f"{' ...' if len(unknown) > 12 else ''}; is it a different layout?"
        )
    if spec is None and config is not None and "model" in config:
        spec = BackboneSpec(**config["model"])
    if spec is None:
        spec = infer_spec(encoder_state, layout)
    method = layout.method
    if config is not None and isinstance(config.get("method"), dict):
        method = config["method"].get("name", method)  # a siamhub checkpoint names its method
    ssl = {"method": method, "source": f"imported ({layout.name} layout)", **(ssl or {})}
    if config is not None:
        ssl.setdefault("recipe_name", config.get("recipe"))
        ssl.setdefault("recipe", config)
    config = encoder_config(spec, ssl, num_features=0)
    encoder = Encoder.for_loading(config)
    encoder.config["num_features"] = encoder.backbone.num_features
    encoder.load_backbone_state(encoder_state, source=f"a {layout.name} checkpoint")
    encoder.eval()
    return encoder, ImportReport(layout.name, spec, len(encoder_state), dropped)
