"""A detection run's metrics and the raw predictions they were computed from, as the files an
audit reads (``transfer/artifacts.py``):

- ``coco_detections.json``: the exact results list pycocotools' COCOeval evaluated
  (``{image_id, category_id, bbox [x, y, w, h], score}``, plus an RLE ``segmentation`` for
  Mask R-CNN); ``COCOeval(gt, gt.loadRes(list), "bbox")`` gives the recorded ``box_*``.
- ``voc_detections.json``: ``{class name: [[image, score, xmin, ymin, xmax, ymax], ...]}``, each
  class's detections in the order the VOC07 evaluator ranked them (score descending, ties in
  detection order), in the VOC devkit's convention: 1-based pixel corners (``xmin = x0 + 1``,
  ``ymin = y0 + 1``, ``xmax = x1``, ``ymax = y1`` of the continuous box; detectron2's comp4
  files), ``image`` the VOC image id (a COCO-read set: its file name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transfer.detection.evaluate import coco_evaluate_results, coco_results, voc_evaluate
from transfer.detection.records import ImageRecord

COCO_FILE = "coco_detections.json"
VOC_FILE = "voc_detections.json"


def voc_class_detections(
    records: Sequence[ImageRecord], detections: Sequence[dict], class_names: Sequence[str]
) -> dict[str, list[list]]:
    """Per class, ``[image, score, xmin, ymin, xmax, ymax]`` rows (VOC devkit convention)."""
    image_of = {r.image_id: r.name or str(r.image_id) for r in records}
    rows: dict[str, list[list]] = {name: [] for name in class_names}
    for d in sorted(detections, key=lambda d: -d["score"]):  # stable: the evaluator's order
        x0, y0, x1, y1 = (float(v) for v in d["box"])
        rows[class_names[int(d["label"])]].append(
            [image_of[int(d["image_id"])], float(d["score"]), x0 + 1.0, y0 + 1.0, x1, y1]
        )
    return rows


def detectron2_voc_rows(
    per_rank: Sequence[Mapping[int, list[str]]], class_names: Sequence[str]
) -> dict[str, list[list]]:
    """detectron2's PascalVOCDetectionEvaluator predictions (per rank, class id -> lines
    ``"<image id> <score> <xmin> <ymin> <xmax> <ymax>"``, already 1-based) as the rows of
    ``voc_detections.json``, in the ranks' order (what its evaluation reads)."""
    rows: dict[str, list[list]] = {name: [] for name in class_names}
    for predictions in per_rank:
        for cls, lines in predictions.items():
            for line in lines:
                image, score, *box = line.split()
                rows[class_names[int(cls)]].append([image, float(score), *map(float, box)])
    return rows


def score_detections(
    test_records: Sequence[ImageRecord],
    detections: Sequence[dict],
    class_names: Sequence[str],
    coco_gt: Any = None,
    categories: list[dict] | None = None,
    masks: bool = False,
    voc_metrics: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, artifacts): COCO AP from pycocotools on the saved results list when
    ``coco_gt`` is given, VOC07 AP50 (and AP over IoU .50:.95) when ``voc_metrics``."""
    metrics: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    if coco_gt is not None:
        results = coco_results(detections, categories or [])
        ids = [r.image_id for r in test_records]
        box = coco_evaluate_results(coco_gt, results, "bbox", ids)
        metrics.update({f"box_{k}": v for k, v in box.items()})
        if masks:
            segm = coco_evaluate_results(coco_gt, results, "segm", ids)
            metrics.update({f"mask_{k}": v for k, v in segm.items()})
        artifacts[COCO_FILE] = results
    if voc_metrics:
        voc = voc_evaluate(test_records, detections, len(class_names))
        metrics.update({f"voc07_{k}": v for k, v in voc.items()})
        artifacts[VOC_FILE] = voc_class_detections(test_records, detections, class_names)
    return metrics, artifacts
