"""Datasets and the two-view pretraining loader.

Readers: Fashion-MNIST IDX files (Debian's ``dataset-fashion-mnist`` installs them in
``/usr/share/datasets/fashion-mnist``) and ImageFolder trees in the ImageNet layout.

Determinism: the loader's sampler yields ``BatchKey(epoch, index_in_epoch, indices)`` and
every batch's augmentation is seeded by ``(seed, epoch, index_in_epoch)``. A batch is thus
the same whatever the number of workers, and a run resumed at step k sees exactly the
batches an uninterrupted run sees from step k on.
"""

from __future__ import annotations

import gzip
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.datasets import ImageFolder

from common.errors import UserError
from common.images import ImageError, open_image
from common.system import available_cpus
from pretrain.augment import (
    BYOL_VIEWS,
    SmallImageAugment,
    byol_transform,
    imagenet_eval_transform,
    mocov2_transform,
)
from pretrain.config import Config, ConfigError

FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FMNIST_HELP = (
    "install it with 'sudo apt-get install dataset-fashion-mnist' (files land in "
    "/usr/share/datasets/fashion-mnist), or point data.root=PATH at a folder holding the four "
    "IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)"
)


class DataError(UserError, RuntimeError):
    """Data that is missing or unreadable; the message names the file and the fix.

    Built from one string, so a DataLoader worker's re-raise keeps its type (and run_cli its
    one-line message)."""


# ---------------------------------------------------------------------------- readers


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array, validating its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}; the file is corrupt or truncated") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(
            f"{path} is truncated: header says {shape} ({int(np.prod(shape))} bytes), "
            f"found {body.size} bytes"
        )
    return body.reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataError(f"Fashion-MNIST file {stem}[.gz] not found in {root}; {FMNIST_HELP}")


def load_fashion_mnist(root: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, 28, 28)`` uint8 and labels ``(N,)`` int64 of one split."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Fashion-MNIST folder {root} does not exist; {FMNIST_HELP}")
    images_file, labels_file = (_find(root, s) for s in FMNIST_FILES[split])
    images = read_idx(images_file)
    labels = read_idx(labels_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{images_file} and {labels_file} disagree: "
            f"images {images.shape}, labels {labels.shape}"
        )
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _load_image(path: str) -> Image.Image:
    """8-bit RGB; 16-bit and float images scaled, not clipped (``common.images``)."""
    try:
        return open_image(path, "RGB")
    except ImageError as e:
        raise DataError(str(e)) from e


def image_folder(root: str | Path, transform=None) -> ImageFolder:
    """An ImageNet-layout folder (``root/<class>/<image>``); unreadable files name themselves."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist; set data.root to a folder laid out as "
            "root/<class>/<image> (the ImageNet train/ layout)"
        )
    try:
        return ImageFolder(str(root), transform=transform, loader=_load_image)
    except FileNotFoundError as e:
        raise DataError(f"no images found under {root} ({e}); expected root/<class>/<image>") from e


# ---------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class BatchKey:
    """One batch's identity: which epoch, which batch of it, which dataset indices.

    With several processes, ``indices`` is this rank's slice, rows ``offset ..`` of a global batch
    of ``total`` images (0: the batch is the whole global batch).
    """

    epoch: int
    index: int
    indices: tuple[int, ...]
    offset: int = 0
    total: int = 0


def batch_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch) * 1_000_033 + index


class EpochBatchSampler(Sampler[BatchKey]):
    """Seeded per-epoch permutations cut into global batches, from any starting step.

    ``rank``/``world_size`` give each process its slice of the global batch (the config's batch
    is the global one). The last incomplete batch of an epoch is dropped (BN needs full batches).
    """

    def __init__(
        self,
        num_samples: int,
        global_batch: int,
        seed: int,
        start_step: int = 0,
        total_steps: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if global_batch % world_size:
            raise ConfigError(
                f"train.batch_size={global_batch} must divide evenly over {world_size} processes"
            )
        self.steps_per_epoch = num_samples // global_batch
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"train.batch_size={global_batch} is larger than the dataset ({num_samples})"
            )
        self.num_samples, self.global_batch, self.seed = num_samples, global_batch, seed
        self.start_step, self.total_steps = start_step, total_steps
        self.rank, self.world_size = rank, world_size

    def permutation(self, epoch: int) -> torch.Tensor:
        """The epoch's order of the whole dataset, the same on every rank."""
        gen = torch.Generator().manual_seed(batch_seed(self.seed, epoch, -1))
        return torch.randperm(self.num_samples, generator=gen)

    def __iter__(self):
        step = self.start_step
        per_rank = self.global_batch // self.world_size
        offset = self.rank * per_rank
        order_epoch, order = -1, None
        while self.total_steps is None or step < self.total_steps:
            epoch, index = divmod(step, self.steps_per_epoch)
            if epoch != order_epoch:
                order_epoch, order = epoch, self.permutation(epoch)
            start = index * self.global_batch + offset
            indices = tuple(order[start : start + per_rank].tolist())
            yield BatchKey(epoch, index, indices, offset, self.global_batch)
            step += 1

    def __len__(self) -> int:
        return (self.total_steps or self.steps_per_epoch) - self.start_step


# ---------------------------------------------------------------------------- datasets


class TensorTwoViews(Dataset):
    """Augmented views of an in-memory uint8 image tensor, one whole batch per key.

    ``augments`` holds one augmentation per view (two for the usual pair, two different ones
    for BYOL's asymmetric pair, four for SimSiam's "asymmetric 2×" loss).
    """

    def __init__(
        self,
        images: torch.Tensor,
        augment: SmallImageAugment | list[SmallImageAugment],
        seed: int,
    ) -> None:
        self.images, self.seed = images, seed
        self.augments = augment if isinstance(augment, list) else [augment, augment]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: BatchKey) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(batch_seed(self.seed, key.epoch, key.index))
        batch = self.images[list(key.indices)]
        return tuple(augment(batch, gen, key.offset, key.total) for augment in self.augments)


class FolderTwoViews(Dataset):
    """Per-image views of an ImageFolder (one transform per view), one whole batch per key."""

    def __init__(self, folder: ImageFolder, transform, seed: int) -> None:
        self.folder, self.seed = folder, seed
        self.transforms = transform if isinstance(transform, list) else [transform, transform]

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, key: BatchKey) -> tuple[torch.Tensor, ...]:
        views: list[list[torch.Tensor]] = [[] for _ in self.transforms]
        for i in key.indices:
            image = _load_image(self.folder.samples[i][0])
            seed = batch_seed(self.seed, key.epoch, i)
            torch.manual_seed(seed)  # torchvision's random transforms draw from these
            random.seed(seed)
            for out, transform in zip(views, self.transforms, strict=True):
                out.append(transform(image))
        return tuple(torch.stack(v) for v in views)


SMALL_AUGMENTS = ("small", "small_byol")
FOLDER_AUGMENTS = ("mocov2", "byol")


def _views(cfg: Config, make) -> list:
    """One augmentation per view: BYOL's pair differs per view; 4 views for asymmetric 2×."""
    from pretrain.methods.simsiam import num_views_for

    n = num_views_for(cfg.method.loss)
    if cfg.data.augment in ("byol", "small_byol"):
        return [make(**BYOL_VIEWS[i % 2]) for i in range(n)]
    return [make()] * n


def pretrain_dataset(cfg: Config) -> Dataset:
    """The multi-view dataset a config names."""
    d = cfg.data
    if d.augment in ("dino", "small_dino"):  # DINO's 2 global + N local crops
        from pretrain.multicrop import multicrop_dataset

        return multicrop_dataset(cfg)
    if d.dataset == "fashion_mnist":
        if d.augment not in SMALL_AUGMENTS:
            raise ConfigError(
                f"data.dataset='fashion_mnist' uses data.augment in {SMALL_AUGMENTS}, "
                f"got {d.augment!r}"
            )
        images, _ = load_fashion_mnist(d.root, "train")

        def small(**kw) -> SmallImageAugment:
            extra = {"interpolation": "bicubic"} if d.augment == "small_byol" else {}
            return SmallImageAugment(
                d.img_size, d.crop_min_scale, out_chans=cfg.model.in_chans, **extra, **kw
            )

        return TensorTwoViews(images, _views(cfg, small), cfg.train.seed)
    if d.dataset == "imagefolder":
        if d.augment not in FOLDER_AUGMENTS:
            raise ConfigError(
                f"data.dataset='imagefolder' uses data.augment in {FOLDER_AUGMENTS}, "
                f"got {d.augment!r}"
            )
        folder = image_folder(d.root)

        def pil(**kw):
            if d.augment == "byol":
                return byol_transform(d.img_size, d.crop_min_scale, **kw)
            return mocov2_transform(d.img_size, d.crop_min_scale)

        return FolderTwoViews(folder, _views(cfg, pil), cfg.train.seed)
    raise ConfigError(f"unknown data.dataset {d.dataset!r}; available: fashion_mnist, imagefolder")


def pretrain_loader(
    cfg: Config, dataset: Dataset, start_step: int, total_steps: int, rank: int = 0, world: int = 1
) -> DataLoader:
    """Batches of two views from ``start_step`` to ``total_steps``, built in worker processes
    (``data.num_workers``, at most the CPUs this process may use)."""
    sampler = EpochBatchSampler(
        len(dataset), cfg.train.batch_size, cfg.train.seed, start_step, total_steps, rank, world
    )
    workers = min(cfg.data.num_workers, available_cpus())
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        pin_memory=torch.cuda.is_available(),
    )


# ---------------------------------------------------------------------------- labelled sets


def labelled_split(cfg: Config, split: str) -> tuple[Dataset | torch.Tensor, torch.Tensor]:
    """Un-augmented labelled data for kNN: (uint8 images or an ImageFolder, labels)."""
    d = cfg.data
    if d.dataset == "fashion_mnist":
        return load_fashion_mnist(d.root, split)
    root = d.root if split == "train" else d.val_root
    if not root:
        raise ConfigError("the kNN monitor on an ImageFolder needs data.val_root (labelled split)")
    folder = image_folder(root, transform=imagenet_eval_transform(d.img_size))
    return folder, torch.tensor(folder.targets)
