"""Export a ResNet encoder to detectron2's checkpoint format (``.pkl``), in plain torch.

``python hub/export.py <encoder folder | repo id | checkpoint> out.pkl``

The mapping is the one of MoCo's ``convert-pretrain-to-detectron2.py`` (RECIPES.md, "Detection
transfer"): keys outside ``layerN`` get ``stem.``, ``layerN`` becomes ``res{N+1}``, ``bnK`` becomes
``convK.norm``, ``downsample.0``/``.1`` become ``shortcut``/``shortcut.norm``. The pickle holds
``{"model": {name: numpy array}, "__author__": ..., "matching_heuristics": True}``; detectron2
loads it with ``MODEL.RESNETS.STRIDE_IN_1X1 False`` (torchvision puts the stride in the 3×3
conv), ``INPUT.FORMAT "RGB"`` and torchvision's mean/std as pixel statistics.

Every input key is accounted for: it is either renamed or listed in ``dropped`` with the
reason (BN's ``num_batches_tracked`` counters, which detectron2's FrozenBatchNorm2d does not
have, and a classifier ``fc`` when the source has one).
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

D2_KEY = re.compile(
    r"^(stem\.conv1(\.norm)?|res[2-5]\.\d+\.(conv[1-3]|shortcut)(\.norm)?)"
    r"\.(weight|bias|running_mean|running_var)$"
)


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
        raise ValueError(
            f"keys with no detectron2 ResNet counterpart: {unmapped[:10]}; only ResNet encoders "
            "(torchvision/timm key names) export to detectron2"
        )
    return out


def save_detectron2(state: dict[str, torch.Tensor], path: str | Path) -> Detectron2Export:
    """Write the detectron2 pickle of ``state`` to ``path``."""
    export = to_detectron2(state)
    obj = {"model": export.model, "__author__": "siamhub", "matching_heuristics": True}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f)
    return export


def load_source(source: str) -> dict[str, torch.Tensor]:
    """Backbone state dict of an encoder folder, Hub repo id, or any importable checkpoint."""
    from hub.encoder import Encoder
    from hub.importer import import_checkpoint

    path = Path(source)
    if path.is_file():
        encoder, report = import_checkpoint(path)
        print(report.summary())
    else:
        encoder = Encoder.from_pretrained(source)
    return encoder.backbone.state_dict()


def main(argv: list[str] | None = None) -> Detectron2Export:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="encoder folder, Hub repo id, or checkpoint file")
    parser.add_argument("output", help="the .pkl to write")
    args = parser.parse_args(argv)
    export = save_detectron2(load_source(args.source), args.output)
    print(
        f"wrote {args.output}: {len(export.model)} tensors; dropped {len(export.dropped)} "
        f"({', '.join(sorted(set(export.dropped.values())))})"
    )
    return export


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
