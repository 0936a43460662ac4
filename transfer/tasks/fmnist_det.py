"""Detection on the embedded set: Fashion-MNIST items pasted on canvases
(``transfer/detection/fmnist_det.py``), generated once per seed and read back through the real
COCO reader (``format=coco``, COCO AP via pycocotools, plus VOC07 AP50) or the real VOC reader
(``format=voc``). A CPU-scale Faster R-CNN C4 schedule (``schedules.PRESETS["fmnist"]``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from transfer.detection.coco import read_coco
from transfer.detection.fmnist_det import FMNIST_CLASSES, FmnistDetSpec, generate
from transfer.detection.task import DetOptions, check_engine, run_torchvision
from transfer.detection.voc import read_voc
from transfer.features import FMNIST_ROOT
from transfer.models import LoadedModel
from transfer.tasks import OptionError, RunContext, TaskOutput

NAME = "fmnist_det"
DATA_HOME = Path(os.environ.get("SIAMHUB_DATA", Path.home() / ".cache" / "siamhub" / "data"))


@dataclass
class Options(DetOptions):
    schedule: str = "fmnist"
    anchor_sizes: tuple = (16, 32, 64)
    roi_resolution: int = 8
    rpn_batch_size_per_image: int = 128
    box_batch_size_per_image: int = 16
    rpn_pre_nms_top_n_train: int = 600
    rpn_post_nms_top_n_train: int = 150
    rpn_pre_nms_top_n_test: int = 300
    rpn_post_nms_top_n_test: int = 50
    workers: int = 0
    format: str = "coco"  # coco | voc: which real reader (and evaluator) the run uses
    masks: bool = False  # Mask R-CNN instead of Faster R-CNN (COCO format only)
    fmnist_root: str = FMNIST_ROOT
    data_dir: str = ""  # where the set is written; default $SIAMHUB_DATA/fmnist_det_s<seed>
    n_train: int = 1000
    n_test: int = 200
    data_seed: int = 0


def dataset(opts: Options) -> Path:
    spec = FmnistDetSpec(opts.fmnist_root, opts.n_train, opts.n_test, seed=opts.data_seed)
    out = Path(opts.data_dir) if opts.data_dir else DATA_HOME / f"fmnist_det_s{opts.data_seed}"
    return generate(spec, out)


def run(model: LoadedModel, opts: Options, ctx: RunContext) -> TaskOutput:
    check_engine(opts)
    if opts.engine != "torchvision":
        raise OptionError("fmnist_det runs on the torchvision engine (engine=torchvision)")
    root = dataset(opts)
    if opts.format == "coco":
        train, categories, _ = read_coco(root / "coco", "train")
        test, _, gt = read_coco(root / "coco", "val")
        out = run_torchvision(
            model, opts, ctx, train, test, len(categories), opts.masks, False, gt, categories
        )
    elif opts.format == "voc":
        if opts.masks:
            raise OptionError("masks=true needs format=coco (VOC XML has no instance masks)")
        train = read_voc(root / "voc", "voc_2007_trainval", FMNIST_CLASSES)
        test = read_voc(root / "voc", "voc_2007_test", FMNIST_CLASSES)
        out = run_torchvision(
            model, opts, ctx, train, test, len(FMNIST_CLASSES), False, True,
            class_names=FMNIST_CLASSES,
        )  # fmt: skip
    else:
        raise OptionError(f"format must be 'coco' or 'voc', got {opts.format!r}")
    out.protocol["dataset"] = {
        "name": "fmnist_det",
        "format": opts.format,
        "root": str(root),
        "train": "train (Fashion-MNIST train items)",
        "test": "val (Fashion-MNIST test items)",
        "n_train": opts.n_train,
        "n_test": opts.n_test,
        "data_seed": opts.data_seed,
    }
    return out
