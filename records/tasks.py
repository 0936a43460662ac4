"""The task registry, defined once: every kind of result record, the metric keys a record of
it must hold (as numbers) and the metric its board ranks by.

``required`` is a tuple of alternatives: each entry is satisfied when at least one of its keys
holds a number (low-shot: the 1% or the 10% subset). Transfer and pretraining records hold
their metrics under ``metrics`` (per seed under ``metrics.per_seed`` for a multi-seed run); a
collapse-ablation record holds its numbers at the top level.

A sweep point is not a task of its own: it writes a ``pretrain`` record and one record per
transfer task, each carrying the sweep's ``sweep`` block.

Detection metric names: ``box_*`` / ``mask_*`` are COCO-style AP (pycocotools); ``voc07_*`` the
VOC metric (AP50: VOC2007 11-point AP at IoU 0.5; AP: its mean over IoU 0.50:0.95; AP75 at
0.75), the numbers the papers report for VOC (SimSiam Table 5, MoCo Table 2). A VOC board
ranks by VOC AP50. detectron2's evaluators name them ``bbox_*`` / ``segm_*``: ``aliases``
maps those prefixes to the registry's names (``canonical_metrics``), and their NaN (where
pycocotools has no value: no ground truth in an area range or of a category) to None, as
``transfer/detection/evaluate.py`` records it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from records.errors import RecordError


@dataclass(frozen=True)
class TaskSpec:
    """One kind of record: its name, kind, required metrics and primary metric."""

    name: str
    kind: str  # "transfer", "pretrain" or "ablation"
    required: tuple[tuple[str, ...], ...]  # each: at least one of these keys is a number
    primary: str  # what its board ranks by (best first)
    aliases: tuple[tuple[str, str], ...] = ()  # (foreign prefix, registry prefix)
    optional: tuple[str, ...] = ()  # metrics a record may hold besides (boards show them)


DETECTRON2_COCO = (("bbox_", "box_"), ("segm_", "mask_"))
TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        # raw_pixels_top1_k*: kNN on the flattened pixels (fashion_mnist), the board's baseline
        TaskSpec(
            "knn",
            "transfer",
            (("top1_k20",),),
            "top1_k20",
            optional=("raw_pixels_top1_k20", "raw_pixels_top1_k200"),
        ),
        TaskSpec("linear", "transfer", (("top1",),), "top1"),
        TaskSpec("lowshot", "transfer", (("top1_1pct", "top1_10pct"),), "top1_1pct"),
        # the embedded set in COCO format gives box AP and VOC07 AP; in VOC format only VOC07
        TaskSpec("fmnist_det", "transfer", (("box_AP", "voc07_AP50"),), "box_AP", DETECTRON2_COCO),
        TaskSpec(
            "voc_det",
            "transfer",
            (("voc07_AP50",), ("voc07_AP",), ("voc07_AP75",)),
            "voc07_AP50",
            (("bbox_", "voc07_"),),  # detectron2's PascalVOCDetectionEvaluator on VOC2007
        ),
        TaskSpec(
            "coco_det",
            "transfer",
            (("box_AP",), ("box_AP50",), ("box_AP75",)),
            "box_AP",
            DETECTRON2_COCO,
        ),
        TaskSpec("pretrain", "pretrain", (("loss",), ("z_std_sqrt_d",)), "loss"),
        TaskSpec(
            "ablation",
            "ablation",
            tuple(
                (k,)
                for k in ("z_std_sqrt_d", "effective_rank", "m_o", "knn_z", "knn_h", "init_knn_h")
            ),
            "z_std_sqrt_d",
        ),
    )
}
TRANSFER_TASKS = tuple(name for name, t in TASKS.items() if t.kind == "transfer")
KNOWN_TASKS = tuple(sorted(TASKS))
DETECTION_TASKS = ("fmnist_det", "voc_det", "coco_det")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def get(name: str) -> TaskSpec:
    """The registry entry of ``name``; an unknown task names the known ones."""
    if name not in TASKS:
        raise RecordError(f"unknown task {name!r} (known: {', '.join(KNOWN_TASKS)})")
    return TASKS[name]


def canonical_metrics(task: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` under the registry's names: a foreign prefix (detectron2's ``bbox_``) is
    renamed unless the registry's name is there already, its NaN ("no value") becoming None;
    everything else is kept as is."""
    out = dict(metrics)
    for foreign, ours in get(task).aliases:
        for key in list(out):
            name = ours + key[len(foreign) :]
            if key.startswith(foreign) and name not in out:
                value = out.pop(key)
                nan = isinstance(value, float) and math.isnan(value)
                out[name] = None if nan else value
    return out
