"""Every record states the threads, CPU model and precision it ran with (``common.hardware``,
``records.schema.HARDWARE_KEYS``), written through the real writers; older records without them
are still read, and the boards' detail pages show them ("not recorded" where a record does
not say), naming a row whose seeds ran with different thread counts."""

from __future__ import annotations

import json
import platform
import re
import time
from pathlib import Path

import pytest
import torch

from common.hardware import cpu_model, hardware, precision_label
from experiments.sweep_job import finish_point
from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from leaderboards.build import build
from pretrain.hooks import CollapseMonitor, KnnMonitor, MetricsLog
from pretrain.summary import write_summary
from pretrain.train import Trainer, autocast_dtype, resolve_device
from records.errors import RecordError
from records.schema import HARDWARE_KEYS, require_hardware, validate
from records.write import write_record
from tests.conftest import tiny_config
from tests.test_records_contract import knn_record as contract_knn_record
from transfer import run as transfer_run
from transfer.run_records import run_precision

TINY_SPEC = BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2, zero_init_residual=False)


@pytest.fixture
def restore_torch_settings():
    """Threads, matmul precision and cuDNN's TF32 switch as they were before the test."""
    threads = torch.get_num_threads()
    matmul = torch.get_float32_matmul_precision()
    tf32 = torch.backends.cudnn.allow_tf32
    yield
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(matmul)
    torch.backends.cudnn.allow_tf32 = tf32


def transfer_device() -> torch.device:
    """The device ``transfer/run.py`` runs on here (``main``: a GPU where one is visible)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def encoder_dir(tmp_path: Path) -> Path:
    ssl = {"method": "simsiam", "dataset": "fashion_mnist", "epochs": 3, "batch_size": 256}
    Encoder.from_spec(TINY_SPEC, ssl=ssl).save_pretrained(tmp_path / "encoder")
    return tmp_path / "encoder"


def knn_record(**hardware_block: object) -> dict:
    """A knn record as an older writer left it (``hardware`` without the new keys)."""
    return contract_knn_record(
        hardware={"platform": "Linux", "cpu_count": 2, "torch_threads": 2, **hardware_block},
        finished_at="2026-11-01T00:00:00Z",
    )


def detail_page(out: Path, board: str) -> str:
    """The detail page of a board's one measured row (its ``runs`` cell; not raw pixels')."""
    links = set(re.findall(r"\]\((rows/[^)]+\.md)\)", (out / board).read_text()))
    (link,) = {link for link in links if "raw-pixels" not in link}
    return (out / link).read_text()


def test_transfer_records_state_threads_cpu_and_precision_and_the_page_names_mixed_threads(
    encoder_dir: Path, tiny_fmnist: Path, tmp_path: Path, restore_torch_settings
) -> None:
    results = tmp_path / "results"
    common = ["--task", "knn", "--model", str(encoder_dir), f"data_root={tiny_fmnist}"]
    common += ["--results-dir", str(results), "--work-dir", str(tmp_path / "w")]
    (one,) = transfer_run.main([*common, "--seed", "0", "--threads", "1"])
    (two,) = transfer_run.main([*common, "--seed", "1", "--threads", "2"])
    on_disk = [json.loads(p.read_text()) for p in sorted((results / "knn").glob("*.json"))]
    assert sorted(r["hardware"]["torch_threads"] for r in on_disk) == [1, 2]
    for record in on_disk:
        hw = record["hardware"]
        assert set(HARDWARE_KEYS) <= set(hw)
        assert hw["cpu_model"] == cpu_model() and hw["cpu_model"]
        assert hw["precision"] == precision_label(None, transfer_device())  # no autocast
        validate(record)
    # the board: one row of two seeds; its n-seeds cell and its detail page name both counts
    build(results, tmp_path / "out")
    board = (tmp_path / "out" / "knn.md").read_text()
    assert "| 2 (threads 1, 2) |" in board
    page = detail_page(tmp_path / "out", "knn.md")
    ran_with = page[page.index("## Ran with") : page.index("## Records")]
    assert "1 (seed 0); 2 (seed 1): the seeds ran with different thread counts" in ran_with
    assert f"| CPU model | {cpu_model()} |" in ran_with
    assert "not recorded" not in page
    for record in (one, two):
        cells = f"| {record['hardware']['torch_threads']} | {cpu_model()} | "
        assert cells + f"{record['hardware']['precision']} |" in page


def test_a_probe_grid_in_bf16_is_named_in_the_precision(
    encoder_dir: Path, tiny_fmnist: Path, tmp_path: Path
) -> None:
    args = ["--task", "linear", "--model", str(encoder_dir), f"data_root={tiny_fmnist}"]
    args += ["epochs=1", "lrs=(0.3,)", "bn=(False,)", "--results-dir", str(tmp_path / "r")]
    (fp32,) = transfer_run.main([*args, "precision=fp32", "--work-dir", str(tmp_path / "a")])
    (bf16,) = transfer_run.main([*args, "precision=bf16", "--work-dir", str(tmp_path / "b")])
    assert "bf16" not in fp32["hardware"]["precision"]
    assert bf16["hardware"]["precision"].endswith("probe grid matmuls bf16")
    expected = run_precision(transfer_device(), {"grid": {"precision": "bf16"}})
    assert bf16["hardware"]["precision"] == expected


def test_a_sweep_points_pretrain_record_carries_the_pretrainings_own_hardware(
    tiny_fmnist: Path, tmp_path: Path, restore_torch_settings
) -> None:
    """summary.json states the training's threads and autocast; the sweep's pretrain record,
    written by finish_point through the real writer, carries that block."""
    cfg = tiny_config(
        tiny_fmnist, "train.max_steps=2", "train.threads=1", "train.precision=bf16",
        "eval.final_knn=false",
    )  # fmt: skip
    run = tmp_path / "run"
    trainer = Trainer(cfg, run, [CollapseMonitor(), KnnMonitor(), MetricsLog()])
    trainer.fit()
    summary = write_summary(trainer, time.perf_counter())
    assert json.loads((run / "summary.json").read_text())["hardware"] == summary["hardware"]
    assert summary["hardware"]["torch_threads"] == 1
    assert summary["hardware"]["precision"].startswith("bf16 autocast")  # what it ran in
    torch.set_num_threads(2)  # the record keeps the training's count, not the process's now
    sweep = {"id": "bs", "axis": "batch_size", "value": 64, "point": "bs64", "lr_scaling": "none"}
    point = {"sweep": sweep, "overrides": [], "transfer": [], "results_dir": str(tmp_path / "r")}
    finish_point(run, summary, point)
    (path,) = (tmp_path / "r" / "pretrain").glob("*.json")
    record = json.loads(path.read_text())
    assert record["hardware"] == summary["hardware"]
    validate(record)


def test_an_ablation_record_carries_the_block(tiny_fmnist, tmp_path, monkeypatch) -> None:
    from experiments import ablation_run
    from experiments.ablation_matrix import BY_NAME

    small = ["monitor.knn_bank=256", "monitor.knn_queries=64", "train.batch_size=64"]
    monkeypatch.setattr(ablation_run, "FAST", [*ablation_run.FAST, *small])
    monkeypatch.setattr(ablation_run, "BATCH", 64)
    monkeypatch.setattr(ablation_run, "TRAIN_IMAGES", 512)
    out = tmp_path / "results"
    ablation_run.run_variant(BY_NAME["simsiam"], 0, 2, out, str(tiny_fmnist), tmp_path / "w")
    (path,) = out.glob("*.json")
    record = json.loads(path.read_text())
    assert set(HARDWARE_KEYS) <= set(record["hardware"])
    assert record["hardware"]["torch_threads"] == record["threads"]
    train = record["config"]["train"]  # the run's autocast follows its config
    device = resolve_device(train["device"])
    assert record["hardware"]["precision"] == precision_label(
        autocast_dtype(train["precision"], device), device
    )


def test_older_records_are_read_but_a_new_one_must_state_every_key(tmp_path: Path) -> None:
    old = knn_record()
    validate(old)  # history: read as it is
    for key in HARDWARE_KEYS:
        block = {"cpu_model": "Some CPU", "precision": "fp32"}
        incomplete = knn_record(**block)
        incomplete["hardware"].pop(key, None)
        with pytest.raises(RecordError, match=f"missing key 'hardware.{key}'"):
            require_hardware(incomplete)
    with pytest.raises(RecordError, match="missing key 'hardware'"):
        require_hardware({k: v for k, v in old.items() if k != "hardware"})
    complete = knn_record(cpu_model="Some CPU", precision="bf16 autocast")
    assert require_hardware(complete) is complete
    for bad, match in [
        ({"torch_threads": 0}, "out of range"),
        ({"torch_threads": "2"}, "'hardware.torch_threads' must be an int"),
        ({"cpu_model": 5}, "'hardware.cpu_model' must be a string"),
        ({"precision": ["fp32"]}, "'hardware.precision' must be a string"),
    ]:
        with pytest.raises(RecordError, match=match):
            write_record(knn_record(**bad), tmp_path)
    with pytest.raises(RecordError, match="'threads' must be an int"):
        validate({**old, "hardware": None, "threads": "1"})


def test_an_older_record_reads_not_recorded_on_its_detail_page(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_record(knn_record(device="cpu (x86_64)"), results)
    build(results, tmp_path / "out")
    page = detail_page(tmp_path / "out", "knn.md")
    assert "| 2 | not recorded | not recorded | cpu (x86_64) |" in page
    assert "| CPU model | not recorded |" in page and "| precision | not recorded |" in page
    assert "threads 1" not in (tmp_path / "out" / "knn.md").read_text()  # one count: no note


def test_precision_label_says_what_float32_math_was_allowed(restore_torch_settings) -> None:
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = True
    assert precision_label(None, "cpu") == "fp32"
    assert precision_label(torch.bfloat16, "cpu") == "bf16 autocast"
    assert precision_label(torch.float16, "cuda") == "fp16 autocast"
    assert precision_label(None, "cuda") == "fp32, cuDNN convolutions TF32"
    torch.backends.cudnn.allow_tf32 = False
    assert precision_label(None, "cuda") == "fp32"
    torch.set_float32_matmul_precision("high")
    assert precision_label(None, "cuda") == "fp32, fp32 matmul precision 'high' (TF32)"
    assert precision_label(torch.bfloat16, "cpu") == "bf16 autocast, fp32 matmul precision 'high'"
    with pytest.raises(ValueError, match="autocast must be"):
        precision_label(torch.int8, "cpu")


def test_cpu_model_reads_cpuinfo_else_the_platform(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU 9000 @ 3.0GHz\n")
    assert cpu_model(info) == "Example CPU 9000 @ 3.0GHz"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # no model name (some ARM kernels)
    fallback = platform.processor() or platform.machine() or "unknown"
    assert cpu_model(arm) == fallback == cpu_model(tmp_path / "missing")
    block = hardware("fp32", "cpu")
    assert block["precision"] == "fp32" and block["device"].startswith("cpu (")
    assert block["torch_threads"] == torch.get_num_threads()
    assert "precision" not in hardware()  # a benchmark's printout need not state it
