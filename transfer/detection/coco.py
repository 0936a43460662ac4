"""COCO instances JSON (``<root>/annotations/instances_<split>.json`` and
``<root>/<split>/<file_name>``, e.g. ``train2017``/``val2017``), read through pycocotools.

Every image of the JSON is returned, also those without annotations (COCO's training set has
about a thousand; detectron2 filters them for training, the evaluator keeps them). Crowd
regions (``iscrowd 1``) are flagged in ``ignore``: they are not training targets and
pycocotools ignores detections matched to them. Category ids are mapped to contiguous labels
in id order.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from common.errors import UserError
from transfer.detection.records import ImageRecord, coco_to_xyxy

LAYOUT_HELP = (
    "expected the official layout <root>/annotations/instances_<split>.json and "
    "<root>/<split>/<image> (unzip annotations_trainval2017.zip, train2017.zip, val2017.zip "
    "in <root>)"
)


class COCOError(UserError, RuntimeError):
    """A COCO tree or JSON that does not follow the official format; names the file."""


def annotation_file(root: str | Path, split: str) -> Path:
    path = Path(root) / "annotations" / f"instances_{split}.json"
    if not path.is_file():
        raise COCOError(f"{path} not found; {LAYOUT_HELP}")
    return path


def load_coco(path: str | Path) -> COCO:
    """pycocotools' index of an instances JSON (its progress prints silenced)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as e:
        raise COCOError(f"{path} is not a COCO instances JSON: {e!r}") from e


def read_coco(root: str | Path, split: str) -> tuple[list[ImageRecord], list[dict], COCO]:
    """(records in image-id order, categories in id order, the pycocotools index)."""
    path = annotation_file(root, split)
    coco = load_coco(path)
    categories = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
    label_of = {c["id"]: i for i, c in enumerate(categories)}
    records = []
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        anns = coco.imgToAnns.get(image_id, [])
        boxes, labels, crowd, segs = [], [], [], []
        for a in anns:
            if a["category_id"] not in label_of:
                raise COCOError(f"{path}: annotation {a['id']} has unknown category")
            x0, y0, x1, y1 = coco_to_xyxy(a["bbox"])
            if x1 <= x0 or y1 <= y0:
                continue  # degenerate boxes are skipped, as detectron2 does
            boxes.append((x0, y0, x1, y1))
            labels.append(label_of[a["category_id"]])
            crowd.append(bool(a.get("iscrowd", 0)))
            segs.append(a.get("segmentation"))
        records.append(
            ImageRecord(
                image_id=image_id,
                file=str(Path(root) / split / info["file_name"]),
                width=int(info["width"]),
                height=int(info["height"]),
                boxes=np.array(boxes, np.float32).reshape(-1, 4),
                labels=np.array(labels, np.int64),
                ignore=np.array(crowd, bool),
                segmentations=segs,
                name=info["file_name"],
            )
        )
    return records, categories, coco


def write_coco(path: Path, images: list[dict], annotations: list[dict], categories: list[dict]):
    """Write an instances JSON (the ``info``/``licenses`` blocks included, as the official)."""
    doc = {
        "info": {"description": "siamhub", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
