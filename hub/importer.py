"""Import the original papers' checkpoints (and this project's training checkpoints) as Encoders.

Layouts, auto-detected from the keys (docs/recipes.md, "Original checkpoint prefixes"):

- SimSiam (facebookresearch/simsiam): ``module.encoder.`` = torchvision ResNet whose ``fc`` is the
  3-layer projector; ``module.predictor.`` is the predictor.
- MoCo v3 (facebookresearch/moco-v3): ``module.base_encoder.`` = ResNet (``fc`` = projector) or
  timm ViT (``head`` = projector); ``module.momentum_encoder.`` and ``module.predictor.`` heads.
- MoCo v1/v2 (facebookresearch/moco): ``module.encoder_q.`` = ResNet (``fc`` = MLP or linear
  head); ``module.encoder_k.`` key encoder and ``module.queue``/``module.queue_ptr``.
- DINO (facebookresearch/dino, ``main_dino.py``): a full checkpoint is ``{student, teacher,
  optimizer, epoch, args, dino_loss[, fp16_scaler]}``; each network is ``MultiCropWrapper``'s
  ``backbone.`` + ``head.`` (the DINO head), under ``module.`` where DDP wrapped it: the student
  always, the teacher only when it has BatchNorm (ResNet). DINO evaluates and releases the
  teacher, so the teacher is imported unless ``network="student"`` asks for the student. A
  network's state dict saved alone is recognised too. ``args`` is an ``argparse.Namespace``,
  read through :data:`SAFE_CLASSES` and kept as metadata (arch, patch_size, out_dim, epochs...).
- Backbone only (``plain``): a torchvision ResNet (a linear-eval ``fc`` dropped when present,
  as in BYOL's PyTorch conversion) or a ViT in DINO's / timm's names (``cls_token``,
  ``pos_embed``, ``patch_embed.proj``, ``blocks.N``, ``norm``), as DINO's
  ``dino_resnet50_pretrain.pth`` and ``dino_deitsmall16_pretrain.pth``. The keys do not say how
  such a backbone was trained: its method is ``"unknown"`` until the caller names it
  (``method=``), never a guess.
- siamhub training checkpoint (``checkpoints/last.pt``): ``backbone.`` plus ``projector.``,
  ``predictor.`` and, for BYOL, MoCo v3 and DINO, the EMA target (``target_backbone.``,
  ``target_projector.``); its config gives the backbone spec and the method. A DINO run's
  encoder is its teacher (``target_backbone.``), as the authors release it; BYOL's and MoCo
  v3's is the online backbone, as theirs.

Heads are dropped and reported; the encoder keys load strictly; a key that belongs to no known
part of the layout is an error naming it. What the file says of itself (its ``epoch``, DINO's
``args``) goes into the encoder's ``ssl`` block; nothing is filled in that the file does not say.

Every file is read with ``torch.load(..., weights_only=True)`` (:func:`read_checkpoint_file`): a
checkpoint downloaded from a URL or handed over by anyone may carry tensors, plain containers and
the harmless classes of :data:`SAFE_CLASSES` only, so a pickle that would build any other object
(and so could run code) is refused before anything of it runs (:class:`UnsafeCheckpointError`,
naming the global the pickle asked for); a file that is no PyTorch checkpoint at all is a
:class:`NotACheckpointError`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hub.backbones import VITS, BackboneSpec
from hub.encoder import Encoder, EncoderLoadError, encoder_config

METHOD_UNKNOWN = "unknown"  # a backbone-only file's method, until the caller names it
NETWORKS = ("teacher", "student")  # DINO's two networks (``network=``)

# Classes a checkpoint may build besides tensors and plain containers: an argparse.Namespace
# holds attributes (its pickle is NEWOBJ + BUILD of a plain dict, nothing is called); DINO's
# full checkpoints store their command line as one (main_dino.py's ``save_dict["args"]``).
SAFE_CLASSES: tuple[type, ...] = (argparse.Namespace,)


@dataclass(frozen=True)
class Layout:
    name: str
    prefix: str  # the encoder's keys live under this prefix
    head_parts: tuple[str, ...]  # inside the prefix: the projector / classifier
    other_parts: tuple[str, ...]  # outside the prefix: predictor, momentum encoder, queue
    method: str | None  # None: the keys do not tell how the weights were trained
    marker: str | None = None  # a prefix that must occur too (tells DINO from siamhub)


SIAMHUB_PARTS = (
    *("backbone.", "projector.", "predictor.", "target_backbone.", "target_projector."),
    "steps_since_refresh",  # SimSiam's §5 alternation: its refresh count
)

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
    # DINO's MultiCropWrapper (backbone + head), DDP-wrapped (the student; a ResNet teacher) ...
    Layout("dino_ddp", "module.backbone.", (), ("module.head.",), "dino", marker="module.head."),
    # ... and unwrapped (a ViT teacher)
    Layout("dino", "backbone.", (), ("head.",), "dino", marker="head."),
    Layout(
        "siamhub",
        "backbone.",
        (),
        # BYOL's and MoCo v3's EMA target (pretrain/methods/momentum_target.py) is a head too,
        # and so is SimSiam's §5 alternation target with its refresh count
        tuple(p for p in SIAMHUB_PARTS if p != "backbone."),
        "simsiam",
    ),
    Layout("plain", "", ("fc.", "head."), (), None),
)
PLAIN = LAYOUTS[-1]


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


# torch's words for a global its weights-only unpickler refuses: "Unsupported global: GLOBAL
# builtins.eval was not an allowed global" and, for a blocked module (os, posix, nt, sys),
# "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"
_REFUSED_GLOBAL = re.compile(r"unsupported\s+(?:global:\s+)?GLOBAL\s+([\w.]+)", re.IGNORECASE)


def read_checkpoint_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU (plus :data:`SAFE_CLASSES`), its
    failures as one-line errors.

    Raises :class:`UnsafeCheckpointError` when the pickle asks for anything but tensors, plain
    containers and :data:`SAFE_CLASSES` (nothing of it has run: the weights-only unpickler
    stops at the first such object), :class:`NotACheckpointError` when the file is not a
    PyTorch checkpoint.
    """
    if not Path(path).is_file():
        raise EncoderLoadError(f"checkpoint {path} not found")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise NotACheckpointError(path, "the file is empty")
    if not head.startswith((b"PK", b"\x80")):  # torch.save's zip archive, or a legacy pickle
        raise NotACheckpointError(path, f"neither a zip archive nor a pickle; it starts {head!r}")
    with torch.serialization.safe_globals(list(SAFE_CLASSES)):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            refused = refused_globals(path, e)
            if refused:
                raise UnsafeCheckpointError(path, refused) from None
            raise NotACheckpointError(path, _short(str(e))) from None
        except Exception as e:  # torch.load's many ways to fail on a foreign file
            reason = f"{type(e).__name__}: {_short(str(e))}" if _short(str(e)) else type(e).__name__
            raise NotACheckpointError(path, reason) from None


def refused_globals(path: str | Path, error: BaseException) -> str | None:
    """The globals a weights-only load of ``path`` refused (``"posix.system"``), else None.

    Told from the file's structure where torch can: ``get_unsafe_globals_in_checkpoint`` lists,
    without running anything, the pickle's GLOBALs that the weights-only allowlists (torch's
    and the ones in force) do not hold. A legacy (non-zip) file, which that scan does not read,
    is told from torch's message, in either of its wordings (:data:`_REFUSED_GLOBAL`).
    """
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if scan is not None:
        try:
            found = sorted(scan(str(path)))
        except Exception:  # not a zip checkpoint, or a damaged one: the message tells
            found = []
        if found:
            return ", ".join(found)
    named = _REFUSED_GLOBAL.search(str(error))
    return named.group(1) if named else None


# torch's boilerplate around a weights-only failure: its advice to load with
# weights_only=False (never ours to give for a file from anyone) and its documentation pointer
_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _short(text: str, limit: int = 160) -> str:
    """The telling line of a torch.load error: its WeightsUnpickler reason when it has one, else
    its first line that is not torch's boilerplate (:data:`_BOILERPLATE`)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            text = rest or (lines[i + 1] if i + 1 < len(lines) else line)
            break
    else:
        telling = [line for line in lines if not line.startswith(_BOILERPLATE)]
        text = telling[0] if telling else (lines[0] if lines else "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ImportReport:
    layout: str
    spec: BackboneSpec
    kept: int
    dropped: list[str] = field(default_factory=list)
    method: str = METHOD_UNKNOWN
    network: str | None = None  # DINO's teacher or student, when the file held both
    kind: str = ""  # what the file is, in words (the layout's, or "DINO's full checkpoint")

    def summary(self) -> str:
        heads = sorted({k.rsplit(".", 2)[0] if "." in k else k for k in self.dropped})
        what = f" ({self.kind})" if self.kind else ""
        unknown = (
            "; method unknown: its keys do not say how it was trained (name the method to "
            "record it)"
            if self.method == METHOD_UNKNOWN
            else ""
        )
        return (
            f"layout {self.layout}{what}: {self.kept} encoder tensors loaded strictly into "
            f"{self.spec.name}; dropped {len(self.dropped)} head keys ({', '.join(heads[:8])}"
            f"{', ...' if len(heads) > 8 else ''}){unknown}"
        )


@dataclass
class Contents:
    """What a checkpoint holds: the state dict to import and what the file says of itself."""

    state: dict[str, Any]
    config: dict[str, Any] | None = None  # a siamhub training checkpoint's config
    meta: dict[str, Any] = field(default_factory=dict)  # the file's own: epoch, DINO's args
    network: str | None = None  # the network taken from a DINO full checkpoint


def read_contents(source: str | Path | dict[str, Any], network: str | None = None) -> Contents:
    """The state dict of a checkpoint file (read weights-only) or object, with its config and
    metadata. A DINO full checkpoint gives its ``network`` (default: the teacher)."""
    ckpt = source if isinstance(source, dict) else read_checkpoint_file(source)
    if not isinstance(ckpt, dict):
        raise EncoderLoadError(f"{source} holds a {type(ckpt).__name__}, not a checkpoint dict")
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
    meta = _file_metadata(ckpt) if config is None else {}
    if all(isinstance(ckpt.get(k), dict) for k in NETWORKS):  # main_dino.py's save_dict
        if network is not None and network not in NETWORKS:
            raise EncoderLoadError(
                f"network must be one of {', '.join(NETWORKS)} for a DINO full checkpoint, "
                f"got {network!r}"
            )
        chosen = network or "teacher"  # DINO evaluates and releases the teacher
        return Contents(ckpt[chosen], None, meta, chosen)
    for key in ("state_dict", "model"):
        if isinstance(ckpt.get(key), dict):
            return Contents(ckpt[key], config, meta)
    if all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return Contents(ckpt, config, meta)
    raise EncoderLoadError(
        f"no state dict found in the checkpoint (top-level keys: {sorted(ckpt)[:10]}); expected "
        "'state_dict' (the authors' releases), 'model' (siamhub), 'student' and 'teacher' "
        "(DINO's full checkpoints) or a flat tensor dict"
    )


def read_state_dict(source: str | Path | dict[str, Any]) -> tuple[dict[str, Any], dict | None]:
    """The flat state dict of a checkpoint file (read weights-only) or object, and the config it
    carries if any (a DINO full checkpoint: its teacher)."""
    contents = read_contents(source)
    return contents.state, contents.config


# DINO's args that describe the authors' machine, not the training
_MACHINE_ARGS = {"data_path", "output_dir", "dist_url", "local_rank", "gpu", "rank"}


def _file_metadata(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What a foreign checkpoint says of itself: ``epoch`` (epochs completed: main_dino.py,
    SimSiam's and MoCo's main scripts save ``epoch + 1``) and DINO's ``args`` as a plain dict."""
    meta: dict[str, Any] = {}
    if isinstance(ckpt.get("epoch"), int) and not isinstance(ckpt.get("epoch"), bool):
        meta["epoch"] = ckpt["epoch"]
    args = ckpt.get("args")
    if isinstance(args, argparse.Namespace):
        meta["args"] = {k: _plain(v) for k, v in sorted(vars(args).items())}
    return meta


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a Namespace value (tuples as lists; anything else as its repr)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return repr(value)


def release_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``ssl`` fields a foreign checkpoint's own metadata gives: ``epochs`` (its ``epoch``),
    and from DINO's ``args``: the global ``batch_size`` (batch_size_per_gpu × world_size), the
    ``dataset`` when its data path names ImageNet, and ``release_args`` (the training's
    arguments without the authors' paths and ranks)."""
    out: dict[str, Any] = {}
    if "epoch" in meta:
        out["epochs"] = meta["epoch"]
    args = meta.get("args")
    if isinstance(args, dict):
        per_gpu, world = args.get("batch_size_per_gpu"), args.get("world_size")
        if isinstance(per_gpu, int) and isinstance(world, int):
            out["batch_size"] = per_gpu * world
        if "imagenet" in str(args.get("data_path", "")).lower():
            out["dataset"] = "imagenet"
        out["release_args"] = {k: v for k, v in args.items() if k not in _MACHINE_ARGS}
    return out


def detect_layout(state: dict[str, Any]) -> Layout:
    """The layout whose encoder prefix (and marker) the checkpoint's keys hold; a backbone
    with no prefix (a torchvision ResNet, a DINO / timm ViT) is ``plain``."""
    for layout in LAYOUTS[:-1]:
        marked = layout.marker is None or any(k.startswith(layout.marker) for k in state)
        if marked and any(k.startswith(layout.prefix) for k in state):
            return layout
    resnet = "conv1.weight" in state and any(k.startswith("layer1.") for k in state)
    vit = {"cls_token", "pos_embed", "patch_embed.proj.weight"} <= set(state)
    if resnet or vit:
        return PLAIN
    raise EncoderLoadError(
        "unrecognised checkpoint layout (first keys: "
        f"{sorted(state)[:6]}); known prefixes: "
        + ", ".join(f"{lay.name} '{lay.prefix}'" for lay in LAYOUTS[:-1])
        + ", or a backbone without prefix (torchvision ResNet keys; ViT keys cls_token, "
        "pos_embed, patch_embed.proj, blocks.N)"
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
    """The backbone spec the encoder tensors describe (ResNet-18/50; ViT by width, patch size
    and depth)."""
    if "pos_embed" in encoder:
        dim = encoder["pos_embed"].shape[-1]
        names = {192: "vit_tiny", 384: "vit_small", 768: "vit_base"}
        if dim not in names:
            raise EncoderLoadError(f"ViT of width {dim} is not a known backbone; pass spec=")
        grid = math.isqrt(encoder["pos_embed"].shape[1] - 1)
        patch = encoder["patch_embed.proj.weight"]  # (D, C, p, p)
        depth = len({k.split(".")[1] for k in encoder if k.startswith("blocks.")})
        mocov3 = layout.name == "mocov3"
        return BackboneSpec(
            name=names[dim],
            in_chans=patch.shape[1],
            img_size=grid * patch.shape[-1],
            patch_size=patch.shape[-1],
            depth=0 if depth == 12 else depth,  # 12: the timm model's own
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


def check_release_args(spec: BackboneSpec, args: dict[str, Any]) -> None:
    """DINO's ``args.arch`` / ``args.patch_size`` must describe the weights' backbone."""
    arch = str(args.get("arch", "")).replace("deit", "vit")  # main_dino.py renames deit_*
    if arch and arch != spec.name and (arch in VITS or arch.startswith("resnet")):
        raise EncoderLoadError(
            f"the checkpoint's args say arch {arch!r}, but its weights are a {spec.name}; "
            "is the file damaged, or its args another run's?"
        )
    patch = args.get("patch_size")
    if spec.name in VITS and isinstance(patch, int) and patch != spec.patch_size:
        raise EncoderLoadError(
            f"the checkpoint's args say patch_size {patch}, but its weights have "
            f"{spec.patch_size}-pixel patches"
        )


def _method_of(layout: Layout, config: dict[str, Any] | None, named: str | None) -> str:
    """The file's method (its layout's, a siamhub config's), checked against the one the
    caller names; a file that says none takes the named one, else :data:`METHOD_UNKNOWN`."""
    own = layout.method
    if config is not None and isinstance(config.get("method"), dict):
        own = config["method"].get("name", own)  # a siamhub checkpoint names its method
    if named is not None and own is not None and named != own:
        raise EncoderLoadError(
            f"the checkpoint is a {own} checkpoint ({layout.name} layout), not {named}; "
            "drop the method or name the right one"
        )
    return own or named or METHOD_UNKNOWN


def _network_layout(
    layout: Layout, contents: Contents, method: str, network: str | None
) -> tuple[Layout, str | None]:
    """The layout of the network to import: a siamhub DINO run's teacher (``target_backbone.``)
    unless ``network="student"``; a DINO full checkpoint's was chosen when read."""
    if contents.network is not None:
        return layout, contents.network
    if layout.name == "siamhub" and method == "dino":
        network = network or "teacher"
        if network not in NETWORKS:
            raise EncoderLoadError(f"network must be one of {', '.join(NETWORKS)}, got {network!r}")
        if network == "student":
            return layout, network
        others = tuple(p for p in SIAMHUB_PARTS if p != "target_backbone.")
        return dataclasses.replace(layout, prefix="target_backbone.", other_parts=others), network
    if network is not None:
        raise EncoderLoadError(
            f"network={network!r} chooses between DINO's teacher and student, but the "
            f"checkpoint holds one network ({_KINDS[layout.name]}, method {method}); drop it"
        )
    return layout, None


_KINDS = {
    "simsiam": "SimSiam's release layout",
    "mocov3": "MoCo v3's release layout",
    "mocov2": "MoCo v1/v2's release layout",
    "dino_ddp": "a DINO network: backbone + DINO head, DDP-wrapped",
    "dino": "a DINO network: backbone + DINO head",
    "siamhub": "a siamhub training checkpoint",
    "plain": "a backbone-only state dict",
}


def import_checkpoint(
    source: str | Path | dict[str, Any],
    spec: BackboneSpec | None = None,
    ssl: dict[str, Any] | None = None,
    *,
    method: str | None = None,
    network: str | None = None,
    origin: str | None = None,
) -> tuple[Encoder, ImportReport]:
    """Convert a checkpoint of any known layout into an Encoder (strict; heads dropped).

    ``method`` names the method of a file whose keys do not tell it (a backbone-only state
    dict; else it is :data:`METHOD_UNKNOWN`); naming another than the file's own is an error.
    ``network`` picks DINO's ``"teacher"`` (the default: what DINO evaluates and releases) or
    ``"student"`` from a DINO full checkpoint or a siamhub DINO run. ``origin`` names the file
    in the ``ssl`` source (default: the file name of ``source``).
    """
    contents = read_contents(source, network)
    layout = detect_layout(contents.state)
    method = _method_of(layout, contents.config, method)
    layout, network = _network_layout(layout, contents, method, network)
    encoder_state, dropped, unknown = split_keys(contents.state, layout)
    if unknown:
        raise EncoderLoadError(
            f"checkpoint in the {layout.name} layout has keys outside its encoder "
            f"'{layout.prefix}' and known heads: {unknown[:12]}"
            f"{' ...' if len(unknown) > 12 else ''}; is it a different layout?"
        )
    config = contents.config
    if spec is None and config is not None and "model" in config:
        spec = BackboneSpec(**config["model"])
    if spec is None:
        spec = infer_spec(encoder_state, layout)
    if isinstance(contents.meta.get("args"), dict):
        check_release_args(spec, contents.meta["args"])
    kind = _KINDS[layout.name]
    if contents.network is not None:
        kind = f"DINO's full checkpoint, its {contents.network}"
    elif network is not None:
        kind = f"{kind}, its {network}"
    if origin is None and not isinstance(source, dict):
        origin = Path(source).name
    own: dict[str, Any] = {
        "method": method,
        "source": f"imported from {origin} ({kind})" if origin else f"imported ({kind})",
    }
    if network is not None:
        own["network"] = network
    own.update(release_metadata(contents.meta))
    ssl = {**own, **(ssl or {})}
    if config is not None:
        ssl.setdefault("recipe_name", config.get("recipe"))
        ssl.setdefault("recipe", config)
    encoder_cfg = encoder_config(spec, ssl, num_features=0)
    encoder = Encoder.for_loading(encoder_cfg)
    encoder.config["num_features"] = encoder.backbone.num_features
    encoder.load_backbone_state(encoder_state, source=f"a {layout.name} checkpoint")
    encoder.eval()
    report = ImportReport(layout.name, spec, len(encoder_state), dropped, method, network, kind)
    return encoder, report
