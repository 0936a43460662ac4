"""Export a ResNet encoder to detectron2's checkpoint format (``.pkl``), in plain torch.

``python hub/export.py <encoder folder | repo id | checkpoint> out.pkl``

The mapping is the one of MoCo's ``convert-pretrain-to-detectron2.py`` (docs/recipes.md,
"Detection transfer"): keys outside ``layerN`` get ``stem.``, ``layerN`` becomes
``res{N+1}``, ``bnK`` becomes ``convK.norm``, ``downsample.0``/``.1`` become
``shortcut``/``shortcut.norm``. The pickle holds
``{"model": {name: numpy array}, "__author__": ..., "matching_heuristics": True}``; detectron2
loads it with ``MODEL.RESNETS.STRIDE_IN_1X1 False`` (torchvision puts the stride in the 3×3
conv), ``INPUT.FORMAT "RGB"`` and torchvision's mean/std as pixel statistics.

Every input key is accounted for: it is either renamed or listed in ``dropped`` with the
reason (BN's ``num_batches_tracked`` counters, which detectron2's FrozenBatchNorm2d does not
have, and a classifier ``fc`` when the source has one).

The source is a local encoder folder, a checkpoint file (read weights-only) or a Hub repo id
``<org>/<name>``; a value that looks like a path is never sent to the Hub. Errors are one
``error:`` line (exit 2).
"""

from __future__ import annotations

import argparse
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from common.cli import make_parser, run_cli
from common.errors import UserError
from common.files import atomic_write
from common.paths import looks_like_path, missing_path_message

D2_KEY = re.compile(
    r"^(stem\.conv1(\.norm)?|res[2-5]\.\d+\.(conv[1-3]|shortcut)(\.norm)?)"
    r"\.(weight|bias|running_mean|running_var)$"
)


class ExportError(UserError, ValueError):
    """A source that cannot be exported to detectron2 (says why and what would work)."""


@dataclass
class Detectron2Export:
    model: dict[str, Any]  # detectron2 name -> numpy array
    renamed: dict[str, str] = field(default_factory=dict)  # source key -> detectron2 name
    dropped: dict[str, str] = field(default_factory=dict)  # source key -> reason


def detectron2_name(key: str) -> str:
    """The detectron2 name of a torchvision/timm ResNet key."""
    name = key if "layer" in key else "stem." + key
    for n in (1, 2, 3, 4):
        name = name.replace(f"layer{n}", f"res{n + 1}")
    for n in (1, 2, 3):
        name = name.replace(f"bn{n}", f"conv{n}.norm")
    return name.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def to_detectron2(state: dict[str, torch.Tensor]) -> Detectron2Export:
    """Convert a ResNet state dict; raises when a key has no detectron2 counterpart."""
    out = Detectron2Export(model={})
    unmapped = []
    for key, tensor in state.items():
        if key.endswith("num_batches_tracked"):
            out.dropped[key] = "BN step counter; detectron2's FrozenBatchNorm2d has none"
            continue
        if key.startswith("fc."):
            out.dropped[key] = "classifier head; detectron2 builds its own heads"
            continue
        name = detectron2_name(key)
        if not D2_KEY.match(name):
            unmapped.append(f"{key} -> {name}")
            continue
        out.renamed[key] = name
        out.model[name] = tensor.detach().cpu().numpy()
    if unmapped:
        raise ExportError(
            f"keys with no detectron2 ResNet counterpart: {unmapped[:10]}; only ResNet encoders "
            "(torchvision/timm key names) export to detectron2"
        )
    return out


def save_detectron2(state: dict[str, torch.Tensor], path: str | Path) -> Detectron2Export:
    """Write the detectron2 pickle of ``state`` to ``path``."""
    export = to_detectron2(state)
    obj = {"model": export.model, "__author__": "siamhub", "matching_heuristics": True}
    atomic_write(path, lambda f: pickle.dump(obj, f))  # never half a .pkl
    return export


def load_source(source: str) -> dict[str, torch.Tensor]:
    """Backbone state dict of an encoder folder, Hub repo id, or any importable checkpoint."""
    from hub.encoder import Encoder, load_from_hub
    from hub.importer import import_checkpoint

    path = Path(source).expanduser()
    if path.is_file():
        encoder, report = import_checkpoint(path)
        print(report.summary())
    elif path.is_dir():
        encoder = Encoder.from_pretrained(path)
    elif looks_like_path(source) or source.count("/") != 1:
        raise ExportError(
            f"{missing_path_message(source)}; pass an encoder folder, a checkpoint file or a Hub "
            "repo id <org>/<name>"
        )
    else:
        encoder = load_from_hub(source)
    return encoder.backbone.state_dict()


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("source", help="encoder folder, checkpoint file, or Hub repo id")
    parser.add_argument("output", help="the detectron2 .pkl to write")
    return parser


def main(argv: list[str] | None = None) -> Detectron2Export:
    args = build_parser().parse_args(argv)
    export = save_detectron2(load_source(args.source), args.output)
    print(
        f"wrote {args.output}: {len(export.model)} tensors; dropped {len(export.dropped)} "
        f"({', '.join(sorted(set(export.dropped.values())))})"
    )
    return export


def cli() -> None:
    """The command: ``main`` with the project's error path (console script siamhub-export)."""
    run_cli(main, "re-run the same command to write the .pkl")


if __name__ == "__main__":
    cli()
