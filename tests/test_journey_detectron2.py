"""The detectron2 journey, run as a user runs it, one real process per command: a standard
ResNet-50 encoder folder → ``hub/export.py`` → ``transfer/run.py --task voc_det`` and
``--task coco_det`` with ``--engine detectron2`` on tiny trees in the official layouts →
the records → ``leaderboards/build.py --strict``.

Cheap on purpose: 64 px images, 4 per split, 2 iterations at batch 2, few proposals and RoIs.
Skipped only where detectron2 is not importable (``make test`` builds it from
``../shared/vendor/`` when that source is there).
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from tests.journey_cli import cli
from tests.trees import COCO_CATEGORIES, write_coco_tree, write_voc_tree

TINY = [
    "--iters", "2", "--short-side", "64", "batch_size=2", "box_batch_size_per_image=8",
    "roi_resolution=7", "rpn_post_nms_top_n_train=32", "rpn_post_nms_top_n_test=8", "workers=0",
]  # fmt: skip

pytestmark = pytest.mark.detectron2


def test_resnet50_to_detectron2_voc_and_coco_to_the_boards(tmp_path: Path) -> None:
    pytest.importorskip(
        "detectron2",
        reason="detectron2 is not installed (python -m transfer.detection.install_detectron2)",
    )
    torch.manual_seed(0)
    encoder = tmp_path / "simsiam-r50"
    ssl = {"method": "simsiam", "dataset": "imagenet", "epochs": 0, "batch_size": 256}
    Encoder.from_spec(BackboneSpec("resnet50"), ssl=ssl).save_pretrained(encoder)

    exported = cli("hub/export.py", encoder, tmp_path / "r50.pkl")
    assert re.search(r": 265 tensors; dropped 53 \(BN step counter", exported.stdout)

    results, work = tmp_path / "results", tmp_path / "work"
    trees = {
        "voc_det": write_voc_tree(tmp_path / "voc"),
        "coco_det": write_coco_tree(tmp_path / "coco"),
    }
    for task, root in trees.items():
        cli("transfer/run.py", "--task", task, "--engine", "detectron2", "--model", encoder,
            "--results-dir", results, "--work-dir", work, *TINY, f"data_root={root}")  # fmt: skip

    written = {p.parent.name: json.loads(p.read_text()) for p in results.glob("*/*.json")}
    assert sorted(written) == ["coco_det", "voc_det"]
    for task, record in written.items():
        protocol = record["protocol"]
        assert protocol["engine"] == "detectron2", task
        assert protocol["weights_loaded"] == "265/265 tensors", task
        assert protocol["schedule"]["iters"] == 2 and protocol["precise_bn"]["iters"] == 1, task
        assert protocol["train_images"] == (8 if task == "voc_det" else 4), task
        for artifact in record["artifacts"]:  # the predictions the numbers come from
            assert (results / task / artifact["path"]).is_file(), (task, artifact)
        assert record["artifacts"], task
    assert {"voc07_AP50", "voc07_AP", "voc07_AP75"} <= set(written["voc_det"]["metrics"])
    assert {"box_AP", "box_AP50", "mask_AP"} <= set(written["coco_det"]["metrics"])
    assert written["coco_det"]["protocol"]["num_classes"] == 3
    coco_ids = {c["id"] for c in COCO_CATEGORIES}  # 1, 18, 44: not 0-based, not contiguous
    (predictions,) = (results / "coco_det").glob("*/coco_detections.json")
    predicted = {d["category_id"] for d in json.loads(predictions.read_text())}
    assert predicted and predicted <= coco_ids

    # what the engine trained from is what hub/export.py writes
    with (tmp_path / "r50.pkl").open("rb") as f:
        by_cli = pickle.load(f)["model"]
    (engine_pkl,) = work.glob("detectron2_voc_*/encoder.pkl")
    with engine_pkl.open("rb") as f:
        by_engine = pickle.load(f)["model"]
    assert by_cli.keys() == by_engine.keys()
    assert all(np.array_equal(by_cli[k], by_engine[k]) for k in by_cli)

    boards = tmp_path / "boards"
    built = cli("leaderboards/build.py", "--strict", "--results", results, "--out", boards)
    assert "not rendered" not in built.stderr
    for task in trees:
        page = (boards / f"{task}.md").read_text()
        assert "(detectron2)" in page and "resnet50 w64" in page, task
        assert "schedule 2 it" in page, task
