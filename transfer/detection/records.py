"""The in-memory form every reader returns: one ``ImageRecord`` per image.

Boxes are float ``(x0, y0, x1, y1)`` in continuous pixel coordinates with the origin at the
image's top-left corner (torchvision's and COCO's convention). VOC's 1-based inclusive
integer corners convert with ``voc_to_xyxy`` (detectron2's rule: subtract 1 from the minimum
corner, keep the maximum), COCO's ``[x, y, w, h]`` with ``coco_to_xyxy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageRecord:
    image_id: int
    file: str  # absolute path of the image
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (K, 4)
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))  # (K,) 0-based
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))  # difficult / crowd
    segmentations: list = field(default_factory=list)  # COCO polygons or RLE, one per box
    name: str = ""  # VOC image id (file stem) or COCO file name


def voc_to_xyxy(xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, ...]:
    """VOC's 1-based inclusive pixel corners -> 0-based continuous ``(x0, y0, x1, y1)``.

    A box covering pixel columns 1..10 (VOC) covers [0, 10) in continuous coordinates.
    """
    return (xmin - 1.0, ymin - 1.0, float(xmax), float(ymax))


def xyxy_to_voc(x0: float, y0: float, x1: float, y1: float) -> tuple[int, ...]:
    """The inverse of ``voc_to_xyxy`` for integer-aligned boxes."""
    return (int(round(x0)) + 1, int(round(y0)) + 1, int(round(x1)), int(round(y1)))


def coco_to_xyxy(box: list[float]) -> tuple[float, ...]:
    x, y, w, h = box
    return (x, y, x + w, y + h)


def xyxy_to_coco(box: tuple[float, ...] | np.ndarray) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]
