"""What ``voc_det``, ``coco_det`` and ``fmnist_det`` share: options, the engine switch, the
torchvision fine-tune + evaluation, and the protocol recorded with the result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from common.image_stats import IMAGENET_MEAN, IMAGENET_STD
from transfer.detection import engine_torchvision as tv
from transfer.detection.models import build_detector
from transfer.detection.predictions import score_detections
from transfer.detection.records import ImageRecord
from transfer.detection.schedules import PRESETS
from transfer.models import LoadedModel
from transfer.probe_loop import check_unchanged, snapshot
from transfer.tasks import OptionError, RunContext, TaskOutput

ENGINES = ("torchvision", "detectron2")


@dataclass
class DetOptions:
    """Options every detection task has (each task sets its own defaults)."""

    engine: str = "torchvision"
    variant: str = "c4"  # c4 | fpn
    schedule: str = "voc_24k"
    batch_size: int = 0  # 0: the preset's 16; the schedule scales linearly
    iters: int = 0  # 0: the (scaled) preset's
    short_side: int = 0  # 0: the preset's multi-scale sizes
    anchor_sizes: tuple = (32, 64, 128, 256, 512)
    roi_resolution: int = 14
    fpn_channels: int = 256
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    rpn_pre_nms_top_n_train: int = 12000  # detectron2 C4 defaults
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 6000
    rpn_post_nms_top_n_test: int = 1000
    workers: int = 4


def schedule_of(opts: DetOptions):
    if opts.schedule not in PRESETS:
        raise OptionError(f"unknown schedule {opts.schedule!r}; available: {', '.join(PRESETS)}")
    sched = PRESETS[opts.schedule]
    if opts.batch_size:
        sched = sched.scaled(opts.batch_size)
    if opts.iters:
        sched = sched.with_iters(opts.iters)
    if opts.short_side:
        sched = sched.with_short_side(opts.short_side)
    return sched


def check_engine(opts: DetOptions) -> None:
    if opts.engine not in ENGINES:
        raise OptionError(f"unknown engine {opts.engine!r}; available: {', '.join(ENGINES)}")


def build(model: LoadedModel, opts: DetOptions, num_classes: int, masks: bool, sched):
    cfg = model.preprocess
    return build_detector(
        model.encoder.backbone,
        num_classes,
        opts.variant,
        masks,
        image_mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        image_std=tuple(cfg.get("std", IMAGENET_STD)),
        min_size=tuple(sched.train_sizes),
        max_size=sched.max_size,
        anchor_sizes=tuple(int(a) for a in opts.anchor_sizes),
        roi_resolution=opts.roi_resolution,
        fpn_channels=opts.fpn_channels,
        rpn_batch_size_per_image=opts.rpn_batch_size_per_image,
        box_batch_size_per_image=opts.box_batch_size_per_image,
        rpn_pre_nms_top_n_train=opts.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=opts.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=opts.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=opts.rpn_post_nms_top_n_test,
    )


def run_torchvision(
    model: LoadedModel,
    opts: DetOptions,
    ctx: RunContext,
    train_records: list[ImageRecord],
    test_records: list[ImageRecord],
    num_classes: int,
    masks: bool,
    train_on_ignored: bool,
    coco_gt=None,
    categories: list[dict] | None = None,
    voc_metrics: bool = True,
    class_names: Sequence[str] | None = None,
) -> TaskOutput:
    """Fine-tune on ``train_records``, evaluate on ``test_records`` (COCO AP through
    pycocotools when ``coco_gt`` is given, VOC07 AP50 and COCO-style AP from the records);
    the detections those numbers come from are the output's artifacts
    (``transfer/detection/predictions.py``). ``class_names`` default to the categories'."""
    if class_names is None:
        class_names = [c["name"] for c in categories] if categories else []
    class_names = list(class_names) or [str(i) for i in range(num_classes)]
    sched = schedule_of(opts)
    channels = int(model.preprocess.get("input_size", [3])[0])
    before = snapshot(model.encoder.backbone)  # the detector fine-tunes a copy
    torch.manual_seed(ctx.seed)
    detector = build(model, opts, num_classes, masks, sched)
    report = tv.train(
        detector, train_records, sched, channels, masks, train_on_ignored, ctx.device, ctx.seed,
        opts.workers,
    )  # fmt: skip
    dets = tv.predict(detector, test_records, sched, channels, masks, ctx.device)
    check_unchanged(before, model.encoder.backbone)
    metrics, artifacts = score_detections(
        test_records, dets, class_names, coco_gt, categories, masks, voc_metrics
    )
    metrics["train_seconds"] = report.seconds
    protocol = {
        "engine": "torchvision",
        "architecture": ("Mask" if masks else "Faster") + f" R-CNN, {opts.variant.upper()}",
        "options": {k: v for k, v in asdict(opts).items() if k not in ("engine", "workers")},
        "schedule": sched.to_dict(),
        "bn": "trainable BatchNorm (batch statistics), nothing frozen; extra BN after res5 (C4)",
        "train_images": len(train_records),
        "test_images": len(test_records),
        "evaluators": (["pycocotools COCOeval"] if coco_gt is not None else [])
        + (["VOC07 11-point AP50, AP over IoU 0.50:0.95"] if voc_metrics else []),
    }
    return TaskOutput(protocol, metrics, {"final_losses": report.final_losses}, artifacts)
