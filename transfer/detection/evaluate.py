"""The papers' detection metrics.

- COCO: AP (IoU 0.50:0.95), AP50, AP75 for boxes and masks, computed by pycocotools' COCOeval
  itself (the official implementation) from the ground-truth JSON and a list of detections.
- PASCAL VOC: per-class AP at IoU 0.5 with the VOC2007 11-point interpolated precision
  (``use_07_metric``), difficult objects neither counted nor penalized; the mean over classes
  is AP50. As detectron2's PascalVOCDetectionEvaluator (which the MoCo and SimSiam tables use),
  AP is the mean of that AP over IoU thresholds 0.50:0.05:0.95 and AP75 the one at 0.75.

Detections are ``{"image_id", "label" (0-based), "box" (xyxy, continuous), "score"}``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from transfer.detection.records import ImageRecord, xyxy_to_coco

COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def coco_results(detections: Sequence[dict], categories: list[dict]) -> list[dict]:
    """pycocotools' results format: ``{image_id, category_id, bbox [x, y, w, h], score}``
    (and ``segmentation`` where a detection has one), 0-based labels mapped back to
    ``categories``' ids. The list is what the evaluation reads and what a run saves."""
    results = []
    for d in detections:
        r = {
            "image_id": int(d["image_id"]),
            "category_id": int(categories[int(d["label"])]["id"]),
            "bbox": xyxy_to_coco(d["box"]),
            "score": float(d["score"]),
        }
        if "segmentation" in d:
            r["segmentation"] = d["segmentation"]
        results.append(r)
    return results


def coco_evaluate(
    gt: COCO,
    detections: Sequence[dict],
    categories: list[dict],
    iou_type: str = "bbox",
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO AP/AP50/AP75/APs/APm/APl in percent (pycocotools COCOeval); None for an area
    range without ground truth.

    ``detections`` carry 0-based labels, mapped back to ``categories``' ids; for
    ``iou_type="segm"`` each also carries a ``segmentation`` (RLE).
    """
    return coco_evaluate_results(gt, coco_results(detections, categories), iou_type, image_ids)


def coco_evaluate_results(
    gt: COCO,
    results: Sequence[dict],
    iou_type: str = "bbox",
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """``coco_evaluate`` of results already in pycocotools' format (``coco_results``); the
    list is not modified (``loadRes`` adds fields to what it is given, so it gets copies)."""
    if not results:
        return {k: 0.0 for k in COCO_STATS}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in results])
        ev = COCOeval(gt, dt, iou_type)
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # pycocotools reports -1 where no ground truth falls in an area range: no value, not 0
    return {
        k: float(v) * 100.0 if v >= 0 else None
        for k, v in zip(COCO_STATS, ev.stats[:6], strict=True)
    }


def voc_ap_11point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 11-point AP: the mean over r in {0, 0.1, ..., 1} of max precision at recall ≥ r."""
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        p = precision[recall >= t].max() if np.any(recall >= t) else 0.0
        ap += p / 11.0
    return float(ap)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU ``(K,)`` of one xyxy box with ``boxes (K, 4)`` in continuous coordinates."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, np.finfo(np.float64).eps)


def voc_class_ap(
    records: Sequence[ImageRecord], detections: Sequence[dict], label: int, iou: float
) -> float | None:
    """VOC07 AP of one class at one IoU threshold; None when the class has no objects."""
    gts = {}
    npos = 0
    for r in records:
        keep = r.labels == label
        gts[r.image_id] = {
            "boxes": r.boxes[keep].astype(np.float64),
            "difficult": r.ignore[keep],
            "used": np.zeros(int(keep.sum()), bool),
        }
        npos += int((~r.ignore[keep]).sum())
    if npos == 0:
        return None
    dets = sorted((d for d in detections if int(d["label"]) == label), key=lambda d: -d["score"])
    tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
    for i, d in enumerate(dets):
        g = gts.get(int(d["image_id"]))
        if g is None or len(g["boxes"]) == 0:
            fp[i] = 1
            continue
        overlaps = box_iou(np.asarray(d["box"], np.float64), g["boxes"])
        j = int(overlaps.argmax())
        if overlaps[j] >= iou:
            if g["difficult"][j]:
                continue  # neither a true nor a false positive
            if not g["used"][j]:
                tp[i], g["used"][j] = 1, True
            else:
                fp[i] = 1  # a duplicate detection
        else:
            fp[i] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap_11point(recall, precision)


def voc_evaluate(
    records: Sequence[ImageRecord], detections: Sequence[dict], num_classes: int
) -> dict[str, float]:
    """AP50 (VOC07 11-point), AP75 and AP (mean over IoU 0.50:0.95), in percent."""
    per_iou = {}
    for t in range(50, 100, 5):
        aps = [voc_class_ap(records, detections, c, t / 100) for c in range(num_classes)]
        aps = [a for a in aps if a is not None]
        per_iou[t] = 100.0 * float(np.mean(aps)) if aps else 0.0
    return {"AP": float(np.mean(list(per_iou.values()))), "AP50": per_iou[50], "AP75": per_iou[75]}
