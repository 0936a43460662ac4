"""COCO detection and instance segmentation, the MoCo protocol (docs/recipes.md, "Detection
transfer"): Mask R-CNN R50-C4 fine-tuned on ``train2017``, evaluated on ``val2017`` by
pycocotools (box and mask AP, AP50, AP75); the 1x schedule (90k iterations at batch 16,
``schedule=coco_1x``), scaled by ``batch_size``. ``data_root`` holds
``annotations/instances_{train,val}2017.json``, ``train2017/`` and ``val2017/``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from transfer.detection import engine_detectron2
from transfer.detection.coco import read_coco
from transfer.detection.task import DetOptions, check_engine, run_torchvision
from transfer.models import LoadedModel
from transfer.tasks import RunContext, TaskOutput

NAME = "coco_det"


@dataclass
class Options(DetOptions):
    data_root: str = os.environ.get("COCO_ROOT", "datasets/coco")
    train_split: str = "train2017"
    test_split: str = "val2017"
    schedule: str = "coco_1x"
    masks: bool = True


def run(model: LoadedModel, opts: Options, ctx: RunContext) -> TaskOutput:
    check_engine(opts)
    if opts.engine == "detectron2":
        out = engine_detectron2.run(model, opts, ctx, "coco")
    else:
        train, categories, _ = read_coco(opts.data_root, opts.train_split)
        test, _, gt = read_coco(opts.data_root, opts.test_split)
        out = run_torchvision(
            model, opts, ctx, train, test, len(categories), opts.masks, False, gt, categories,
            voc_metrics=False,
        )  # fmt: skip
    out.protocol["dataset"] = {
        "root": opts.data_root,
        "train": opts.train_split,
        "test": opts.test_split,
    }
    return out
