"""A resumed run keeps its own config: only RESUME_MUTABLE keys change, each one logged."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pretrain.checkpoint import read_events
from pretrain.config import ConfigError
from pretrain.hooks import Checkpointer
from pretrain.resume import resume_config
from pretrain.train import Trainer
from tests import signal_child
from tests.conftest import TINY, tiny_config

ROOT = Path(__file__).resolve().parents[1]
QUIET = ("eval.final_knn=false", "monitor.knn_every_epochs=0")


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "pretrain" / "run.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def checkpointed_run(data: Path, run: Path, *overrides: str) -> None:
    """A run directory with a checkpoint at step 0 (no training needed to test resuming)."""
    Checkpointer.save(Trainer(tiny_config(data, *overrides), run, []))


def test_run_dir_alone_resumes_with_the_runs_config(tiny_fmnist, tmp_path):
    """Was: the recipe's defaults (seed 0, batch 256, ...) and a silently rewritten config."""
    run = tmp_path / "run"
    first = run_cli(
        "--data", str(tiny_fmnist), *TINY, "train.seed=3", "train.max_steps=4", *QUIET,
        "--run-dir", str(run),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli("--run-dir", str(run), "train.max_steps=8")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "from step 4/8 with the run's config" in second.stdout
    assert "changed: train.max_steps 4 -> 8" in second.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 8
    train = summary["config"]["train"]
    assert (train["seed"], train["batch_size"], train["epochs"]) == (3, 64, 2.0)
    assert summary["config"]["model"]["width"] == 8
    changes = [e for e in read_events(run) if e["event"] == "config_change"]
    assert [(e["step"], e["key"], e["old"], e["new"]) for e in changes] == [
        (4, "train.max_steps", 4, 8)
    ]
    assert json.loads((run / "config.json").read_text())["train"]["max_steps"] == 8


@pytest.mark.parametrize(
    "override",
    [
        "train.seed=5",
        "train.batch_size=32",
        "optim.base_lr=0.2",
        "data.augment='small_byol'",
        "method.loss='asymmetric'",
        "train.precision='bf16'",
    ],
)
def test_resume_refuses_changes_that_alter_the_run(tiny_fmnist, tmp_path, override):
    run = tmp_path / "run"
    checkpointed_run(tiny_fmnist, run)
    with pytest.raises(ConfigError) as e:
        Trainer(tiny_config(tiny_fmnist, override), run, [])
    message = str(e.value)
    key = override.split("=")[0]
    assert f"resuming {run} at step 0 cannot change {key} (run: " in message
    assert "train.epochs, train.max_steps, train.log_every" in message  # the allowed set
    assert "new --run-dir" in message and "\n" not in message
    assert not read_events(run)


def test_epochs_may_only_be_extended(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    checkpointed_run(tiny_fmnist, run)  # train.epochs=2
    with pytest.raises(ConfigError, match=r"train.epochs may only be extended \(run: 2.0, given"):
        Trainer(tiny_config(tiny_fmnist, "train.epochs=1"), run, [])
    longer = Trainer(tiny_config(tiny_fmnist, "train.epochs=3"), run, [])
    assert longer.total_steps == 24 and longer.resumed_from == 0
    assert [(c.key, c.old, c.new) for c in longer.config_changes] == [("train.epochs", 2.0, 3.0)]


def test_config_json_is_rewritten_only_with_a_logged_change(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_fmnist, "train.max_steps=2", *QUIET)
    Trainer(cfg, run, [Checkpointer()]).fit()
    config_json = run / "config.json"
    written = config_json.stat().st_mtime_ns, config_json.read_text()
    time.sleep(0.01)
    Trainer(cfg, run, [Checkpointer()]).fit()  # a plain resume: nothing changes
    assert (config_json.stat().st_mtime_ns, config_json.read_text()) == written
    assert not read_events(run)

    changed = tiny_config(
        tiny_fmnist, "train.max_steps=3", "train.log_every=5", "data.num_workers=1", *QUIET
    )
    Trainer(changed, run, [Checkpointer()]).fit()
    rows = [(e["step"], e["key"], e["old"], e["new"]) for e in read_events(run)]
    assert rows == [  # in the config's order
        (2, "data.num_workers", 0, 1),
        (2, "train.max_steps", 2, 3),
        (2, "train.log_every", 2, 5),
    ]
    stored = json.loads(config_json.read_text())
    assert stored == changed.to_dict()


def test_recipe_given_on_resume_must_be_the_runs(tiny_fmnist):
    stored = tiny_config(tiny_fmnist, "train.seed=3").to_dict()
    same = resume_config(stored, ["train.max_steps=9"], recipe="simsiam_resnet18_fmnist")
    assert same.train.seed == 3 and same.train.max_steps == 9
    with pytest.raises(ConfigError, match="--recipe byol_resnet18_fmnist does not match the run's"):
        resume_config(stored, [], recipe="byol_resnet18_fmnist")


def test_cli_checkpoint_of_another_architecture_is_one_error_line(tiny_fmnist, tmp_path):
    """Was: an uncaught CheckpointError traceback, exit 1."""
    run = tmp_path / "run"
    checkpointed_run(tiny_fmnist, run)
    proc = run_cli("--run-dir", str(run), "model.width=16")
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: checkpoint "), proc.stderr
    assert "another architecture (model.width: checkpoint 8, config 16)" in lines[0]


def test_ctrl_c_names_the_step_and_the_auto_named_run_dir(tiny_fmnist, tmp_path):
    args = ["--data", str(tiny_fmnist), *TINY, "train.epochs=100", *QUIET]
    proc = signal_child.start("pretrain/run.py", *args, cwd=tmp_path)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            logs = list(tmp_path.glob("runs/*/metrics.jsonl"))
            if logs and len(logs[0].read_text().splitlines()) >= 2:  # steps 2 and 4 logged
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert signal_child.senders(err) == [os.getpid()], err[-3000:]
    assert proc.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    run_dir = logs[0].parent.relative_to(tmp_path)
    match = re.fullmatch(
        rf"interrupted at step (\d+)/800; re-run with --run-dir {re.escape(str(run_dir))} to "
        r"resume from step (\d+) \(saved in checkpoints/last.pt\)",
        last,
    )
    assert match and int(match.group(1)) >= 4 and match.group(1) == match.group(2), last
    assert "Traceback" not in err
