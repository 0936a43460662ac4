"""Datasets and the two-view pretraining loader.

The readers (Fashion-MNIST IDX files, checked ImageFolder trees) are ``common.datasets``.

Determinism: the loader's sampler yields ``BatchKey(epoch, index_in_epoch, indices)`` and
every batch's augmentation is seeded by ``(seed, epoch, index_in_epoch)``. A batch is thus
the same whatever the number of workers, and a run resumed at step k sees exactly the
batches an uninterrupted run sees from step k on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.datasets import ImageFolder

from common.datasets import image_folder, load_fashion_mnist, load_image
from common.small_augment import SmallImageAugment
from common.system import available_cpus
from common.transforms import imagenet_eval_transform
from pretrain.augment import BYOL_VIEWS, byol_transform, mocov2_transform
from pretrain.config import Config, ConfigError

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
            image = load_image(self.folder.samples[i][0])
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
