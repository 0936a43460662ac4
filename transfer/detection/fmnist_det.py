"""The embedded detection set: Fashion-MNIST items pasted on larger canvases, with known boxes
and masks, written both as a PASCAL VOC tree and as a COCO tree so that both real readers run.

Per image (deterministic in ``seed``): 0 to ``max_items`` items (about 5% of canvases stay
empty, as COCO has images without objects), each a Fashion-MNIST image from the matching split
rescaled to a random size in ``[min_size, max_size]`` px and pasted (pixel-wise max) at a
position whose box overlaps earlier boxes by IoU < 0.3. The box is the tight box of the
item's pixels above ``threshold``; the mask is those pixels. Train canvases use items of
Fashion-MNIST's train split, test canvases items of its test split.

Layout written under ``out``:
``voc/VOCdevkit/VOC2007/{Annotations,ImageSets/Main/{trainval,test}.txt,JPEGImages}`` and
``coco/{annotations/instances_{train,val}.json, train/, val/}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as mask_utils

from common.datasets import load_fashion_mnist
from common.progress import progress
from transfer.detection.coco import write_coco
from transfer.detection.records import xyxy_to_coco
from transfer.detection.voc import write_annotation

FMNIST_CLASSES = (
    "tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
    "ankle_boot",
)  # fmt: skip
SPLITS = {"train": ("train", "trainval"), "test": ("val", "test")}  # ours: (coco, voc)


@dataclass(frozen=True)
class FmnistDetSpec:
    """Everything the generated set depends on (stored beside it; a change regenerates)."""

    fmnist_root: str
    n_train: int = 1000
    n_test: int = 200
    canvas: int = 96
    max_items: int = 3
    min_size: int = 20
    max_size: int = 44
    threshold: int = 40
    empty_fraction: float = 0.05
    seed: int = 0
    version: int = 1


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0


def compose_canvas(
    items: torch.Tensor, labels: torch.Tensor, spec: FmnistDetSpec, rng: np.random.Generator
) -> tuple[np.ndarray, list[dict]]:
    """One canvas ``(canvas, canvas)`` uint8 and its objects (box xyxy, label, mask)."""
    canvas = np.zeros((spec.canvas, spec.canvas), np.uint8)
    objects: list[dict] = []
    n = 0 if rng.random() < spec.empty_fraction else int(rng.integers(1, spec.max_items + 1))
    for _ in range(n):
        k = int(rng.integers(len(items)))
        size = int(rng.integers(spec.min_size, spec.max_size + 1))
        item = (
            F.interpolate(
                items[k : k + 1].float(), size=(size, size), mode="bilinear", antialias=True
            )[0, 0]
            .round()
            .clamp(0, 255)
            .byte()
            .numpy()
        )  # (size, size)
        fg = item > spec.threshold
        if not fg.any():
            continue
        ys, xs = np.nonzero(fg)
        for _attempt in range(20):
            x = int(rng.integers(0, spec.canvas - size + 1))
            y = int(rng.integers(0, spec.canvas - size + 1))
            box = np.array([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1], float)
            if all(_iou(box, o["box"]) < 0.3 for o in objects):
                break
        else:
            continue
        region = canvas[y : y + size, x : x + size]
        np.maximum(region, item, out=region)
        mask = np.zeros_like(canvas, dtype=bool)
        mask[y : y + size, x : x + size] = fg
        for o in objects:  # a later item drawn over an earlier one hides part of its mask
            o["mask"] &= ~mask
        objects.append({"box": box, "label": int(labels[k]), "mask": mask})
    return canvas, objects


def generate(spec: FmnistDetSpec, out: Path) -> Path:
    """Write the set under ``out`` (skipped when ``out`` already holds this exact spec)."""
    stamp = out / "spec.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == asdict(spec):
        return out
    rng = np.random.default_rng(spec.seed)
    categories = [
        {"id": i + 1, "name": n, "supercategory": "fashion"} for i, n in enumerate(FMNIST_CLASSES)
    ]
    for split, count in (("train", spec.n_train), ("test", spec.n_test)):
        coco_split, voc_split = SPLITS[split]
        items, labels = load_fashion_mnist(spec.fmnist_root, split)
        voc_dir = out / "voc" / "VOCdevkit" / "VOC2007"
        (voc_dir / "JPEGImages").mkdir(parents=True, exist_ok=True)
        (out / "coco" / coco_split).mkdir(parents=True, exist_ok=True)
        images, annotations, ids = [], [], []
        for i in progress(range(count), desc=f"fmnist_det {split}", leave=False):
            canvas, objects = compose_canvas(items, labels, spec, rng)
            name = f"{split}_{i:06d}"
            image = Image.fromarray(canvas, mode="L")
            image.save(voc_dir / "JPEGImages" / f"{name}.jpg", quality=95)
            image.save(out / "coco" / coco_split / f"{name}.jpg", quality=95)
            ids.append(name)
            write_annotation(
                voc_dir / "Annotations" / f"{name}.xml",
                name,
                "VOC2007",
                spec.canvas,
                spec.canvas,
                [{"name": FMNIST_CLASSES[o["label"]], "box": o["box"]} for o in objects],
            )
            image_id = i + 1
            images.append(
                {"id": image_id, "file_name": f"{name}.jpg", "width": spec.canvas,
                 "height": spec.canvas}
            )  # fmt: skip
            for o in objects:
                rle = mask_utils.encode(np.asfortranarray(o["mask"].astype(np.uint8)))
                annotations.append(
                    {
                        "id": len(annotations) + 1 + (0 if split == "train" else 10**7),
                        "image_id": image_id,
                        "category_id": o["label"] + 1,
                        "bbox": xyxy_to_coco(o["box"]),
                        "area": float(mask_utils.area(rle)),
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                        "iscrowd": 0,
                    }
                )
        main = voc_dir / "ImageSets" / "Main"
        main.mkdir(parents=True, exist_ok=True)
        (main / f"{voc_split}.txt").write_text("\n".join(ids) + "\n")
        write_coco(
            out / "coco" / "annotations" / f"instances_{coco_split}.json",
            images,
            annotations,
            categories,
        )
    stamp.write_text(json.dumps(asdict(spec), indent=2) + "\n")
    return out
