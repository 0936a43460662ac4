"""The split a transfer number was measured on: stated by every task's record, read by
``records.splits``, shown on the boards and the row detail pages; a training split marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from leaderboards import build as lb_build
from tests.trees import write_coco_tree
from transfer import run as transfer_run

FM = "/usr/share/datasets/fashion-mnist"
# cfg.dump() of detectron2's CfgNode lists the datasets this way (block-style YAML lists)
D2_DUMP = """CUDNN_BENCHMARK: false
DATASETS:
  PRECOMPUTED_PROPOSAL_TOPK_TEST: 1000
  PROPOSAL_FILES_TEST: []
  TEST:
  - {test}
  TRAIN:
  - coco_2017_train
MODEL:
  DEVICE: cpu
"""


@pytest.mark.parametrize(
    ("task", "protocol", "expected"),
    [
        (
            "knn",
            {"bank": f"fashion_mnist train (60000 images) from {FM}",
             "queries": f"fashion_mnist test (10000 images) from {FM}"},
            ("fashion_mnist", "test", 10000, False),
        ),
        (
            "linear",
            {"train_split": "imagefolder train (1300 images) from /d",
             "test_split": "imagefolder val (50 images) from /d"},
            ("imagefolder", "val", 50, False),
        ),
        (
            "lowshot",
            {"test_split": f"fashion_mnist test (10000 images) from {FM}"},
            ("fashion_mnist", "test", 10000, False),
        ),
        (
            "fmnist_det",
            {"test_images": 200, "dataset": {"train": "train (Fashion-MNIST train items)",
                                             "test": "val (Fashion-MNIST test items)"}},
            ("fmnist_det", "val", 200, False),
        ),
        (
            "voc_det",
            {"test_images": 4952, "dataset": {"train": ["voc_2007_trainval", "voc_2012_trainval"],
                                              "test": "voc_2007_test"}},
            ("voc", "voc_2007_test", 4952, False),
        ),
        (
            "voc_det",  # evaluated on one of its own training sets
            {"dataset": {"train": ["voc_2007_trainval"], "test": "voc_2007_trainval"}},
            ("voc", "voc_2007_trainval", None, True),
        ),
        (
            "coco_det",
            {"test_images": 4, "dataset": {"train": "train2017", "test": "train2017"}},
            ("coco", "train2017", 4, True),
        ),
        (
            "coco_det",  # trained on val2017, evaluated on train2017: still a training split
            {"dataset": {"train": "val2017", "test": "train2017"}},
            ("coco", "train2017", None, True),
        ),
        (
            "coco_det",  # the detectron2 engine: the config it ran says
            {"engine": "detectron2", "test_images": 5000,
             "config_dump": D2_DUMP.format(test="coco_2017_val")},
            ("coco", "coco_2017_val", 5000, False),
        ),
        (
            "coco_det",
            {"engine": "detectron2", "config_dump": D2_DUMP.format(test="coco_2017_train")},
            ("coco", "coco_2017_train", None, True),
        ),
        ("knn", {"ks": [20]}, None),  # a record that does not say
        ("coco_det", {"config_dump": "DATASETS: [unclosed"}, None),
        ("pretrain", {"steps": 10}, None),
    ],
)  # fmt: skip
def test_every_task_protocol_states_its_split(task: str, protocol: dict, expected) -> None:
    from records.splits import EvalSplit, evaluated_on

    assert evaluated_on(task, protocol) == (EvalSplit(*expected) if expected else None)


def test_labels_say_a_training_split() -> None:
    from records.splits import EvalSplit

    assert EvalSplit("coco", "val2017", 5000, False).label() == "coco val2017 (5000 images)"
    assert EvalSplit("voc", "voc_2007_test", None, False).label() == "voc_2007_test"
    train = EvalSplit("coco", "train2017", 4, True)
    assert train.label() == "coco train2017 (4 images), a training split"


def test_detectron2_config_dump_of_the_shipped_coco_config() -> None:
    from records.splits import EvalSplit, evaluated_on

    engine = pytest.importorskip("transfer.detection.engine_detectron2")
    pytest.importorskip("detectron2", reason="detectron2 is not installed")
    dump = engine.load_config("coco").dump()
    found = evaluated_on("coco_det", {"engine": "detectron2", "config_dump": dump})
    assert found == EvalSplit("coco", "coco_2017_val", None, False)


def test_a_coco_run_on_train2017_is_marked_on_the_board_and_the_detail_page(
    tmp_path: Path,
) -> None:
    """The issue's run, for real: coco_det (torchvision) evaluated on train2017 beside one on
    val2017; the board row and the detail page say which, and the training split in bold."""
    torch.manual_seed(1)
    spec = BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2, zero_init_residual=False)
    ssl = {"method": "simsiam", "dataset": "fashion_mnist", "epochs": 3, "batch_size": 256}
    Encoder.from_spec(spec, ssl=ssl).save_pretrained(tmp_path / "encoder")
    coco = write_coco_tree(tmp_path / "coco")
    results = tmp_path / "results"
    common = [
        "--task", "coco_det", "--model", str(tmp_path / "encoder"), "--iters", "1",
        "--short-side", "32", f"data_root={coco}", "masks=false", "workers=0",
        "--results-dir", str(results), "--work-dir", str(tmp_path / "work"),
    ]  # fmt: skip
    (on_train,) = transfer_run.main([*common, "test_split=train2017"])
    (on_val,) = transfer_run.main(common)
    out = tmp_path / "boards"
    assert lb_build.main(["--results", str(results), "--out", str(out), "--strict"]) == 0
    board = (out / "coco_det.md").read_text()
    header = next(line for line in board.splitlines() if line.startswith("| model |"))
    assert "| evaluated on |" in header
    rows = [line for line in board.splitlines() if "](rows/coco_det-" in line]
    marked = [line for line in rows if "**coco train2017 (4 images), a training split**" in line]
    plain = [line for line in rows if "| coco val2017 (4 images) |" in line]
    assert len(rows) == 2 and len(marked) == 1 and len(plain) == 1, rows
    assert "Bold in *evaluated on*: a training split" in board
    page = (out / marked[0].split("](")[1].split(")")[0]).read_text()
    assert "| evaluated on | **coco train2017 (4 images), a training split** |" in page
    assert on_train["run_id"] in page and "Bold in *evaluated on*: a training split" in page
    record = json.loads((results / "coco_det" / f"{on_train['run_id']}.json").read_text())
    assert record["protocol"]["dataset"]["test"] == "train2017"  # what the record states
    from records.splits import evaluated_on

    assert evaluated_on("coco_det", on_train["protocol"]).training
    assert not evaluated_on("coco_det", on_val["protocol"]).training
