"""The result-record contract (``records/``): one task registry, validation when written, and
every writer's records rendered by the boards (a VOC detection run end to end)."""

from __future__ import annotations

import json
import math
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
from records.schema import validate
from records.tasks import KNOWN_TASKS, TASKS, TRANSFER_TASKS, canonical_metrics
from records.write import write_record, write_record_at
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


def det_record(**changes: object) -> dict:
    """A detection record as the torchvision engine writes it (schedule, sizes, metrics)."""
    schedule = {"name": "fmnist", "iters": 200, "batch_size": 4, "base_lr": 0.02,
                "steps": [150, 180], "warmup_iters": 20, "train_sizes": [96], "test_size": 96,
                "max_size": 160, "momentum": 0.9, "weight_decay": 1e-4}  # fmt: skip
    record = knn_record(
        task="fmnist_det",
        protocol={"engine": "torchvision", "architecture": "Faster R-CNN, C4",
                  "schedule": schedule, "train_images": 1000, "test_images": 200},
        metrics={"box_AP": 17.0, "box_AP50": 35.2, "voc07_AP50": 36.0, "train_seconds": 80.0},
        wall_seconds=95.0,
    )  # fmt: skip
    record.update(changes)
    return record


def changed(record: dict, path: str, value: object) -> dict:
    """``record`` (a deep copy) with the value at dotted ``path`` replaced (list items by
    index)."""
    out = json.loads(json.dumps(record))
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


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


def test_detectron2_nan_no_value_becomes_none_and_the_record_is_written(tmp_path: Path):
    """detectron2's COCOEvaluator writes NaN where pycocotools has no value (no ground truth in
    an area range, or of a category); the registry records None, as our evaluator does."""
    d2 = {"bbox_AP": 12.0, "bbox_AP50": 30.0, "bbox_AP75": 9.0, "bbox_APl": math.nan}
    metrics = canonical_metrics("coco_det", {**d2, "bbox_AP-shirt": math.nan})
    assert metrics == {"box_AP": 12.0, "box_AP50": 30.0, "box_AP75": 9.0, "box_APl": None,
                       "box_AP-shirt": None}  # fmt: skip
    write_record(det_record(task="coco_det", metrics=metrics), tmp_path)


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


LINEAR = knn_record(
    task="linear",
    protocol={"grid": {"lrs": [0.1, 1.0], "bn": [False, True], "epochs": 10, "batch_size": 256,
                       "momentum": 0.9, "weight_decay": 0.0}},
    metrics={"top1": 80.0, "top1_std": 0.5, "best_lr": 0.1, "best_bn": True,
             "per_seed": [{"top1": 79.6, "best_lr": 0.1}, {"top1": 80.4, "best_lr": 0.1}]},
    seed=[0, 1],
)  # fmt: skip


DET, KNN = det_record(), knn_record()


@pytest.mark.parametrize(
    ("record", "path", "value", "must"),
    [
        # the issue's: --iters -1 trained 0 iterations and the board rendered "schedule -1 it"
        (DET, "protocol.schedule.iters", -1, ">= 1 (training iterations)"),
        (DET, "protocol.schedule.iters", 0, ">= 1 (training iterations)"),
        (DET, "protocol.schedule.batch_size", 0, ">= 1"),
        (DET, "protocol.schedule.base_lr", -0.02, "> 0 (a learning rate)"),
        (DET, "protocol.test_images", 0, ">= 1"),
        (DET, "metrics.box_AP", 130.0, "in [0, 100] (COCO / VOC AP, in percent)"),
        (DET, "metrics.box_AP", -5.0, "in [0, 100]"),
        (DET, "metrics.box_AP50", math.nan, "in [0, 100]"),
        (DET, "metrics.voc07_AP50", math.inf, "in [0, 100]"),
        (DET, "metrics.train_seconds", -1.0, ">= 0"),
        (DET, "wall_seconds", -3.0, ">= 0"),
        (KNN, "metrics.top1_k20", 101.0, "in [0, 100] (a percentage)"),
        (KNN, "metrics.top1_k20", math.nan, "in [0, 100]"),
        (KNN, "protocol.ks.0", 0, ">= 1"),
        (KNN, "pretrain.epochs", -3.0, ">= 0"),
        (knn_record(pretrain={"batch_size": 256}), "pretrain.batch_size", 0, ">= 1"),
        (LINEAR, "protocol.grid.batch_size", 0, ">= 1"),
        (LINEAR, "protocol.grid.batch_size", -4, ">= 1"),
        (LINEAR, "protocol.grid.epochs", 0, ">= 1"),
        (LINEAR, "protocol.grid.lrs.1", -1.0, "> 0 (a learning rate)"),
        (LINEAR, "metrics.top1_std", -0.5, ">= 0 (a standard deviation)"),
        (LINEAR, "metrics.per_seed.1.top1", 100.5, "in [0, 100]"),
        (LINEAR, "metrics.best_lr", 0.0, "> 0 (a learning rate)"),
    ],
)
def test_a_record_with_an_impossible_value_is_not_written(
    record: dict, path: str, value: object, must: str, tmp_path: Path
):
    write_record(record, tmp_path / "good")  # the record itself is possible
    with pytest.raises(RecordError) as err:
        write_record(changed(record, path, value), tmp_path / "bad")
    message = str(err.value)
    assert f"not written: {path}={value!r} is out of range: must be {must}" in message, message
    assert "\n" not in message
    assert not (tmp_path / "bad").exists()


def ablation_fixture() -> dict:
    """The board fixtures' SimSiam ablation record (its verdict as experiments/rejudge.py
    writes it)."""
    fixture = ROOT / "tests/data/leaderboard_records/ablation/simsiam-simsiam-seed0.json"
    record = json.loads(fixture.read_text())
    assert "collapsed" not in record and record["verdict"]["outcome"] == "healthy"
    return record


def test_an_ablation_record_with_the_single_point_flag_is_not_written(tmp_path: Path):
    """One verdict: a record with the old ``collapsed`` flag, or without a verdict, is refused
    in one line that names the command rewriting it."""
    record = ablation_fixture()
    write_record_at(tmp_path / "good.json", record)
    no_verdict = {k: v for k, v in record.items() if k != "verdict"}
    for bad in ({**record, "collapsed": False}, no_verdict):
        with pytest.raises(RecordError) as err:
            write_record_at(tmp_path / "bad.json", bad)
        assert "rewrite it with python experiments/rejudge.py" in str(err.value)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize(("key", "value"), [("steps", 0), ("steps", -300), ("batch_size", 0)])
def test_an_ablation_record_of_an_impossible_length_is_not_written(
    key: str, value: int, tmp_path: Path
):
    record = ablation_fixture()
    write_record_at(tmp_path / "good.json", record)
    with pytest.raises(RecordError, match=rf"not written: {key}={value} is out of range: must"):
        write_record_at(tmp_path / "bad.json", {**record, key: value})
    assert not (tmp_path / "bad.json").exists()


def test_a_hand_made_impossible_record_is_flagged_by_build_strict(tmp_path: Path, capsys):
    """The issue's record (schedule -1 it) and a NaN AP, written by hand: never rendered."""
    results = tmp_path / "results"
    write_record(det_record(), results)
    bad = changed(det_record(run_id="minus-one"), "protocol.schedule.iters", -1)
    (results / "fmnist_det" / "minus-one.json").write_text(json.dumps(bad, indent=2))
    nan = changed(det_record(run_id="nan-ap"), "metrics.box_AP", math.nan)
    (results / "fmnist_det" / "nan-ap.json").write_text(json.dumps(nan))  # NaN: Python's JSON
    out = tmp_path / "boards"
    assert lb_build.main(["--results", str(results), "--out", str(out), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "not rendered: fmnist_det/minus-one.json: protocol.schedule.iters=-1 is out of " \
        "range: must be >= 1" in err  # fmt: skip
    assert "not rendered: fmnist_det/nan-ap.json: metrics.box_AP=nan is out of range" in err
    board = (out / "fmnist_det.md").read_text()
    assert "schedule 200 it" in board and "-1 it" not in board and "nan" not in board
    readme = (out / "README.md").read_text()
    assert "`fmnist_det/minus-one.json`: protocol.schedule.iters=-1" in readme


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


def sweep_fixtures() -> list[Path]:
    return sorted((ROOT / "tests/data/leaderboard_records/pretrain").glob("*.json"))


def test_the_sweep_board_counts_verdicts_not_the_single_point_flag(tmp_path: Path):
    """A sweep point's column is its records' windowed verdicts (``summary.json``'s, carried
    by experiments/sweep_job.py); a record migrated off the single-point flag, or with no
    verdict at all, shows "not judged"; a record still carrying ``metrics.collapsed`` is not
    rendered, and the build names the migration."""
    from experiments.rejudge import migrated_pretrain
    from records.verdict import DIMENSIONAL, HEALTHY, NOT_JUDGED

    results = tmp_path / "results" / "pretrain"
    results.mkdir(parents=True)
    fixtures = sweep_fixtures()
    assert len(fixtures) == 4
    expected = {}
    for i, path in enumerate(fixtures):
        record = json.loads(path.read_text())
        assert record["verdict"]["outcome"] == HEALTHY and "collapsed" not in record["metrics"]
        value = record["sweep"]["value"]
        if i == 1:  # a record from before the verdict, migrated: the flag (True) not shown
            old = {**record, "metrics": {**record["metrics"], "collapsed": True}}
            del old["verdict"]
            record = migrated_pretrain(old)
        elif i == 2:  # no verdict and no flag
            del record["verdict"]
        elif i == 3:  # another outcome is counted as it is
            record["verdict"] = {**record["verdict"], "outcome": DIMENSIONAL}
        expected[value] = NOT_JUDGED if i in (1, 2) else record["verdict"]["outcome"]
        (results / path.name).write_text(json.dumps(record))
    flagged = json.loads(fixtures[0].read_text())
    flagged["run_id"] += "-flagged"
    flagged["metrics"]["collapsed"] = False
    (results / "flagged.json").write_text(json.dumps(flagged))
    out = tmp_path / "boards"
    lb_build.main(["--results", str(tmp_path / "results"), "--out", str(out)])
    page = (out / "batch_size_sweep.md").read_text()
    header = next(line for line in page.splitlines() if line.startswith("| train.batch_size"))
    assert "verdict" in header and "collapsed" not in header
    rows = [line for line in page.splitlines() if "](rows/sweep-" in line]
    assert len(rows) == len(fixtures)  # the flagged record is not a row
    for row in rows:
        value = int(row.split(" | ")[0].strip("| "))
        assert row.split(" | ")[6] == f"{expected[value]} 1/1", row
    readme = (out / "README.md").read_text()
    assert "pretrain/flagged.json" in readme
    assert "python experiments/rejudge.py --pretrain leaderboards/results/pretrain" in readme


def test_a_sweep_record_with_the_single_point_flag_is_refused_and_migrated(tmp_path: Path):
    """The schema refuses ``metrics.collapsed`` (top level or a seed's) in one line naming
    the migration; the migration drops the flag and, with no trace to judge, stores a verdict
    "not judged" that says why; with a trace, that trace's windowed verdict."""
    from experiments.rejudge import main as rejudge_main
    from experiments.rejudge import migrated_pretrain
    from records.verdict import COMPLETE, NOT_JUDGED

    record = json.loads(sweep_fixtures()[0].read_text())
    old = {k: v for k, v in record.items() if k != "verdict"}
    old["metrics"] = {**old["metrics"], "collapsed": False}
    with pytest.raises(RecordError) as err:
        validate(old)
    message = str(err.value)
    assert "'metrics.collapsed' is a single-point flag" in message and "\n" not in message
    assert "python experiments/rejudge.py --pretrain leaderboards/results/pretrain" in message
    seeds = {**record, "seed": [0, 1]}
    seeds["metrics"] = {**record["metrics"], "per_seed": [dict(record["metrics"])] * 2}
    validate(seeds)
    seeds["metrics"]["per_seed"] = [record["metrics"], {**record["metrics"], "collapsed": True}]
    with pytest.raises(RecordError, match=r"'metrics.per_seed\[1\].collapsed' is a single"):
        validate(seeds)

    new = migrated_pretrain(old)
    assert "collapsed" not in new["metrics"] and new["verdict"]["outcome"] == NOT_JUDGED
    assert "no monitor trace" in new["verdict"]["text"] and "(false)" in new["verdict"]["text"]
    validate(new)
    assert {k: v for k, v in new.items() if k != "verdict"} == {
        **old,
        "metrics": record["metrics"],
    }
    with pytest.raises(RecordError, match="must say why"):
        validate({**new, "verdict": {**new["verdict"], "text": NOT_JUDGED}})
    traced = {**old, "curve": [{"step": s, "loss": -0.5, "z_std_sqrt_d": 0.05, "rankme": 1.1,
                                "m_o": 0.99} for s in range(25, 301, 25)]}  # fmt: skip
    assert migrated_pretrain(traced)["verdict"]["outcome"] == COMPLETE
    # an ablation record cannot be "not judged": its curve always can be
    ablation = {**ablation_fixture(), "verdict": new["verdict"]}
    with pytest.raises(RecordError, match="'verdict.outcome' must be one of"):
        validate(ablation)

    folder = tmp_path / "pretrain"
    folder.mkdir()
    (folder / "old.json").write_text(json.dumps(old))
    (folder / "new.json").write_text(json.dumps({**record, "run_id": "judged-already"}))
    changes = rejudge_main(["--pretrain", str(folder)])
    assert [(c.old, c.new) for c in changes] == [("flag: false", NOT_JUDGED)]
    assert json.loads((folder / "old.json").read_text()) == new
    assert json.loads((folder / "new.json").read_text())["verdict"] == record["verdict"]
