"""Labelled classification data and frozen-backbone features, extracted once per run.

Datasets: ``fashion_mnist`` (the IDX files of Debian's ``dataset-fashion-mnist``; the whole
28 px image, no crop) and ``imagefolder`` (``<root>/train/<class>/<image>`` and
``<root>/val/<class>/<image>``, the ImageNet layout; resize 256 / center crop 224, the SimSiam
and MoCo v3 linear-evaluation crop, SimSiam App. A; the encoder's timm ``pretrained_cfg``
when it has one: ``common.transforms.eval_transform``). Features are the backbone's pooled output
(pool5 for a ResNet) in eval mode; every task of a run reuses them (``FeatureCache``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.datasets import DataError, image_folder, load_fashion_mnist
from common.knn import embed, embed_dataset
from common.transforms import eval_transform, normalize_small

FMNIST_ROOT = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
DATASETS = ("fashion_mnist", "imagefolder")
FOLDER_SPLITS = {"train": "train", "test": "val"}  # an image folder's split -> its folder


@dataclass(frozen=True)
class DataSpec:
    """Which labelled data a task reads; recorded in the protocol."""

    dataset: str = "fashion_mnist"
    root: str = FMNIST_ROOT

    def describe(self, split: str, n: int) -> str:
        """``"<dataset> <split> (<n> images) from <root>"``, the split as read from disk (an
        image folder's test split is its ``val/`` folder); ``records.splits`` reads it."""
        if self.dataset == "imagefolder":
            split = FOLDER_SPLITS.get(split, split)
        return f"{self.dataset} {split} ({n} images) from {self.root}"


def eval_crop(dataset: str, size: int) -> str:
    """The eval crop as a record states it."""
    if dataset == "fashion_mnist":
        return f"whole image, resized to {size} px"
    return f"resize {round(size * 256 / 224)} / center crop {size}"


def load_split(
    spec: DataSpec,
    split: str,
    size: int,
    in_chans: int,
    pretrained_cfg: dict[str, Any] | None = None,
) -> tuple[Any, torch.Tensor]:
    """(images or a dataset, labels) of ``split`` ('train' or 'test'); an image folder is
    cropped as the encoder's timm ``pretrained_cfg`` says (resize 256 / center crop 224 without
    one)."""
    if spec.dataset == "fashion_mnist":
        return load_fashion_mnist(spec.root, split)
    if spec.dataset == "imagefolder":
        root = Path(spec.root) / FOLDER_SPLITS.get(split, "val")
        if not root.is_dir():
            raise DataError(
                f"{root} not found; an imagefolder dataset is <root>/train/<class>/<image> and "
                "<root>/val/<class>/<image> (the ImageNet layout)"
            )
        folder = image_folder(root, transform=eval_transform(pretrained_cfg, size))
        return folder, torch.tensor(folder.targets)
    raise DataError(f"unknown dataset {spec.dataset!r}; available: {', '.join(DATASETS)}")


@torch.no_grad()
def extract(
    backbone: torch.nn.Module,
    data: Any,
    size: int,
    in_chans: int,
    device: torch.device,
    desc: str | None = None,
) -> torch.Tensor:
    """Backbone features ``(N, D)`` in eval mode, float32 on the CPU."""
    backbone.eval()
    backbone.to(device)
    if isinstance(data, torch.Tensor):  # uint8 Fashion-MNIST images (N, 1, 28, 28)

        def prep(x: torch.Tensor) -> torch.Tensor:
            return normalize_small(x, size, in_chans).to(device)

        return embed(backbone, data, prep, batch_size=512, desc=desc)
    return embed_dataset(backbone, data, lambda x: x.to(device), batch_size=128, desc=desc)


class FeatureCache:
    """Features of (model, data, split) computed once and shared by every task of a run."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._store: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, model: Any, spec: DataSpec, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (N, D), labels (N,))`` of ``split`` for a ``LoadedModel``."""
        key = (id(model.encoder), spec, split)
        if key not in self._store:
            cfg = model.preprocess
            size = int(cfg.get("input_size", [3, 224, 224])[-1])
            in_chans = int(cfg.get("input_size", [3])[0])
            data, labels = load_split(spec, split, size, in_chans, cfg)
            feats = extract(
                model.encoder.backbone, data, size, in_chans, self.device, desc=f"features {split}"
            )
            self._store[key] = (feats, labels)
        return self._store[key]

    def protocol(self, model: Any, spec: DataSpec) -> dict[str, Any]:
        size = int(model.preprocess.get("input_size", [3, 224, 224])[-1])
        return {
            "dataset": spec.dataset,
            "data_root": spec.root,
            "eval_crop": eval_crop(spec.dataset, size),
            "features": "backbone pooled output (pool5), eval mode",
        }
