"""benchmarks/gpu_check.py: its CPU dry run records every path with finite figures, and its runner
records a crash, a hang or a non-finite figure as a failure (exit code 1) while the rest run."""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PATHS = {"train_steps", "ddp", "data_pipeline", "detection", "throughput"}
# The only reasons a dry-run path may skip: an optional extra, a CPU-only torchvision build.
SKIP_REASONS = {"throughput": "lightly is not installed", "detection": "torchvision.ops.nms"}


def load_gpu_check():
    return importlib.import_module("benchmarks.gpu_check")


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def run_check(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "benchmarks/gpu_check.py", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_dry_run_records_every_path_with_finite_figures_and_a_table(tmp_path):
    proc = run_check("--dry-run", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert record["mode"] == "dry-run" and record["failed"] == []
    paths = record["paths"]
    assert set(paths) == PATHS
    for name, r in paths.items():
        assert r["status"] in ("ok", "skipped"), (name, r.get("error"), r.get("log_tail"))
        assert (tmp_path / "logs" / f"{name}.log").is_file()
        if r["status"] == "skipped":
            assert SKIP_REASONS[name] in r["reason"]
            continue
        assert r["figures"], name
        for key, value in r["figures"].items():
            assert isinstance(value, int | float) and math.isfinite(value), (name, key, value)
    for name in ("train_steps", "ddp", "data_pipeline"):  # nothing optional: these must run
        assert paths[name]["status"] == "ok", name

    steps = paths["train_steps"]
    for method in ("simsiam", "byol", "mocov3"):
        assert steps["figures"][f"{method}_img_s"] > 0
        assert "bfloat16" in steps["info"][method]  # the step ran under bf16 autocast

    ddp = paths["ddp"]
    assert ddp["figures"]["run_steps"] == 2  # pretrain/run.py under torchrun finished
    assert ddp["figures"]["syncbn_modules"] > 0
    assert ddp["info"]["process_group"] == "gloo, world size 1"
    assert "CpuSyncBatchNorm, in DistributedDataParallel" in ddp["info"]["syncbn"]
    assert "launcher torchrun" in ddp["info"]["run_py"]
    assert "all_gather" in ddp["info"]["collectives"]  # the project's gather ran and checked out

    data = paths["data_pipeline"]["figures"]
    assert data["fed_ratio"] == pytest.approx(data["jpeg_fed_img_s"] / data["ready_fed_img_s"])
    assert 0 <= data["stall_share"] < 1

    table = (tmp_path / "gpu_check.md").read_text()
    for name, r in paths.items():
        assert f"| {name} | {r['status']} |" in table
    assert table.splitlines()[2] in proc.stdout  # the table is printed too


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the run without a CUDA device")
def test_without_a_cuda_device_the_gpu_run_fails_each_path_clearly(tmp_path):
    proc = run_check("--paths", "train_steps", "--out", str(tmp_path))
    assert proc.returncode == 1
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert record["mode"] == "gpu" and record["failed"] == ["train_steps"]
    assert "no CUDA device is visible" in record["paths"]["train_steps"]["error"]
    assert "| train_steps | failed |" in proc.stdout


def test_runner_records_a_crash_and_a_hang_as_failures(tmp_path):
    gc = load_gpu_check()
    crash = gc.run_path(
        [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
        60,
        tmp_path / "crash.log",
        tmp_path / "crash.json",
    )
    assert crash["status"] == "failed" and "code 3" in crash["error"]
    assert "boom" in crash["log_tail"]

    pid_file = tmp_path / "grandchild.pid"
    hang_code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(120)"
    )
    hang = gc.run_path(
        [sys.executable, "-c", hang_code], 6, tmp_path / "hang.log", tmp_path / "hang.json"
    )
    assert hang["status"] == "failed" and "over its budget of 6 s" in hang["error"]
    assert hang["seconds"] < 30
    grandchild = int(pid_file.read_text())  # the path's own workers end too
    deadline = time.monotonic() + 10  # the signal reaches them a moment after the leader ends
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(grandchild)

    result = tmp_path / "ok.json"
    write = f"import json; open({str(result)!r}, 'w').write(json.dumps({{'status': 'ok', "
    write += "'figures': {'x': 1.5}, 'info': {}}))"
    ok = gc.run_path([sys.executable, "-c", write], 60, tmp_path / "ok.log", result)
    assert ok["status"] == "ok" and ok["figures"] == {"x": 1.5} and ok["budget_s"] == 60

    skipped = {"status": "skipped", "reason": "no lightly", "seconds": 0.1, "budget_s": 5}
    assert gc.exit_code({"a": ok, "s": skipped}) == 0
    assert gc.exit_code({"a": ok, "s": skipped, "b": crash}) == 1
    table = gc.markdown_table({"a": ok, "b": crash, "s": skipped}, "test")
    assert "| a | ok |" in table and "x 1.5" in table
    assert "| b | failed |" in table and "| s | skipped |" in table and "no lightly" in table


def test_a_non_finite_or_non_numeric_figure_is_an_error():
    gc = load_gpu_check()
    gc.check_figures({"loss": -0.5, "steps": 2})
    with pytest.raises(FloatingPointError, match="loss"):
        gc.check_figures({"loss": float("nan")})
    with pytest.raises(TypeError, match="AP"):
        gc.check_figures({"AP": None})
    with pytest.raises(TypeError):
        gc.check_figures({"ok": True})


def test_without_fashion_mnist_a_synthetic_set_of_the_same_format_stands_in(tmp_path):
    from benchmarks import gpu_check_paths as paths
    from common.datasets import load_fashion_mnist

    root = paths.fashion_mnist(tmp_path / "missing", tmp_path)
    assert root == tmp_path / paths.SYNTHETIC
    images, labels = load_fashion_mnist(root, "train")
    assert images.shape == (4096, 1, 28, 28) and images.dtype == torch.uint8
    assert set(labels.tolist()) == set(range(10))
    assert paths.fashion_mnist(root, tmp_path / "other") == root  # real files are used as they are
