"""Stopping a run and running it again: Ctrl-C saves the last completed step (never half a
step), a kill's metrics rows are redone once, and a checkpoint of another run is refused."""

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
import torch

from common.files import atomic_write_json
from pretrain.checkpoint import CheckpointError
from pretrain.hooks import Checkpointer, MetricsLog
from pretrain.train import Trainer
from tests import signal_child
from tests.conftest import TINY, tiny_config

ROOT = Path(__file__).resolve().parents[1]
# A run long enough to be stopped half-way (800 steps), with no periodic checkpoint before it
# is: only Ctrl-C's save can make it resume. Bitwise: fp32, deterministic, one thread.
LONG = [
    "train.epochs=100", "train.ckpt_every=1000", "train.deterministic=true", "train.threads=1",
    "monitor.knn_every_epochs=0", "eval.final_knn=false",
]  # fmt: skip


def start_run(run: Path, data: Path, *overrides: str) -> subprocess.Popen:
    """``pretrain/run.py`` in a session of its own (only the signals sent to it reach it)."""
    args = ["--run-dir", str(run), "--data", str(data), *TINY, *LONG, *overrides]
    return signal_child.start("pretrain/run.py", *args)


def logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


def wait_for_rows(proc: subprocess.Popen, run: Path, rows: int) -> None:
    deadline = time.monotonic() + 300
    while len(logged_steps(run)) < rows:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run logged nothing in 300 s"
        time.sleep(0.1)


def rerun(run: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "pretrain" / "run.py"), "--run-dir", str(run), *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def uninterrupted(data: Path, run: Path, *overrides: str) -> dict:
    """The same config trained in one go here (one thread, as the runs above), its last.pt."""
    threads = torch.get_num_threads()
    try:
        Trainer(tiny_config(data, *LONG, *overrides), run, [Checkpointer()]).fit()
    finally:
        torch.set_num_threads(threads)
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]), i


def test_ctrl_c_saves_the_last_completed_step_and_the_same_command_resumes_exactly(
    tiny_fmnist, tmp_path
):
    """Was: "re-run the same command to resume", yet nothing saved before the first periodic
    checkpoint: the run started over."""
    run = tmp_path / "run"
    proc = start_run(run, tiny_fmnist)
    try:
        wait_for_rows(proc, run, 3)  # steps 2, 4 and 6 done; no checkpoint before step 1000
        assert not (run / "checkpoints" / "last.pt").exists()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert signal_child.senders(err) == [os.getpid()], err[-3000:]
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(
        r"interrupted at step (\d+)/800; re-run the same command to resume from step (\d+) "
        r"\(saved in checkpoints/last.pt\)",
        last,
    )
    assert match and match.group(1) == match.group(2), last
    stopped = int(match.group(1))
    assert stopped >= 6
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert saved["step"] == stopped  # the last completed step
    assert max(logged_steps(run)) <= stopped
    assert (run / "encoder" / "config.json").is_file()  # the encoder of that step beside it

    end = f"train.max_steps={stopped + 3}"
    again = rerun(run, end)  # the same command (a later stop, to keep the test short)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {run} from step {stopped}/{stopped + 3}" in again.stdout
    resumed = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert_same_state(resumed, uninterrupted(tiny_fmnist, tmp_path / "straight", end))
    expected = sorted({*range(2, stopped + 4, 2), stopped + 3})  # log_every 2 and the end
    assert logged_steps(run) == expected  # each step once: none lost, none twice


class SigintInsideStep:
    """Sends this process a SIGINT in the middle of step ``at``: after the online network's
    optimizer step, before the EMA target's update (BYOL)."""

    def __init__(self, model: torch.nn.Module, at: int) -> None:
        self.update, self.at, self.calls = model.update_target, at, 0
        model.update_target = self

    def __call__(self, momentum: float) -> None:
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # bytecodes at which Python runs the handler
                pass
        self.update(momentum)


@pytest.fixture
def python_sigint_handler():
    """SIGINT raises KeyboardInterrupt here whatever this process inherited."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_inside_a_step_saves_the_whole_step_never_half(
    tiny_fmnist, tmp_path, python_sigint_handler
):
    """SIGINT between BYOL's optimizer step and its EMA update: the step completes, then
    last.pt holds it whole (online and target of step 3), as an uninterrupted run's."""
    byol = ("method.name='byol'", "method.proj_layers=2", "train.threads=1")
    cfg = tiny_config(tiny_fmnist, *LONG, *byol)
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(cfg, tmp_path / "run", [Checkpointer()])
        SigintInsideStep(trainer.model, at=3)
        with pytest.raises(KeyboardInterrupt):
            trainer.fit()
    finally:
        torch.set_num_threads(threads)
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["step"] == trainer.saved_step == 3
    straight = uninterrupted(tiny_fmnist, tmp_path / "straight", *byol, "train.max_steps=3")
    assert any(k.startswith("target_") for k in saved["model"])
    assert_same_state(saved, straight)


def test_a_killed_run_is_rerun_without_its_rows_twice(tiny_fmnist, tmp_path):
    """Was: a run SIGKILLed before its first checkpoint started over and appended to the
    killed attempt's metrics.jsonl: every step logged twice."""
    run = tmp_path / "run"
    proc = start_run(run, tiny_fmnist)
    try:
        wait_for_rows(proc, run, 3)
    finally:
        proc.kill()  # SIGKILL: nothing saved
        proc.communicate(timeout=60)
    assert not (run / "checkpoints" / "last.pt").exists() and len(logged_steps(run)) >= 3
    again = rerun(run, "train.max_steps=8")
    assert again.returncode == 0, again.stderr[-3000:]
    assert logged_steps(run) == [2, 4, 6, 8]


def test_a_row_cut_short_by_a_kill_is_dropped(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_fmnist, *LONG, "train.max_steps=4")
    Trainer(cfg, run, [MetricsLog(), Checkpointer()]).fit()
    with (run / "metrics.jsonl").open("a") as f:  # step 6 of a later attempt, killed mid-write
        f.write('{"step": 6, "epoch": 0.75, "lr": 0.0')
    Trainer(tiny_config(tiny_fmnist, *LONG, "train.max_steps=6"), run, [MetricsLog()]).fit()
    assert logged_steps(run) == [2, 4, 6]
    assert all(line.endswith("}") for line in (run / "metrics.jsonl").read_text().splitlines())


def test_a_checkpoint_of_another_run_is_refused_naming_the_keys(tiny_fmnist, tmp_path):
    """Was: a last.pt of a 3-channel run dropped into a 1-channel run's directory resumed
    silently (exit 0) with the checkpoint's config; config.json kept saying 1 channel while
    summary.json and encoder/ said 3."""
    run, other = tmp_path / "run", tmp_path / "other"
    mine = tiny_config(tiny_fmnist)
    assert mine.model.in_chans == 1
    atomic_write_json(run / "config.json", mine.to_dict())  # a run stopped before step 1
    theirs = tiny_config(tiny_fmnist, "model.in_chans=3", "method.proj_dim=64")
    path = Checkpointer.save(Trainer(theirs, other, []))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes(path.read_bytes())
    written = (run / "config.json").read_bytes()

    proc = rerun(run)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {run / 'checkpoints' / 'last.pt'} is not this run's")
    assert (
        "(model.in_chans: config.json 1, checkpoint 3; method.proj_dim: config.json 32, "
        "checkpoint 64)" in lines[0]
    )
    assert (run / "config.json").read_bytes() == written
    assert not (run / "summary.json").exists() and not (run / "encoder").exists()
    with pytest.raises(CheckpointError, match="is not this run's checkpoint"):
        Trainer(mine, run, [])  # the job path (PretrainJob) too


def test_a_job_run_in_this_process_gives_sigterm_back(tiny_fmnist, tmp_path):
    """Was: a sweep point run in-process (``PretrainJob``, as the sweep tests do) left SIGTERM
    ignored in pytest for the rest of the session, and every process a later test started
    inherited it: signal state leaked from one test to the next, in whatever order they ran."""
    from pretrain.job import PretrainJob

    before = signal.getsignal(signal.SIGTERM)
    cfg = tiny_config(tiny_fmnist, *LONG, "train.max_steps=1")
    PretrainJob()(cfg.to_dict(), str(tmp_path / "run"))
    assert signal.getsignal(signal.SIGTERM) == before
