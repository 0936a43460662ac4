"""The detection evaluators: perfect predictions, pycocotools parity, a hand-worked VOC07 AP."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from transfer.detection.coco import load_coco
from transfer.detection.evaluate import coco_evaluate, voc_ap_11point, voc_evaluate
from transfer.detection.records import ImageRecord

CATS = [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}]  # non-contiguous ids on purpose


def _gt_json(tmp_path: Path) -> Path:
    """Two 100×80 images; image 2 has a crowd region; image 3 has no objects."""

    def rle(box):
        m = np.zeros((80, 100), np.uint8)
        x, y, w, h = box
        m[y : y + h, x : x + w] = 1
        r = mask_utils.encode(np.asfortranarray(m))
        return {"size": r["size"], "counts": r["counts"].decode()}

    boxes = [(1, 3, [10, 10, 30, 20], 0), (1, 7, [50, 30, 20, 40], 0), (2, 3, [5, 5, 40, 40], 0),
             (2, 7, [60, 10, 30, 30], 1)]  # fmt: skip
    anns = [
        {"id": i + 1, "image_id": im, "category_id": c, "bbox": b, "area": b[2] * b[3],
         "iscrowd": crowd, "segmentation": rle(b)}
        for i, (im, c, b, crowd) in enumerate(boxes)
    ]  # fmt: skip
    doc = {
        "images": [
            {"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 80} for i in (1, 2, 3)
        ],
        "annotations": anns,
        "categories": CATS,
    }
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(doc))
    return path


def _perfect(gt) -> list[dict]:
    label = {c["id"]: i for i, c in enumerate(CATS)}
    out = []
    for a in gt.dataset["annotations"]:
        if a["iscrowd"]:
            continue
        x, y, w, h = a["bbox"]
        out.append(
            {
                "image_id": a["image_id"],
                "label": label[a["category_id"]],
                "box": [x, y, x + w, y + h],
                "score": 0.9,
                "segmentation": a["segmentation"],
            }
        )
    return out


def test_perfect_predictions_give_coco_ap_1(tmp_path: Path) -> None:
    gt = load_coco(_gt_json(tmp_path))
    dets = _perfect(gt)
    box = coco_evaluate(gt, dets, CATS, "bbox")
    segm = coco_evaluate(gt, dets, CATS, "segm")
    for m in (box, segm):
        assert m["AP"] == pytest.approx(100.0)
        assert m["AP50"] == pytest.approx(100.0)
        assert m["AP75"] == pytest.approx(100.0)


def test_perfect_predictions_give_voc_ap_1() -> None:
    records = [
        ImageRecord(0, "a.jpg", 100, 80, np.array([[0, 0, 10, 20], [30, 30, 60, 50]], np.float32),
                    np.array([0, 1]), np.array([False, False])),
        ImageRecord(1, "b.jpg", 100, 80, np.array([[5, 5, 25, 25]], np.float32), np.array([0]),
                    np.array([False])),
        ImageRecord(2, "c.jpg", 100, 80),  # no objects
    ]  # fmt: skip
    dets = [{"image_id": r.image_id, "label": int(c), "box": b.tolist(), "score": 1.0}
            for r in records for b, c in zip(r.boxes, r.labels, strict=True)]  # fmt: skip
    result = voc_evaluate(records, dets, 2)
    assert result == pytest.approx({"AP": 100.0, "AP50": 100.0, "AP75": 100.0})


def test_known_detections_give_pycocotools_ap(tmp_path: Path) -> None:
    """Our label/box conversion feeds COCOeval exactly what a hand-written results file does."""
    gt = load_coco(_gt_json(tmp_path))
    # (image, label, xyxy, score): a hit, a loose hit, a miss, a duplicate, one on the crowd
    ours = [
        (1, 0, [10, 10, 40, 30], 0.9), (1, 1, [52, 33, 70, 70], 0.8),
        (1, 0, [70, 60, 90, 75], 0.95),
        (2, 0, [6, 4, 44, 46], 0.7), (2, 0, [5, 5, 45, 45], 0.6), (2, 1, [60, 10, 90, 40], 0.99),
        (3, 1, [0, 0, 20, 20], 0.5),
    ]  # fmt: skip
    dets = [{"image_id": i, "label": c, "box": b, "score": s} for i, c, b, s in ours]
    got = coco_evaluate(gt, dets, CATS, "bbox")
    by_hand = [
        {"image_id": i, "category_id": CATS[c]["id"],
         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s}
        for i, c, b, s in ours
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(by_hand), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert got["AP"] == pytest.approx(100 * ev.stats[0])
    assert got["AP50"] == pytest.approx(100 * ev.stats[1])
    assert got["AP75"] == pytest.approx(100 * ev.stats[2])
    assert 0 < got["AP"] < 100  # neither trivial case


def test_one_hit_below_a_false_positive_gives_coco_ap_half(tmp_path: Path) -> None:
    """One object, a false positive scored above the exact hit: precision 1/2 at every recall."""
    doc = {
        "images": [{"id": 1, "file_name": "1.jpg", "width": 100, "height": 100}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 50, 50],
                         "area": 2500, "iscrowd": 0}],
        "categories": [CATS[0]],
    }  # fmt: skip
    path = tmp_path / "one.json"
    path.write_text(json.dumps(doc))
    gt = load_coco(path)
    dets = [
        {"image_id": 1, "label": 0, "box": [70, 70, 90, 90], "score": 0.9},
        {"image_id": 1, "label": 0, "box": [10, 10, 60, 60], "score": 0.5},
    ]
    assert coco_evaluate(gt, dets, [CATS[0]], "bbox")["AP"] == pytest.approx(50.0)


def test_voc07_hand_worked_example() -> None:
    """3 counted objects of class 0 (plus a difficult one). Detections by score:
    d1 TP, d2 FP, d3 TP, d4 on the difficult object (ignored), d5 duplicate of d1 (FP).
    Recall/precision: (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 2/4). 11-point: thresholds
    0..0.3 -> 1 (4 points), 0.4..0.6 -> 2/3 (3 points), 0.7..1.0 -> 0: AP = 6/11."""
    records = [
        ImageRecord(0, "a.jpg", 200, 200,
                    np.array([[0, 0, 50, 50], [100, 100, 150, 150], [60, 0, 90, 30]], np.float32),
                    np.array([0, 0, 0]), np.array([False, False, True])),
        ImageRecord(1, "b.jpg", 200, 200, np.array([[10, 10, 60, 60]], np.float32), np.array([0]),
                    np.array([False])),
    ]  # fmt: skip
    dets = [
        {"image_id": 0, "label": 0, "box": [0, 0, 50, 50], "score": 0.9},  # TP
        {"image_id": 1, "label": 0, "box": [120, 120, 180, 180], "score": 0.8},  # FP
        {"image_id": 1, "label": 0, "box": [12, 10, 60, 62], "score": 0.7},  # TP (IoU 0.88)
        {"image_id": 0, "label": 0, "box": [60, 0, 90, 30], "score": 0.65},  # difficult
        {"image_id": 0, "label": 0, "box": [1, 1, 50, 50], "score": 0.6},  # duplicate: FP
    ]
    result = voc_evaluate(records, dets, 1)
    assert result["AP50"] == pytest.approx(100 * 6 / 11)


def test_voc_ap_11point_curve() -> None:
    recall = np.array([0.5, 1.0])
    precision = np.array([1.0, 0.5])
    # thresholds 0..0.5 (6 points) -> 1.0; 0.6..1.0 (5 points) -> 0.5
    assert voc_ap_11point(recall, precision) == pytest.approx((6 + 2.5) / 11)
