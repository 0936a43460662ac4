"""PASCAL VOC detection, the MoCo protocol (docs/recipes.md, "Detection transfer"): Faster
R-CNN R50-C4 fine-tuned on ``voc_2007_trainval`` + ``voc_2012_trainval``, evaluated on
``voc_2007_test`` with the VOC07 11-point AP50 and COCO-style AP/AP75; 24k iterations at
batch 16 (``schedule=voc_24k``), scaled by ``batch_size``. ``--seeds 5`` reports the mean ± std
of five runs (the papers').
``data_root`` holds ``VOCdevkit/VOC2007`` and ``VOCdevkit/VOC2012``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from transfer.detection import engine_detectron2
from transfer.detection.task import DetOptions, check_engine, run_torchvision
from transfer.detection.voc import VOC_CLASSES, read_voc
from transfer.models import LoadedModel
from transfer.tasks import RunContext, TaskOutput

NAME = "voc_det"


@dataclass
class Options(DetOptions):
    data_root: str = os.environ.get("VOC_ROOT", "datasets/voc")
    train_sets: tuple = ("voc_2007_trainval", "voc_2012_trainval")
    test_set: str = "voc_2007_test"
    schedule: str = "voc_24k"


def run(model: LoadedModel, opts: Options, ctx: RunContext) -> TaskOutput:
    check_engine(opts)
    if opts.engine == "detectron2":
        out = engine_detectron2.run(model, opts, ctx, "voc")
    else:
        train = [r for name in opts.train_sets for r in read_voc(opts.data_root, name)]
        for i, r in enumerate(train):
            r.image_id = i  # unique over 2007 + 2012
        test = read_voc(opts.data_root, opts.test_set)
        out = run_torchvision(
            model, opts, ctx, train, test, len(VOC_CLASSES), False, True, class_names=VOC_CLASSES
        )
    out.protocol["dataset"] = {
        "root": opts.data_root,
        "train": list(opts.train_sets),
        "test": opts.test_set,
    }
    return out
