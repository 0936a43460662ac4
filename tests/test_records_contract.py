"""The result-record contract (``records/``): one task registry, validation when written, and
every writer's records rendered by the boards (a VOC detection run end to end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserError
from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from leaderboards import build as lb_build
from leaderboards.boards import TRANSFER_BOARDS
from leaderboards.record_set import read_records
from records.errors import RecordError, RecordExistsError
from records.tasks import KNOWN_TASKS, TASKS, TRANSFER_TASKS, canonical_metrics
from records.write import write_record
from transfer import run as transfer_run
from transfer import tasks as transfer_tasks
from transfer.detection.voc import write_annotation

ROOT = Path(__file__).resolve().parents[1]


def knn_record(**changes: object) -> dict:
    record = {
        "run_id": "20260101-000000-m-s0-abcdef",
        "task": "knn",
        "model": {"id": "m", "revision": None, "kind": "run_dir"},
        "pretrain": {"method": "simsiam", "epochs": 3.0},
        "protocol": {"ks": [20]},
        "metrics": {"top1_k20": 80.0},
        "seed": 0,
    }
    record.update(changes)
    return record


# ------------------------------------------------------------------------------ one registry


def test_the_task_registry_is_the_one_list():
    assert transfer_tasks.MODULES == TRANSFER_TASKS
    assert transfer_tasks.module_files() == tuple(sorted(TRANSFER_TASKS))
    for name in TRANSFER_TASKS:
        assert name == transfer_tasks.get(name).NAME
    assert sorted(b.name for b in TRANSFER_BOARDS) == sorted(TRANSFER_TASKS)
    for board in TRANSFER_BOARDS:  # the first column is the metric the board ranks by
        assert board.primary == TASKS[board.name].primary == board.columns[0].metric
    assert set(KNOWN_TASKS) == {*TRANSFER_TASKS, "pretrain", "ablation"}


def test_voc_ranks_by_the_voc_metric_the_papers_report():
    """SimSiam Table 5 / MoCo: VOC07 AP50, AP, AP75; a VOC record must hold all three."""
    voc = TASKS["voc_det"]
    assert voc.primary == "voc07_AP50"
    assert {k for (k,) in voc.required} == {"voc07_AP50", "voc07_AP", "voc07_AP75"}


def test_detectron2_metric_names_become_the_registry_names():
    d2 = {"bbox_AP": 50.0, "bbox_AP50": 70.0, "bbox_AP75": 49.0}
    assert canonical_metrics("voc_det", d2) == {
        "voc07_AP": 50.0, "voc07_AP50": 70.0, "voc07_AP75": 49.0
    }  # fmt: skip
    coco = canonical_metrics("coco_det", {**d2, "segm_AP": 30.0, "box_AP": 1.0})
    assert coco == {"box_AP": 1.0, "bbox_AP": 50.0, "box_AP50": 70.0, "box_AP75": 49.0,
                    "mask_AP": 30.0}  # fmt: skip
    assert canonical_metrics("knn", {"top1_k20": 1.0}) == {"top1_k20": 1.0}


# ------------------------------------------------------------------------------ writing


def test_a_record_the_boards_cannot_render_is_not_written(tmp_path: Path):
    voc = knn_record(task="voc_det", metrics={"box_AP": 50.0, "box_AP50": 70.0})
    with pytest.raises(RecordError, match=r"missing key 'metrics\.voc07_AP50'") as err:
        write_record(voc, tmp_path)
    assert isinstance(err.value, UserError) and "not written" in str(err.value)
    with pytest.raises(RecordError, match="missing key 'pretrain'"):
        write_record({k: v for k, v in knn_record().items() if k != "pretrain"}, tmp_path)
    with pytest.raises(RecordError, match="unknown task 'segmentation'"):
        write_record(knn_record(task="segmentation"), tmp_path)
    bad_length = {"epochs": 3.0, "trained": {"steps": "20", "epochs": 0.1, "stopped_early": True}}
    with pytest.raises(RecordError, match="pretrain.trained.steps"):
        write_record(knn_record(pretrain=bad_length), tmp_path)
    assert not list(tmp_path.rglob("*")), "nothing may be left behind"


def test_a_written_record_is_read_back_valid_and_never_replaced(tmp_path: Path):
    record = knn_record(metrics={"top1_k20": np.float32(81.5), "top1_k200": torch.tensor(79.0)})
    path = write_record(record, tmp_path)
    assert path == tmp_path / "knn" / f"{record['run_id']}.json"
    assert json.loads(path.read_text())["metrics"] == {"top1_k20": 81.5, "top1_k200": 79.0}
    valid, flagged = read_records(tmp_path)
    assert [r.path for r in valid] == [f"knn/{record['run_id']}.json"] and not flagged
    with pytest.raises(RecordExistsError, match="exists already"):
        write_record(knn_record(metrics={"top1_k20": 1.0}), tmp_path)
    assert json.loads(path.read_text())["metrics"]["top1_k20"] == 81.5


def test_records_and_leaderboards_import_no_other_project_package():
    """records imports only common; leaderboards only records (and common)."""
    project = {"common", "records", "leaderboards", "pretrain", "transfer", "hub", "slurm"}
    code = (
        "import sys, {mod}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {project!r}))"
    )
    for mod, allowed in (
        ("records.write, records.schema, records.length", {"common", "records"}),
        ("leaderboards.build", {"common", "records", "leaderboards"}),
    ):
        done = subprocess.run(
            [sys.executable, "-c", code.format(mod=mod, project=project)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            check=True,
        )
        assert set(eval(done.stdout)) <= allowed, (mod, done.stdout)


# ------------------------------------------------------------------------------ VOC end to end


def tiny_voc(root: Path) -> Path:
    """The official layout with a few 64 px images: one bright square (a 'person') each."""
    base = root / "VOCdevkit" / "VOC2007"
    (base / "JPEGImages").mkdir(parents=True)
    rng = np.random.default_rng(0)
    splits = {"trainval": [f"00000{i}" for i in range(4)], "test": ["000010", "000011"]}
    for split, ids in splits.items():
        for image_id in ids:
            x, y = (int(v) for v in rng.integers(4, 30, size=2))
            pixels = rng.integers(0, 40, size=(64, 64)).astype(np.uint8)
            pixels[y : y + 24, x : x + 24] = 230
            Image.fromarray(pixels, mode="L").save(base / "JPEGImages" / f"{image_id}.jpg")
            objects = [{"name": "person", "box": (x, y, x + 24, y + 24)}]
            write_annotation(base / "Annotations" / f"{image_id}.xml", image_id, "VOC2007",
                             64, 64, objects)  # fmt: skip
        main = base / "ImageSets" / "Main"
        main.mkdir(parents=True, exist_ok=True)
        (main / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def test_a_voc_det_record_is_written_and_rendered(tmp_path: Path):
    torch.manual_seed(1)
    spec = BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2, zero_init_residual=False)
    ssl = {"method": "simsiam", "dataset": "fashion_mnist", "epochs": 3, "batch_size": 256}
    Encoder.from_spec(spec, ssl=ssl).save_pretrained(tmp_path / "encoder")
    voc = tiny_voc(tmp_path / "voc")
    results = tmp_path / "results"
    (record,) = transfer_run.main([
        "--task", "voc_det", "--model", str(tmp_path / "encoder"), "--iters", "2",
        "--short-side", "64", f"data_root={voc}", "train_sets=('voc_2007_trainval',)",
        "--results-dir", str(results), "--work-dir", str(tmp_path / "work"),
    ])  # fmt: skip
    assert {"voc07_AP50", "voc07_AP", "voc07_AP75"} <= set(record["metrics"])
    out = tmp_path / "boards"
    assert lb_build.main(["--results", str(results), "--out", str(out), "--strict"]) == 0
    page = (out / "voc_det.md").read_text()
    assert f"{record['metrics']['voc07_AP50']:.1f}" in page
    rows = "".join(p.read_text() for p in sorted(out.glob("rows/voc_det-*.md")))  # row details
    assert record["run_id"] in rows and "Nothing measured yet" not in page


def test_a_records_artifacts_are_not_read_as_records(tmp_path: Path):
    """``<task>/<run_id>/`` beside ``<task>/<run_id>.json`` holds its artifacts."""
    path = write_record(knn_record(), tmp_path)
    artifacts = path.with_suffix("")
    artifacts.mkdir()
    (artifacts / "voc_detections.json").write_text("{}")
    (tmp_path / "knn" / "stray.json").write_text("{}")
    valid, flagged = read_records(tmp_path)
    assert [r.path for r in valid] == [f"knn/{path.name}"]
    assert [f.path for f in flagged] == ["knn/stray.json"]  # not in an artifact folder
