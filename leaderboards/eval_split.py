"""The evaluation split of a record as a board or detail page shows it (``records.splits``).

A split the run trained on, or one named as a training split (COCO ``train2017``, VOC
``trainval``), is shown in bold with "a training split": its numbers are not held-out
numbers, and a reader must see that on the row itself.
"""

from __future__ import annotations

from typing import Any

from records.splits import evaluated_on

NOT_STATED = "not stated"
TRAINING_NOTE = (
    "Bold in *evaluated on*: a training split, data the model was fine-tuned on or a split "
    "named as one (COCO `train2017`, VOC `trainval`); those numbers are not held-out numbers."
)


def split_cell(data: dict[str, Any]) -> str:
    """``fashion_mnist test (10000 images)``; ``**coco train2017 (4 images), a training
    split**``; ``not stated`` for a record whose protocol does not say; ``–`` for a record
    that is not a transfer measurement."""
    found = evaluated_on(data.get("task"), data.get("protocol"))
    if found is None:
        return NOT_STATED if data.get("task") not in ("pretrain", "ablation") else "–"
    return f"**{found.label()}**" if found.training else found.label()


def on_training_split(data: dict[str, Any]) -> bool:
    found = evaluated_on(data.get("task"), data.get("protocol"))
    return bool(found and found.training)
