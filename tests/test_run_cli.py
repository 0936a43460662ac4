"""The main job end to end on tiny data: the run directory and the printed report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "pretrain/run.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_main_job_writes_the_run_directory_and_reports_baselines(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    proc = run_cli("--run-dir", str(run), "--data", str(tiny_fmnist), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in (
        "SimSiam (trained)",
        "same arch, random init",
        "raw pixels",
        "gain over random init",
    ):
        assert line in proc.stdout
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / "collapse_curves.png").stat().st_size > 10_000
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 16  # 2 epochs of 512 // 64
    knn = summary["knn_eval"]["knn_top1"]
    assert set(knn) == {"trained", "random_init", "raw_pixels"}
    assert knn["raw_pixels"] > 90.0  # the synthetic classes are bars at different rows
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and "knn_h" in rows[0]  # the monitor measures the init too
    assert {"z_std_sqrt_d", "rankme", "m_o", "m_r", "knn_h", "knn_z"} <= {
        k for r in rows for k in r
    }
    assert summary["config"]["train"]["batch_size"] == 64
    assert "it/s" in proc.stderr or "step/s" in proc.stderr  # the progress bar with its rate


def test_rerunning_a_finished_run_resumes_instead_of_retraining(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    args = ("--run-dir", str(run), "--data", str(tiny_fmnist), *TINY, "eval.final_knn=false")
    assert run_cli(*args).returncode == 0
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming" in proc.stdout and "from step 16/16" in proc.stdout


def test_missing_data_folder_is_a_clear_error(tmp_path):
    proc = run_cli("--run-dir", str(tmp_path / "run"), "--data", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert (
        "does not exist" in proc.stderr and "apt-get install dataset-fashion-mnist" in proc.stderr
    )


def test_the_report_names_the_method_that_trained():
    from pretrain.evaluate import format_report

    report = {
        "protocol": {"k": 20, "t": 0.07, "bank": "b", "queries": "q"},
        "knn_top1": {"trained": 82.66, "random_init": 75.9, "raw_pixels": 85.69},
        "gain_over_random_init": 6.76,
    }
    for method, name in [("dino", "DINO"), ("mocov3", "MoCo v3"), ("simsiam", "SimSiam")]:
        text = format_report({**report, "method": method})
        assert f"  {name} (trained)" in text and "+6.76 points" in text
    assert "SimSiam" not in format_report({**report, "method": "dino"})
