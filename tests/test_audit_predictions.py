"""Every recorded number can be recomputed from the predictions saved beside its record.

Detection runs save the COCO results list (recomputed here with pycocotools' COCOeval against
the ground-truth JSON) and the VOC per-class detections (recomputed with the VOC07 11-point
AP written out below, independently of ``transfer/detection/evaluate.py``, from the official
tree's XML files); classification runs save one prediction per test image. Each file is
listed in the record with its sha256, and a tampered file is caught.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from transfer import run as transfer_run
from transfer.artifacts import (
    ArtifactError,
    read_artifact,
    read_prediction_table,
    save_artifact,
    saved_beside,
    verify_artifacts,
)
from transfer.detection.coco import read_coco, write_coco
from transfer.detection.predictions import detectron2_voc_rows, score_detections
from transfer.detection.voc import VOC_CLASSES, read_voc

TINY_SPEC = BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2, zero_init_residual=False)
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@pytest.fixture
def encoder_dir(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    ssl = {"method": "simsiam", "dataset": "fashion_mnist", "epochs": 3, "batch_size": 256}
    Encoder.from_spec(TINY_SPEC, ssl=ssl).save_pretrained(tmp_path / "encoder")
    return tmp_path / "encoder"


def _run(args: list[str], tmp_path: Path) -> tuple[dict, Path]:
    results = tmp_path / "results"
    (record,) = transfer_run.main(
        [*args, "--results-dir", str(results), "--work-dir", str(tmp_path / "w")]
    )
    path = results / record["task"] / f"{record['run_id']}.json"
    assert json.loads(path.read_text())["artifacts"] == record["artifacts"]
    return record, path


def _artifact(record_path: Path, name: str) -> bytes:
    """The payload of a record's artifact, its checksum checked here (not by the module)."""
    record = json.loads(record_path.read_text())
    (entry,) = [a for a in record["artifacts"] if a["name"] == name]
    file = record_path.parent / entry["path"]
    assert file.parent.name == record["run_id"]  # <results>/<task>/<run_id>/<file>
    data = file.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    return gzip.decompress(data) if entry["path"].endswith(".gz") else data


# -- COCO: pycocotools itself, on the saved results list ----------------------------------------


def _cocoeval(gt: COCO, results: list[dict], iou_type: str) -> dict[str, float | None]:
    ev = COCOeval(gt, gt.loadRes([dict(r) for r in results]), iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {k: 100.0 * v if v >= 0 else None for k, v in zip(COCO_STATS, ev.stats[:6], strict=True)}


def _assert_same(recomputed: dict, metrics: dict, prefix: str) -> None:
    for key, value in recomputed.items():
        recorded = metrics[f"{prefix}{key}"]
        if value is None:
            assert recorded is None, key
        else:
            assert recorded == pytest.approx(value, rel=0, abs=1e-9), key


def test_fmnist_det_coco_ap_recomputes_with_pycocotools(
    encoder_dir: Path, tiny_fmnist: Path, tmp_path: Path
) -> None:
    data = [f"fmnist_root={tiny_fmnist}", "n_train=8", "n_test=4", f"data_dir={tmp_path / 'fd'}"]
    record, path = _run(
        ["--task", "fmnist_det", "--model", str(encoder_dir), "--iters", "2", "masks=true", *data],
        tmp_path,
    )
    results = json.loads(_artifact(path, "coco_detections.json"))
    assert results, "the tiny run detects something"
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score", "segmentation"}
    gt = COCO(str(tmp_path / "fd" / "coco" / "annotations" / "instances_val.json"))
    _assert_same(_cocoeval(gt, results, "bbox"), record["metrics"], "box_")
    _assert_same(_cocoeval(gt, results, "segm"), record["metrics"], "mask_")
    assert {a["name"] for a in verify_artifacts(path)} == {
        "coco_detections.json",
        "voc_detections.json",
    }


# -- VOC: the VOC07 11-point AP written out here, read from the official tree -------------------

OBJECT = (
    "<object><name>{0}</name><pose>Unspecified</pose><truncated>0</truncated>"
    "<difficult>{1}</difficult><bndbox><xmin>{2}</xmin><ymin>{3}</ymin><xmax>{4}</xmax>"
    "<ymax>{5}</ymax></bndbox></object>"
)


def write_voc_tree(root: Path, n_trainval: int = 8, n_test: int = 8, seed: int = 0) -> Path:
    """VOCdevkit/VOC2007 (official layout) of 64×64 gray images with bright boxes, every 20
    classes used, every third object of a test image difficult."""
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    n, c = 0, 0
    for split, count in (("trainval", n_trainval), ("test", n_test)):
        ids = []
        for _ in range(count):
            n += 1
            ids.append(image_id := f"{n:06d}")
            img = rng.integers(0, 60, size=(64, 64)).astype(np.uint8)
            objects = []
            for k in range(8 if split == "test" else 4):
                w, h = (int(v) for v in rng.integers(14, 30, size=2))
                x0, y0 = int(rng.integers(1, 64 - w)), int(rng.integers(1, 64 - h))
                img[y0 - 1 : y0 - 1 + h, x0 - 1 : x0 - 1 + w] = 100 + 7 * (c % 20)
                difficult = int(split == "test" and k % 3 == 2)
                objects.append(OBJECT.format(VOC_CLASSES[c % 20], difficult, x0, y0, x0 + w - 1,
                                             y0 + h - 1))  # fmt: skip
                c += 1
            Image.fromarray(img).convert("RGB").save(base / "JPEGImages" / f"{image_id}.jpg")
            (base / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
                "<size><width>64</width><height>64</height><depth>3</depth></size>"
                f"{''.join(objects)}</annotation>"
            )
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def read_ground_truth(base: Path, split: str) -> dict[str, list[tuple[str, bool, list[int]]]]:
    """image id -> [(class, difficult, [xmin, ymin, xmax, ymax] 1-based inclusive)]."""
    out = {}
    for image_id in (base / "ImageSets" / "Main" / f"{split}.txt").read_text().split():
        root = ET.parse(base / "Annotations" / f"{image_id}.xml").getroot()
        out[image_id] = [
            (
                obj.findtext("name"),
                obj.findtext("difficult") == "1",
                [int(obj.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")],
            )
            for obj in root.iter("object")
        ]
    return out


def voc07_class_ap(rows: list[list], gt: dict, cls: str, threshold: float = 0.5) -> float | None:
    """Everingham et al. 2010 (VOC2007 devkit, use_07_metric): detections ranked by score, each
    a true positive when its best-overlapping ground truth (IoU ≥ 0.5, pixel-inclusive areas)
    is not yet taken, ignored when that one is difficult; AP = mean over the devkit's 11 recall
    points 0:0.1:1 (3 * 0.1 = 0.30000000000000004, as its floating point) of the highest
    precision at recall ≥ r. None for a class without non-difficult objects."""
    objects = {img: [o for o in objs if o[0] == cls] for img, objs in gt.items()}
    npos = sum(not o[1] for objs in objects.values() for o in objs)
    if npos == 0:
        return None
    taken = {img: [False] * len(objs) for img, objs in objects.items()}
    order = np.argsort([-r[1] for r in rows], kind="stable")
    tp, fp = [], []
    for i in order:
        image, _, *box = rows[i]
        best, best_j = -1.0, -1
        for j, (_, _, g) in enumerate(objects[image]):
            iw = min(box[2], g[2]) - max(box[0], g[0]) + 1.0
            ih = min(box[3], g[3]) - max(box[1], g[1]) + 1.0
            if iw <= 0 or ih <= 0:
                continue
            inter = iw * ih
            union = (
                (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
                + (g[2] - g[0] + 1.0) * (g[3] - g[1] + 1.0)
                - inter
            )
            if inter / union > best:
                best, best_j = inter / union, j
        if best >= threshold:
            if objects[image][best_j][1]:
                continue  # a difficult object: neither right nor wrong
            hit = not taken[image][best_j]
            taken[image][best_j] = True
            tp.append(int(hit))
            fp.append(int(not hit))
        else:
            tp.append(0)
            fp.append(1)
    ctp, cfp = np.cumsum(tp, dtype=float), np.cumsum(fp, dtype=float)
    recall = ctp / npos
    precision = ctp / np.maximum(ctp + cfp, np.finfo(float).eps)
    points = [k * 0.1 for k in range(11)]
    return sum(max(precision[recall >= r], default=0.0) for r in points) / 11


def voc07_map(per_class: dict[str, list[list]], gt: dict) -> float:
    aps = [voc07_class_ap(rows, gt, cls) for cls, rows in per_class.items()]
    return 100.0 * float(np.mean([a for a in aps if a is not None]))


def test_voc_det_ap50_recomputes_from_the_saved_class_detections(
    encoder_dir: Path, tmp_path: Path
) -> None:
    root = write_voc_tree(tmp_path / "voc")
    record, path = _run(
        ["--task", "voc_det", "--model", str(encoder_dir), "--iters", "2", "--short-side", "64",
         f"data_root={root}", "train_sets=('voc_2007_trainval',)", "batch_size=2",
         "anchor_sizes=(16,32,64)", "roi_resolution=8", "rpn_batch_size_per_image=64",
         "box_batch_size_per_image=16", "rpn_pre_nms_top_n_train=300",
         "rpn_post_nms_top_n_train=100", "rpn_pre_nms_top_n_test=300",
         "rpn_post_nms_top_n_test=50", "workers=0"],
        tmp_path,
    )  # fmt: skip
    per_class = json.loads(_artifact(path, "voc_detections.json"))
    assert set(per_class) == set(VOC_CLASSES)
    assert sum(map(len, per_class.values())) > 0
    gt = read_ground_truth(root / "VOCdevkit" / "VOC2007", "test")
    assert {row[0] for rows in per_class.values() for row in rows} <= set(gt)
    expected = voc07_map(per_class, gt)
    assert record["metrics"]["voc07_AP50"] == pytest.approx(expected, rel=0, abs=1e-9)


def _detections_near(records, rng: np.random.Generator, labels: int) -> list[dict]:
    """Detections scattered around the ground truth: hits, loose boxes, duplicates, wrong
    classes, each with a distinct score (so the ranking is unambiguous)."""
    dets = []
    for r in records:
        for box, label in zip(r.boxes, r.labels, strict=True):
            for _ in range(3):
                jitter = rng.normal(0, 3.0, size=4)
                wrong = rng.random() < 0.2
                dets.append({
                    "image_id": r.image_id,
                    "label": int((label + 1) % labels if wrong else label),
                    "box": (np.asarray(box, float) + jitter).tolist(),
                })  # fmt: skip
    scores = rng.permutation(len(dets)) / len(dets) + 0.01
    for d, s in zip(dets, scores, strict=True):
        d["score"] = float(s)
    return dets


def test_scores_recompute_from_the_saved_files_on_nontrivial_detections(tmp_path: Path) -> None:
    """What a run records and saves (``score_detections``), on detections whose APs are neither
    0 nor 100: the VOC07 AP50 from the class files and the COCO AP from the results list."""
    rng = np.random.default_rng(3)
    root = write_voc_tree(tmp_path / "voc", n_trainval=0, n_test=6)
    records = read_voc(root, "voc_2007_test")
    metrics, saved = score_detections(records, _detections_near(records, rng, 20), VOC_CLASSES)
    entry = save_artifact(tmp_path / "run", "voc_detections.json", saved["voc_detections.json"])
    per_class = json.loads((tmp_path / entry["path"]).read_bytes())
    gt = read_ground_truth(root / "VOCdevkit" / "VOC2007", "test")
    expected = voc07_map(per_class, gt)
    assert 5.0 < expected < 95.0
    assert metrics["voc07_AP50"] == pytest.approx(expected, rel=0, abs=1e-9)

    categories = [{"id": 10 + i, "name": n} for i, n in enumerate(VOC_CLASSES)]
    images = [{"id": r.image_id + 1, "file_name": f"{r.name}.jpg", "width": 64, "height": 64}
              for r in records]  # fmt: skip
    anns = [
        {"id": len(images) * 100 + 10 * r.image_id + k, "image_id": r.image_id + 1,
         "category_id": 10 + int(label), "bbox": [float(b[0]), float(b[1]),
         float(b[2] - b[0]), float(b[3] - b[1])], "area": float((b[2] - b[0]) * (b[3] - b[1])),
         "iscrowd": int(ignore)}
        for r in records
        for k, (b, label, ignore) in enumerate(zip(r.boxes, r.labels, r.ignore, strict=True))
    ]  # fmt: skip
    (tmp_path / "coco" / "val").mkdir(parents=True)
    gt_file = tmp_path / "coco" / "annotations" / "instances_val.json"
    write_coco(gt_file, images, anns, categories)
    coco_records, cats, coco_gt = read_coco(tmp_path / "coco", "val")
    dets = _detections_near(coco_records, rng, 20)
    metrics, saved = score_detections(coco_records, dets, VOC_CLASSES, coco_gt, cats)
    entry = save_artifact(tmp_path / "run", "coco_detections.json", saved["coco_detections.json"])
    results = json.loads((tmp_path / entry["path"]).read_bytes())
    recomputed = _cocoeval(COCO(str(gt_file)), results, "bbox")
    assert 5.0 < recomputed["AP50"] < 95.0
    _assert_same(recomputed, metrics, "box_")


def test_detectron2_voc_lines_become_the_class_rows() -> None:
    per_rank = [{0: ["000001 0.900 1.0 2.0 30.0 40.0"]}, {0: ["000002 0.500 3.5 4.0 9.0 9.0"],
                2: ["000001 0.125 1.0 1.0 2.0 2.0"]}]  # fmt: skip
    rows = detectron2_voc_rows(per_rank, ("a", "b", "c"))
    assert rows == {
        "a": [["000001", 0.9, 1.0, 2.0, 30.0, 40.0], ["000002", 0.5, 3.5, 4.0, 9.0, 9.0]],
        "b": [],
        "c": [["000001", 0.125, 1.0, 1.0, 2.0, 2.0]],
    }


# -- checksums ----------------------------------------------------------------------------------


def test_checksums_catch_a_tampered_missing_or_escaping_file(tmp_path: Path) -> None:
    folder = tmp_path / "knn" / "run1"
    entries = [
        save_artifact(folder, "predictions.csv", "index,label,pred\n0,1,1\n"),
        save_artifact(folder, "big.json", [{"score": i / 7} for i in range(20_000)]),
    ]
    assert entries[0]["path"] == "run1/predictions.csv"
    assert entries[1]["path"] == "run1/big.json.gz"  # over 200 KB: stored gzipped
    record_path = tmp_path / "knn" / "run1.json"
    record_path.write_text(json.dumps({"run_id": "run1", "artifacts": entries}))
    assert verify_artifacts(record_path) == entries
    assert json.loads(read_artifact(record_path, "big.json"))[7] == {"score": 1.0}
    assert _artifact(record_path, "predictions.csv") == b"index,label,pred\n0,1,1\n"

    (folder / "predictions.csv").write_text("index,label,pred\n0,1,0\n")  # same size, altered
    with pytest.raises(ArtifactError, match="predictions.csv.*altered"):
        verify_artifacts(record_path)
    (folder / "predictions.csv").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        verify_artifacts(record_path)

    escaping = [{**entries[1], "path": "../knn/run1/big.json.gz"}]
    record_path.write_text(json.dumps({"run_id": "run1", "artifacts": escaping}))
    with pytest.raises(ArtifactError, match="inside the record's folder"):
        verify_artifacts(record_path)


# -- classification: one prediction per test image ----------------------------------------------


def _top1(table: dict[str, np.ndarray], column: str) -> float:
    return 100.0 * int((table["label"] == table[column]).sum()) / len(table["label"])


def test_knn_linear_lowshot_predictions_give_back_the_recorded_top1(
    encoder_dir: Path, tiny_fmnist: Path, tmp_path: Path
) -> None:
    base = ["--model", str(encoder_dir), f"data_root={tiny_fmnist}"]
    knn, knn_path = _run(["--task", "knn", *base], tmp_path)
    table = read_prediction_table(_artifact(knn_path, "predictions.csv"))
    assert list(table) == ["index", "label", "pred_k20", "pred_k200"] + [
        "raw_pixels_pred_k20",  # the raw-pixels baseline, audited the same way
        "raw_pixels_pred_k200",
    ]
    assert table["index"].tolist() == list(range(128))  # every test image, in order
    for k in (20, 200):
        assert _top1(table, f"pred_k{k}") == knn["metrics"][f"top1_k{k}"]
        assert _top1(table, f"raw_pixels_pred_k{k}") == knn["metrics"][f"raw_pixels_top1_k{k}"]

    lin, lin_path = _run(["--task", "linear", *base, "epochs=5", "lrs=(0.1,1.0)"], tmp_path)
    table = read_prediction_table(_artifact(lin_path, "predictions.csv"))
    assert _top1(table, "pred") == lin["metrics"]["top1"]
    best = [h for h in lin["extra"]["grid"] if (h["lr"], h["bn"]) == (
        lin["metrics"]["best_lr"], lin["metrics"]["best_bn"])]  # fmt: skip
    assert best[0]["test_top1"] == lin["metrics"]["top1"]

    low, low_path = _run(["--task", "lowshot", *base, "steps=10"], tmp_path)
    table = read_prediction_table(_artifact(low_path, "predictions.csv"))
    for pct in (1, 10):
        assert _top1(table, f"pred_{pct}pct") == low["metrics"][f"top1_{pct}pct"]

    seeds, seeds_path = _run(
        ["--task", "linear", *base, "--seeds", "2", "epochs=1", "lrs=(0.3,)", "bn=(False,)"],
        tmp_path,
    )
    for i, seed in enumerate((0, 1)):
        table = read_prediction_table(_artifact(seeds_path, f"s{seed}_predictions.csv"))
        assert _top1(table, "pred") == seeds["metrics"]["per_seed"][i]["top1"]
    for path in (knn_path, lin_path, low_path, seeds_path):
        verify_artifacts(path)


def test_a_record_that_fails_to_write_leaves_no_predictions(tmp_path: Path) -> None:
    record = {"task": "knn", "run_id": "r1"}
    one = [{"predictions.csv": "index,label,pred\n"}]
    with pytest.raises(RuntimeError, match="invalid"), saved_beside(record, one, 0, tmp_path):
        assert (tmp_path / "knn" / "r1" / "predictions.csv").is_file()
        raise RuntimeError("invalid record")
    assert not (tmp_path / "knn" / "r1").exists()
    with saved_beside(record, [{"a.json": [1]}, {"a.json": [2]}], 3, tmp_path) as entries:
        pass
    assert [e["path"] for e in entries] == ["r1/s3_a.json", "r1/s4_a.json"]
