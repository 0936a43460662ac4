"""The torchvision engine: fine-tune a Faster/Mask R-CNN on our encoder and evaluate it.

Training follows detectron2's data handling: images without (non-crowd) objects are skipped,
crowd regions are not targets, VOC's difficult objects are trained on (detectron2 keeps them),
horizontal flip with p 0.5, one short side per image drawn from the schedule's sizes (the
multi-scale training of the MoCo configs), SGD with warmup and step decay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import pil_to_tensor

from common.images import open_image
from common.progress import progress
from common.workers import loader_workers
from transfer.detection.records import ImageRecord
from transfer.detection.schedules import DetSchedule


def decode_masks(record: ImageRecord, keep: np.ndarray) -> torch.Tensor:
    """Binary masks ``(K, H, W)`` uint8 of the kept objects (polygons or RLE)."""
    out = []
    for seg in (s for s, k in zip(record.segmentations, keep, strict=True) if k):
        if isinstance(seg, list):
            rles = mask_utils.frPyObjects(seg, record.height, record.width)
            rle = mask_utils.merge(rles)
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, record.height, record.width)
        else:
            rle = seg
        out.append(torch.from_numpy(mask_utils.decode(rle)))
    if not out:
        return torch.zeros((0, record.height, record.width), dtype=torch.uint8)
    return torch.stack(out)


def load_image(path: str, channels: int) -> torch.Tensor:
    """``(channels, H, W)`` float in [0, 1]; gray images repeat to RGB for RGB encoders."""
    img = open_image(path, "L" if channels == 1 else "RGB")  # 16-bit scaled, not clipped
    return pil_to_tensor(img).float().div_(255.0)


class DetectionData(Dataset):
    """(image, target) pairs of records, with the training flip."""

    def __init__(
        self,
        records: list[ImageRecord],
        channels: int,
        masks: bool,
        train_on_ignored: bool,
        flip: bool,
        seed: int,
    ) -> None:
        self.records, self.channels, self.masks = records, channels, masks
        self.train_on_ignored, self.flip, self.seed = train_on_ignored, flip, seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, dict]:
        i, draw = key
        r = self.records[i]
        image = load_image(r.file, self.channels)  # (C, H, W)
        keep = np.ones(len(r.labels), bool) if self.train_on_ignored else ~r.ignore
        boxes = torch.as_tensor(r.boxes[keep], dtype=torch.float32).reshape(-1, 4)
        target = {"boxes": boxes, "labels": torch.as_tensor(r.labels[keep] + 1)}
        if self.masks:
            target["masks"] = decode_masks(r, keep)
        if self.flip and torch.rand(1, generator=torch.Generator().manual_seed(draw)) < 0.5:
            w = image.shape[-1]
            image = image.flip(-1)
            boxes = target["boxes"].clone()
            boxes[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
            target["boxes"] = boxes
            if self.masks:
                target["masks"] = target["masks"].flip(-1)
        return image, target


class IterationSampler(torch.utils.data.Sampler):
    """``iters × batch`` (index, draw) keys from seeded epoch permutations of ``indices``."""

    def __init__(self, indices: list[int], iters: int, batch: int, seed: int) -> None:
        self.indices, self.iters, self.batch, self.seed = indices, iters, batch, seed

    def __iter__(self):
        n, k, epoch = len(self.indices), 0, 0
        while k < self.iters * self.batch:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch))
            for j in order.tolist():
                if k >= self.iters * self.batch:
                    return
                yield self.indices[j], self.seed * 10_000_019 + k
                k += 1
            epoch += 1

    def __len__(self) -> int:
        return self.iters * self.batch


def _collate(batch):
    return [b[0] for b in batch], [b[1] for b in batch]


def train_loader(
    data: DetectionData, usable: list[int], schedule: DetSchedule, seed: int, workers: int
) -> DataLoader:
    """The training batches: ``schedule.iters`` batches of the usable records, with at most one
    worker process per available CPU (``common.workers.loader_workers``)."""
    return DataLoader(
        data,
        batch_size=schedule.batch_size,
        sampler=IterationSampler(usable, schedule.iters, schedule.batch_size, seed),
        num_workers=loader_workers(workers),
        collate_fn=_collate,
    )


def place(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` on ``device``; on the CPU its RoI heads in channels_last. The C4 box head (res5
    and its BatchNorms over ``(R, C, 7, 7)`` maps of 512 RoIs per image) is about 99% of an
    iteration's FLOPs; in channels_last oneDNN runs its convolutions without layout reorders and
    BatchNorm vectorizes over channels (``models.PooledHead`` hands BatchNorm a channels_last
    gradient, which its fast backward needs). Measured in BENCHMARKS.md, "Detection iteration
    on the CPU" (``benchmarks/detection_step.py``). The backbone (about 1% of the FLOPs) keeps
    the default layout. A layout, not a computation: the results agree to float rounding
    (tests/test_detection_layout.py)."""
    model.to(device)
    if device.type == "cpu":
        model.roi_heads.to(memory_format=torch.channels_last)
    return model


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    images: list[torch.Tensor],
    targets: list[dict],
    lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One SGD iteration at ``lr``: the summed loss and its parts."""
    for g in opt.param_groups:
        g["lr"] = lr
    loss_dict = model(images, targets)
    loss = sum(loss_dict.values())
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"detection loss is {loss.item()} ({loss_dict}); lower the learning rate (lr "
            "scales with batch size) or check the boxes"
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss, loss_dict


@dataclass
class TrainReport:
    iters: int
    seconds: float
    final_losses: dict[str, float]


def train(
    model: torch.nn.Module,
    records: list[ImageRecord],
    schedule: DetSchedule,
    channels: int,
    masks: bool,
    train_on_ignored: bool,
    device: torch.device,
    seed: int = 0,
    workers: int = 0,
) -> TrainReport:
    """Fine-tune ``model`` for ``schedule.iters`` iterations on the records with objects."""
    torch.manual_seed(seed)
    usable = [
        i
        for i, r in enumerate(records)
        if len(r.labels) and (train_on_ignored or (~r.ignore).any())
    ]
    if not usable:
        raise ValueError("no training image has an object; check the dataset's annotations")
    data = DetectionData(records, channels, masks, train_on_ignored, flip=True, seed=seed)
    loader = train_loader(data, usable, schedule, seed, workers)
    place(model, device).train()
    model.transform.min_size = tuple(schedule.train_sizes)
    model.transform.max_size = schedule.max_size
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(
        params, lr=schedule.base_lr, momentum=schedule.momentum, weight_decay=schedule.weight_decay
    )
    started = time.perf_counter()
    losses: dict[str, float] = {}
    bar = progress(loader, total=schedule.iters, desc=f"detection ({schedule.name})", unit="it")
    for it, (images, targets) in enumerate(bar):
        images = [im.to(device) for im in images]
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        try:
            loss, loss_dict = train_step(model, opt, images, targets, schedule.lr_at(it))
        except FloatingPointError as e:
            raise FloatingPointError(f"at iteration {it}: {e}") from None
        losses = {k: v.item() for k, v in loss_dict.items()}
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{schedule.lr_at(it):.4g}")
    return TrainReport(schedule.iters, time.perf_counter() - started, losses)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    records: list[ImageRecord],
    schedule: DetSchedule,
    channels: int,
    masks: bool,
    device: torch.device,
    batch_size: int = 8,
) -> list[dict]:
    """Detections of every record at the test size: image_id, label (0-based), box, score
    (and an RLE ``segmentation`` for Mask R-CNN)."""
    place(model, device).eval()
    model.transform.min_size = (schedule.test_size,)
    model.transform.max_size = schedule.max_size
    out = []
    for start in progress(range(0, len(records), batch_size), desc="inference", leave=False):
        chunk = records[start : start + batch_size]
        images = [load_image(r.file, channels).to(device) for r in chunk]
        for r, pred in zip(chunk, model(images), strict=True):
            boxes = pred["boxes"].cpu().numpy()
            for k in range(len(boxes)):
                det = {
                    "image_id": r.image_id,
                    "label": int(pred["labels"][k]) - 1,
                    "box": boxes[k].tolist(),
                    "score": float(pred["scores"][k]),
                }
                if masks:
                    m = (pred["masks"][k, 0] > 0.5).cpu().numpy().astype(np.uint8)
                    rle = mask_utils.encode(np.asfortranarray(m))
                    rle["counts"] = rle["counts"].decode()
                    det["segmentation"] = rle
                out.append(det)
    return out
