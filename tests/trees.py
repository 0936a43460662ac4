"""Tiny detection data sets in the exact official layouts, written by the tests.

- PASCAL VOC: ``VOCdevkit/VOC2007`` and ``VOCdevkit/VOC2012``, each with ``Annotations/<id>.xml``
  (the devkit's XML, 1-based inclusive corners), ``ImageSets/Main/<split>.txt`` and
  ``JPEGImages/<id>.jpg``.
- COCO: ``annotations/instances_{train,val}2017.json`` (images, annotations with polygon
  segmentation, categories with COCO's non-contiguous ids) and ``train2017/``, ``val2017/``
  holding ``<12-digit id>.jpg``.

The images are 64 px gray canvases with bright rectangles where the objects are, so a detector
has something to find in a few iterations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from transfer.detection.voc import VOC_CLASSES, write_annotation

SIZE = 64
COCO_CATEGORIES = [
    {"id": 1, "name": "person"},
    {"id": 18, "name": "dog"},
    {"id": 44, "name": "bottle"},
]


def _canvas(rng: np.random.Generator, n_objects: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """A gray canvas and ``n_objects`` bright boxes on it, as 0-based ``(x0, y0, x1, y1)``."""
    img = rng.integers(0, 50, size=(SIZE, SIZE)).astype(np.uint8)
    boxes = []
    for k in range(n_objects):
        w, h = (int(v) for v in rng.integers(14, 28, size=2))
        x0, y0 = int(rng.integers(0, SIZE - w)), int(rng.integers(0, SIZE - h))
        img[y0 : y0 + h, x0 : x0 + w] = 140 + 40 * (k % 3)
        boxes.append((x0, y0, x0 + w, y0 + h))
    return img, boxes


def write_voc_tree(root: Path, per_split: int = 4, seed: int = 0) -> Path:
    """``root/VOCdevkit/VOC2007`` (trainval, test) and ``VOC2012`` (trainval); the second
    object of every test image is marked difficult. Returns ``root`` (the task's data_root)."""
    rng = np.random.default_rng(seed)
    splits = {"VOC2007": ("trainval", "test"), "VOC2012": ("trainval",)}
    n = 0
    for year, names in splits.items():
        base = root / "VOCdevkit" / year
        (base / "JPEGImages").mkdir(parents=True, exist_ok=True)
        (base / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        for split in names:
            ids = []
            for _ in range(per_split):
                n += 1
                image_id = f"{year[3:]}_{n:06d}" if year == "VOC2012" else f"{n:06d}"
                ids.append(image_id)
                img, boxes = _canvas(rng, 2)
                Image.fromarray(img).convert("RGB").save(base / "JPEGImages" / f"{image_id}.jpg")
                objects = [
                    {
                        "name": VOC_CLASSES[(n + k) % 3],
                        "box": box,
                        "difficult": split == "test" and k == 1,
                    }
                    for k, box in enumerate(boxes)
                ]
                write_annotation(
                    base / "Annotations" / f"{image_id}.xml", image_id, year, SIZE, SIZE, objects
                )
            (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def write_coco_tree(root: Path, per_split: int = 4, seed: int = 1) -> Path:
    """``root/annotations/instances_{train,val}2017.json`` and the two image folders."""
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    next_image, next_ann = 1, 1
    for split in ("train2017", "val2017"):
        (root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for _ in range(per_split):
            image = {
                "id": next_image,
                "file_name": f"{next_image:012d}.jpg",
                "width": SIZE,
                "height": SIZE,
            }
            img, boxes = _canvas(rng, 2)
            Image.fromarray(img).convert("RGB").save(root / split / image["file_name"])
            for k, (x0, y0, x1, y1) in enumerate(boxes):
                annotations.append(
                    {
                        "id": next_ann,
                        "image_id": next_image,
                        "category_id": COCO_CATEGORIES[(next_image + k) % 3]["id"],
                        "bbox": [x0, y0, x1 - x0, y1 - y0],  # COCO: x, y, width, height
                        "area": (x1 - x0) * (y1 - y0),
                        "iscrowd": 0,
                        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                    }
                )
                next_ann += 1
            images.append(image)
            next_image += 1
        doc = {
            "info": {"description": "tiny test set"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": COCO_CATEGORIES,
        }
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root
