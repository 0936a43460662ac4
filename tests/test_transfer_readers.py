"""VOC and COCO readers on tiny trees in the official layouts; the box conventions; fmnist_det."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transfer.detection.coco import COCOError, read_coco
from transfer.detection.fmnist_det import FMNIST_CLASSES, FmnistDetSpec, generate
from transfer.detection.records import coco_to_xyxy, voc_to_xyxy, xyxy_to_coco, xyxy_to_voc
from transfer.detection.voc import VOCError, read_voc

VOC_XML = """<annotation>
  <folder>VOC2007</folder><filename>{id}.jpg</filename>
  <size><width>64</width><height>48</height><depth>3</depth></size>
  <segmented>0</segmented>
  {objects}
</annotation>"""
OBJ = """<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>
  <difficult>{difficult}</difficult>
  <bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"""


def _voc_tree(root: Path) -> Path:
    """VOCdevkit/VOC2007 with trainval (2 images) and test (1 image without objects)."""
    base = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (base / sub).mkdir(parents=True)
    images = {
        "000005": [("chair", 0, 1, 1, 10, 20), ("person", 1, 30, 5, 64, 48)],
        "000007": [("car", 0, 5, 6, 7, 8)],
        "000009": [],
    }
    for image_id, objs in images.items():
        objects = "".join(
            OBJ.format(name=n, difficult=d, x0=a, y0=b, x1=c, y1=e) for n, d, a, b, c, e in objs
        )
        (base / "Annotations" / f"{image_id}.xml").write_text(
            VOC_XML.format(id=image_id, objects=objects)
        )
        Image.new("RGB", (64, 48)).save(base / "JPEGImages" / f"{image_id}.jpg")
    (base / "ImageSets/Main/trainval.txt").write_text("000005\n000007\n")
    (base / "ImageSets/Main/test.txt").write_text("000009\n")
    return root


def test_voc_box_convention() -> None:
    # VOC pixel columns 1..10 inclusive are 10 pixels: [0, 10) in continuous coordinates.
    assert voc_to_xyxy(1, 1, 10, 20) == (0.0, 0.0, 10.0, 20.0)
    assert xyxy_to_voc(0.0, 0.0, 10.0, 20.0) == (1, 1, 10, 20)
    assert coco_to_xyxy([5, 6, 10, 20]) == (5, 6, 15, 26)
    assert xyxy_to_coco((5, 6, 15, 26)) == [5.0, 6.0, 10.0, 20.0]


def test_voc_reader_official_layout(tmp_path: Path) -> None:
    root = _voc_tree(tmp_path)
    train = read_voc(root, "voc_2007_trainval")
    assert [r.name for r in train] == ["000005", "000007"]
    first = train[0]
    assert (first.width, first.height) == (64, 48)
    np.testing.assert_array_equal(first.boxes, [[0, 0, 10, 20], [29, 4, 64, 48]])
    assert first.labels.tolist() == [8, 14]  # chair, person in VOC's class order
    assert first.ignore.tolist() == [False, True]  # the person is difficult
    assert first.file.endswith("VOC2007/JPEGImages/000005.jpg") and Path(first.file).is_file()
    (empty,) = read_voc(root, "voc_2007_test")
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,)


def test_voc_reader_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(VOCError, match="VOCdevkit/VOC2007"):
        read_voc(tmp_path, "voc_2007_test")
    root = _voc_tree(tmp_path)
    with pytest.raises(VOCError, match="available"):
        read_voc(root, "voc_2010_test")
    bad = root / "VOCdevkit/VOC2007/Annotations/000007.xml"
    bad.write_text(bad.read_text().replace("car", "spaceship"))
    with pytest.raises(VOCError, match="spaceship"):
        read_voc(root, "voc_2007_trainval")


def _coco_tree(root: Path) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 64, "height": 48} for i in (3, 1, 2)]
    for im in images:
        Image.new("RGB", (64, 48)).save(root / "val2017" / im["file_name"])
    anns = [
        {"id": 10, "image_id": 1, "category_id": 18, "bbox": [2.5, 3, 10, 20], "area": 200,
         "iscrowd": 0, "segmentation": [[2.5, 3, 12.5, 3, 12.5, 23, 2.5, 23]]},
        {"id": 11, "image_id": 1, "category_id": 1, "bbox": [20, 10, 30, 30], "area": 900,
         "iscrowd": 1, "segmentation": {"size": [48, 64], "counts": [1000, 50, 2022]}},
        {"id": 12, "image_id": 3, "category_id": 1, "bbox": [0, 0, 64, 48], "area": 3072,
         "iscrowd": 0, "segmentation": [[0, 0, 64, 0, 64, 48, 0, 48]]},
    ]  # fmt: skip
    doc = {"info": {}, "licenses": [], "images": images, "annotations": anns,
           "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}]}  # fmt: skip
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    return root


def test_coco_reader_official_layout(tmp_path: Path) -> None:
    root = _coco_tree(tmp_path)
    records, categories, gt = read_coco(root, "val2017")
    assert [c["name"] for c in categories] == ["person", "dog"]  # contiguous labels in id order
    assert [r.image_id for r in records] == [1, 2, 3]  # image 2 has no objects and is kept
    one, two, three = records
    np.testing.assert_allclose(one.boxes, [[2.5, 3, 12.5, 23], [20, 10, 50, 40]])
    assert one.labels.tolist() == [1, 0]
    assert one.ignore.tolist() == [False, True]  # the crowd region
    assert two.boxes.shape == (0, 4) and two.ignore.shape == (0,)
    assert three.labels.tolist() == [0]
    assert Path(one.file).is_file() and one.file.endswith("val2017/000000000001.jpg")
    assert len(gt.getImgIds()) == 3


def test_coco_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(COCOError, match="instances_val2017.json"):
        read_coco(tmp_path, "val2017")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text("{not json")
    with pytest.raises(COCOError, match="not a COCO instances JSON"):
        read_coco(tmp_path, "val2017")


def test_fmnist_det_is_deterministic_and_both_formats_agree(tiny_fmnist: Path, tmp_path) -> None:
    spec = FmnistDetSpec(str(tiny_fmnist), n_train=12, n_test=6, seed=3)
    a = generate(spec, tmp_path / "a")
    b = generate(spec, tmp_path / "b")
    ann = "coco/annotations/instances_train.json"
    assert (a / ann).read_text() == (b / ann).read_text()
    other = generate(FmnistDetSpec(str(tiny_fmnist), n_train=12, n_test=6, seed=4), tmp_path / "c")
    assert (a / ann).read_text() != (other / ann).read_text()
    for coco_split, voc_split in (("train", "voc_2007_trainval"), ("val", "voc_2007_test")):
        coco, categories, _ = read_coco(a / "coco", coco_split)
        voc = read_voc(a / "voc", voc_split, FMNIST_CLASSES)
        assert [c["name"] for c in categories] == list(FMNIST_CLASSES)
        assert len(coco) == len(voc)
        for c, v in zip(coco, voc, strict=True):
            np.testing.assert_array_equal(c.boxes, v.boxes)
            np.testing.assert_array_equal(c.labels, v.labels)
            assert np.array_equal(np.asarray(Image.open(c.file)), np.asarray(Image.open(v.file)))
    records, _, _ = read_coco(a / "coco", "train")
    assert sum(len(r.boxes) for r in records) > 0
    for r in records:  # boxes inside the canvas and masks inside their boxes
        assert (r.boxes[:, :2] >= 0).all() and (r.boxes[:, 2:] <= spec.canvas).all()
        from pycocotools import mask as mask_utils

        for box, seg in zip(r.boxes, r.segmentations, strict=True):
            x, y, w, h = mask_utils.toBbox(seg)
            assert x >= box[0] and y >= box[1] and x + w <= box[2] and y + h <= box[3]
