"""The papers' linear-probe protocols: the frozen backbone runs in the loop on augmented
training images (RandomResizedCrop + flip), the linear head learns, and afterwards the probe
checks that no backbone weight or BN statistic changed (the sanity check of SimSiam's and
MoCo v3's ``main_lincls.py``).

Presets (docs/recipes.md, "Evaluation protocols", and the authors' repositories; learning
rates scale as base × batch/256):
- ``simsiam``: LARS (trust 0.001), batch 4096, base lr 0.1 (repository; the paper's 0.02 is
  what works in their JAX code, simsiam#13), cosine, 90 epochs, wd 0, momentum 0.9, eval
  resize 256 / center crop 224.
- ``mocov3``: SGD momentum 0.9, batch 1024, base lr 0.1, cosine, 90 epochs, wd 0
  (moco-v3 ``main_lincls.py`` defaults).
- ``byol``: Nesterov SGD momentum 0.9, batch 1024, 80 epochs, wd 0, lr from
  {0.4, 0.3, 0.2, 0.1, 0.05} picked on a held-out split of the training set (BYOL App. C.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from common.errors import UserError
from common.image_stats import IMAGENET_MEAN, IMAGENET_STD
from common.lars import LARS
from common.progress import progress
from common.small_augment import SmallImageAugment
from common.workers import loader_workers


class BackboneChangedError(UserError, RuntimeError):
    """The frozen backbone changed during a linear probe: the result would be a fine-tune."""


@dataclass(frozen=True)
class PaperPreset:
    name: str
    optimizer: str  # "lars", "sgd", "nesterov"
    base_lr: float  # × batch / 256
    batch_size: int
    epochs: int
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_grid: tuple[float, ...] = ()  # absolute lrs picked on a held-out split (BYOL)
    train_crop: str = "RandomResizedCrop(scale 0.08-1) + horizontal flip"
    source: str = ""


PRESETS = {
    "simsiam": PaperPreset(
        "simsiam", "lars", 0.1, 4096, 90, source="SimSiam §A / repository main_lincls.py"
    ),
    "mocov3": PaperPreset(
        "mocov3", "sgd", 0.1, 1024, 90, source="moco-v3 repository main_lincls.py defaults"
    ),
    "byol": PaperPreset(
        "byol",
        "nesterov",
        0.0,
        1024,
        80,
        lr_grid=(0.4, 0.3, 0.2, 0.1, 0.05),
        source="BYOL App. C.1",
    ),
}


def preset_dict(preset: PaperPreset) -> dict:
    return asdict(preset)


def snapshot(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight and buffer (BN running statistics included) of the backbone, copied."""
    return {k: v.detach().clone() for k, v in backbone.state_dict().items()}


def check_unchanged(before: dict[str, torch.Tensor], backbone: nn.Module) -> None:
    """Raise ``BackboneChangedError`` naming the tensors that differ from ``before``."""
    after = backbone.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k].detach().to(v.device))]
    if changed:
        raise BackboneChangedError(
            f"the backbone changed during the linear probe: {len(changed)} of {len(before)} "
            f"tensors differ (first: {', '.join(changed[:5])}); a linear probe must keep the "
            "backbone frozen (requires_grad False, eval mode so BN statistics stay fixed)"
        )


def train_augment(dataset: str, size: int, in_chans: int) -> Callable:
    """The training crop of the paper protocols for a batch (Fashion-MNIST) or an image."""
    if dataset == "fashion_mnist":
        aug = SmallImageAugment(size, crop_min_scale=0.08, jitter_p=0.0, out_chans=in_chans)
        return aug
    return T.Compose(
        [
            T.RandomResizedCrop(size),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _optimizer(preset: PaperPreset, params, lr: float) -> torch.optim.Optimizer:
    if preset.optimizer == "lars":
        # SimSiam's probe: the weight matrix is adapted, the bias (1-D) is not (You et al. 2017).
        params = list(params)
        groups = [
            {"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "no_decay": True},
        ]
        return LARS([g for g in groups if g["params"]], lr, preset.momentum, preset.weight_decay)
    return torch.optim.SGD(
        params,
        lr,
        momentum=preset.momentum,
        weight_decay=preset.weight_decay,
        nesterov=preset.optimizer == "nesterov",
    )


def train_in_loop(
    backbone: nn.Module,
    batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    steps_per_epoch: int,
    classes: int,
    preset: PaperPreset,
    lr: float,
    device: torch.device,
    epochs: int | None = None,
    seed: int = 0,
    frozen: bool = True,
) -> nn.Module:
    """Train a linear head on the frozen backbone; ``batches(epoch)`` yields augmented
    ``(images (B, C, H, W), labels (B,))``.

    ``frozen=False`` trains the backbone too; it exists to show that the sanity check
    refuses such a run.
    """
    torch.manual_seed(seed)
    head = nn.Linear(backbone.num_features, classes).to(device)
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)
    params = list(head.parameters()) + ([] if frozen else list(backbone.parameters()))
    opt = _optimizer(preset, params, lr)
    before = snapshot(backbone)
    epochs = epochs or preset.epochs
    total = epochs * steps_per_epoch
    step = 0
    bar = progress(total=total, desc=f"linear probe ({preset.name}, lr {lr:g})")
    for epoch in range(epochs):
        for x, y in batches(epoch):
            x = x.to(device)
            if frozen:
                backbone.eval()
                with torch.no_grad():
                    feats = backbone(x)  # (B, D)
            else:
                backbone.train()
                feats = backbone(x)
            loss = F.cross_entropy(head(feats), y.to(device))
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    backbone.eval()
    check_unchanged(before, backbone)
    return head.eval()


def tensor_batches(
    images: torch.Tensor, labels: torch.Tensor, batch: int, augment: Callable, seed: int
) -> tuple[Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]], int]:
    """Augmented batches of an in-memory uint8 set, seeded per epoch; and steps per epoch."""
    batch = min(batch, len(images))
    steps = max(1, len(images) // batch)

    def batches(epoch: int):
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(len(images), generator=gen)
        for i in range(steps):
            idx = order[i * batch : (i + 1) * batch]
            yield augment(images[idx], gen), labels[idx]

    return batches, steps


def folder_batches(
    folder: torch.utils.data.Dataset, batch: int, seed: int, workers: int = 4
) -> tuple[Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]], int]:
    """Augmented batches of an ImageFolder (its transform is the training crop), loaded by at
    most one worker process per available CPU (``common.workers.loader_workers``)."""
    batch = min(batch, len(folder))

    def batches(epoch: int):
        yield from epoch_loader(folder, batch, seed, epoch, workers)

    return batches, max(1, len(folder) // batch)


def epoch_loader(
    folder: torch.utils.data.Dataset, batch: int, seed: int, epoch: int, workers: int
) -> torch.utils.data.DataLoader:
    """One epoch of shuffled full batches of ``folder``, seeded by (seed, epoch)."""
    return torch.utils.data.DataLoader(
        folder,
        batch_size=batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed * 1000 + epoch),
        num_workers=loader_workers(workers),
        drop_last=True,
    )
