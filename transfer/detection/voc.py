"""PASCAL VOC in its official layout, read and written.

``<root>/VOCdevkit/VOC2007/{Annotations/<id>.xml, ImageSets/Main/<split>.txt,
JPEGImages/<id>.jpg}`` (and ``VOC2012``). Dataset names follow detectron2's:
``voc_2007_trainval``, ``voc_2012_trainval``, ``voc_2007_test``; the MoCo protocol trains on
07+12 trainval and tests on 07 test (docs/recipes.md, "Detection transfer"). Boxes are
1-based inclusive pixel corners in the XML and 0-based continuous ``xyxy`` in memory;
``<difficult>1</difficult>`` objects are kept and flagged (the VOC evaluator ignores them).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from common.errors import UserError
from transfer.detection.records import ImageRecord, voc_to_xyxy, xyxy_to_voc

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
VOC_SPLITS = {
    "voc_2007_trainval": ("VOC2007", "trainval"),
    "voc_2012_trainval": ("VOC2012", "trainval"),
    "voc_2007_test": ("VOC2007", "test"),
}
LAYOUT_HELP = (
    "expected the official layout <root>/VOCdevkit/VOC2007/{Annotations,ImageSets/Main,"
    "JPEGImages} (tar xf VOCtrainval_06-Nov-2007.tar VOCtest_06-Nov-2007.tar "
    "VOCtrainval_11-May-2012.tar in <root>)"
)


class VOCError(UserError, RuntimeError):
    """A VOC tree or file that does not follow the official layout; names the file."""


def year_dir(root: str | Path, year: str) -> Path:
    root = Path(root)
    for candidate in (root / "VOCdevkit" / year, root / year):
        if candidate.is_dir():
            return candidate
    raise VOCError(f"{year} not found under {root}; {LAYOUT_HELP}")


def parse_annotation(path: Path, classes: tuple[str, ...]) -> dict:
    """One Annotations/<id>.xml: size, and boxes/labels/difficult of its objects."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as e:
        raise VOCError(f"cannot parse {path}: {e}") from e
    ann = tree.getroot()
    size = ann.find("size")
    if size is None:
        raise VOCError(f"{path} has no <size>; a VOC annotation lists width and height")
    boxes, labels, difficult = [], [], []
    for obj in ann.findall("object"):
        name = obj.findtext("name", "").strip()
        if name not in classes:
            raise VOCError(f"{path}: class {name!r} is not one of the dataset's classes {classes}")
        bb = obj.find("bndbox")
        if bb is None:
            raise VOCError(f"{path}: object {name!r} has no <bndbox>")
        corners = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        boxes.append(voc_to_xyxy(*corners))
        labels.append(classes.index(name))
        difficult.append(int(obj.findtext("difficult", "0") or 0) == 1)
    return {
        "width": int(size.findtext("width")),
        "height": int(size.findtext("height")),
        "boxes": np.array(boxes, np.float32).reshape(-1, 4),
        "labels": np.array(labels, np.int64),
        "difficult": np.array(difficult, bool),
    }


def read_voc(
    root: str | Path, name: str, classes: tuple[str, ...] = VOC_CLASSES
) -> list[ImageRecord]:
    """The images of ``name`` (e.g. ``voc_2007_test``), in the split file's order."""
    if name not in VOC_SPLITS:
        raise VOCError(f"unknown VOC dataset {name!r}; available: {', '.join(VOC_SPLITS)}")
    year, split = VOC_SPLITS[name]
    base = year_dir(root, year)
    split_file = base / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise VOCError(f"{split_file} not found; {LAYOUT_HELP}")
    records = []
    for i, image_id in enumerate(split_file.read_text().split()):
        ann = parse_annotation(base / "Annotations" / f"{image_id}.xml", classes)
        records.append(
            ImageRecord(
                image_id=i,
                file=str(base / "JPEGImages" / f"{image_id}.jpg"),
                width=ann["width"],
                height=ann["height"],
                boxes=ann["boxes"],
                labels=ann["labels"],
                ignore=ann["difficult"],
                name=image_id,
            )
        )
    return records


def write_annotation(
    path: Path, image_id: str, folder: str, width: int, height: int, objects: list[dict]
) -> None:
    """Write one Annotations/<id>.xml; ``objects``: ``{"name", "box" (xyxy), "difficult"}``."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = folder
    ET.SubElement(ann, "filename").text = f"{image_id}.jpg"
    size = ET.SubElement(ann, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(ann, "segmented").text = "0"
    for obj in objects:
        node = ET.SubElement(ann, "object")
        ET.SubElement(node, "name").text = obj["name"]
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = "0"
        ET.SubElement(node, "difficult").text = "1" if obj.get("difficult") else "0"
        bb = ET.SubElement(node, "bndbox")
        for key, value in zip(
            ("xmin", "ymin", "xmax", "ymax"), xyxy_to_voc(*obj["box"]), strict=True
        ):
            ET.SubElement(bb, key).text = str(value)
    ET.indent(ann)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(ann).write(path, encoding="utf-8")
