"""Pretraining through submitit on a real Slurm cluster started on 127.0.0.1 for this session.

The session fixture ``slurm_cluster`` (tests/conftest.py) runs ``slurm/dev-cluster/start.sh``
(which installs Debian's Slurm, munge, slurmdbd and MariaDB when missing) and ``stop.sh``
afterwards, also when a test fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
import torch

from pretrain.config import Config
from pretrain.job import PretrainJob, job_events
from pretrain.train import Trainer
from slurm.presets import resolve
from slurm.submit import make_executor, submit_array
from tests.conftest import TINY, tiny_config

pytestmark = pytest.mark.slurm
ROOT = Path(__file__).resolve().parents[1]
# ~160 steps of ~30 ms: long enough to interrupt mid-run; knn off to keep it short
LONG = ("train.epochs=20", "train.threads=1", "monitor.knn_every_epochs=0", "eval.final_knn=false")


def executor(folder: Path, cpus: int = 1, partition: str = "debug") -> submitit.AutoExecutor:
    res = resolve("cpu", cpus_per_task=cpus, mem="1G", time="10", partition=partition)
    return make_executor(folder, res, "slurm", max_requeues=3, signal_delay_s=30)


def wait_for_step(run: Path, job: submitit.Job, step: int, timeout: float = 120) -> None:
    """Until the run has logged ``step`` (a metrics row), failing if the job ends first."""
    deadline = time.time() + timeout
    path = run / "metrics.jsonl"
    while time.time() < deadline:
        if path.exists():
            rows = [json.loads(r) for r in path.read_text().splitlines() if r.strip()]
            if rows and rows[-1]["step"] >= step:
                return
        if job.done():
            pytest.fail(f"job ended before step {step}: {job.stderr()}")
        time.sleep(0.1)
    pytest.fail(f"step {step} not reached in {timeout} s; job state {job.state}: {job.stderr()}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """The tiny long run trained uninterrupted in this process: its data and final weights."""
    from tests.conftest import make_tiny_fmnist

    data = make_tiny_fmnist(tmp_path_factory.mktemp("fmnist"))
    cfg = tiny_config(data, *LONG)
    weights = Trainer(cfg, tmp_path_factory.mktemp("reference")).fit().model.state_dict()
    return data, weights


def final_state(job_id: str, timeout: float = 30) -> str:
    """The job's state in accounting once it is final: slurmdbd records the end a moment after
    the job's result file exists, so sacct may still say RUNNING right after it returned."""
    deadline = time.time() + timeout
    state = ""
    while time.time() < deadline:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-j", job_id, "-o", "state"], capture_output=True, text=True
        )
        state = out.stdout.strip()
        if state and state not in ("RUNNING", "PENDING", "COMPLETING"):
            return state
        time.sleep(0.5)
    return state


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=False)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_tiny_pretraining_job_via_the_cli(slurm_cluster, tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "pretrain/run.py", "--slurm", "cpu", "--partition", "debug"]
    cmd += ["--cpus", "1", "--mem", "2G", "--time", "10", "--wait", "--run-dir", str(run)]
    cmd += ["--data", str(tiny_fmnist), *TINY, "train.max_steps=6", "train.threads=1"]
    cmd += ["eval.final_knn=false"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = proc.stdout.split("submitted job ")[1].split()[0]
    assert job_id.isdigit()
    assert f"squeue -j {job_id}" in proc.stdout and "follow: tail -f " in proc.stdout
    log = Path(proc.stdout.split("stderr: ")[1].split()[0])
    assert log.is_file() and "pretrain" in log.read_text()  # the job's own progress bar
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["job"]["starts"] == 1
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["step"] == 6
    assert final_state(job_id) == "COMPLETED"


def test_preempted_job_checkpoints_requeues_and_ends_as_uninterrupted(
    slurm_cluster, reference, tmp_path
):
    data, expected = reference
    run = tmp_path / "run"
    cfg: Config = tiny_config(data, *LONG, "train.ckpt_every=0")  # only checkpoint() saves
    job = executor(tmp_path / "jobs").submit(PretrainJob(max_requeues=3), cfg.to_dict(), str(run))
    wait_for_step(run, job, 10)
    # a job in the higher-priority partition that needs both CPUs preempts it (USR2, requeue)
    high = executor(tmp_path / "high", cpus=2, partition="high").submit(time.sleep, 2)
    high.result()
    summary = job.result()
    events = job_events(run)
    starts = [e for e in events if e["event"] == "start"]
    saved = [e for e in events if e["event"] == "checkpoint"]
    assert len(saved) == 1 and 10 <= saved[0]["step"] < summary["steps"], events
    assert [e["step"] for e in starts] == [0, saved[0]["step"]]  # resumed where it checkpointed
    assert starts[1]["restart"] == 1
    assert summary["job"] == {"starts": 2, "checkpoint_requeues": 1, "max_requeues": 3}
    assert_same_weights(final_weights(run), expected)


def test_plain_requeue_resumes_from_the_last_periodic_checkpoint(
    slurm_cluster, reference, tmp_path
):
    data, _ = reference
    run = tmp_path / "run"
    # Long enough that the job cannot finish during the KillWait between the requeue's SIGTERM
    # (ignored) and its SIGKILL; else the first run completes and no restart ever happens.
    cfg = tiny_config(data, *LONG, "train.epochs=50", "train.ckpt_every=8")
    expected = Trainer(cfg, tmp_path / "reference").fit().model.state_dict()
    job = executor(tmp_path / "jobs").submit(PretrainJob(), cfg.to_dict(), str(run))
    wait_for_step(run, job, 20)
    subprocess.run(["scontrol", "requeue", job.job_id], check=True)  # no USR2, no checkpoint()
    job.result()
    events = job_events(run)
    assert not [e for e in events if e["event"] == "checkpoint"]
    steps = [e["step"] for e in events if e["event"] == "start"]
    assert len(steps) == 2 and steps[0] == 0 and steps[1] >= 16 and steps[1] % 8 == 0, events
    assert_same_weights(final_weights(run), expected)


def test_job_array_of_four_configs(slurm_cluster, tiny_fmnist, tmp_path):
    configs = [
        tiny_config(
            tiny_fmnist,
            "train.max_steps=2",
            "train.threads=1",
            f"train.seed={s}",
            "eval.final_knn=false",
            "monitor.knn_every_epochs=0",
        ).to_dict()
        for s in range(4)
    ]
    runs = [str(tmp_path / f"run{s}") for s in range(4)]
    ex = executor(tmp_path / "jobs")
    jobs = submit_array(ex, PretrainJob(), configs, runs, parallelism=2)
    assert len({j.job_id.split("_")[0] for j in jobs}) == 1  # one array
    script = next((tmp_path / "jobs").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-3%2" in script  # at most 2 at once
    results = [j.result() for j in jobs]
    assert [r["config"]["train"]["seed"] for r in results] == [0, 1, 2, 3]
    assert all((Path(r) / "summary.json").is_file() for r in runs)


def test_a_failing_job_reports_its_error_to_the_submitter(slurm_cluster, tmp_path):
    cfg = tiny_config(tmp_path / "no-such-data")
    job = executor(tmp_path / "jobs").submit(PretrainJob(), cfg.to_dict(), str(tmp_path / "run"))
    with pytest.raises(submitit.core.utils.FailedJobError) as err:
        job.result()
    assert "DataError" in str(err.value) and "no-such-data" in str(err.value)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)  # the fix travels too


# One step: enough for SyncBN's statistics, DDP's gradient all-reduce and the update, and
# before the tiny model's sensitivity to rounding takes over. Measured with the same weights
# and data, one process with oneDNN on vs off (the same math, other kernels) differs by 5e-7
# after one step but 8e-5 after two and 1e-2 after four; 2 tasks vs 1 differed by 1.7e-7
# (one step) and, on a CPU whose oneDNN picks other kernels for the half batch, 7.7e-5 after
# four. Without SyncBN the first step already moves the weights by 4e-2.
ONE_STEP = ("train.max_steps=1", "train.threads=1", "train.channels_last=false")
SYNC_BN_BOUND = 1e-5


def test_two_task_job_trains_with_gloo_as_one_process_would(slurm_cluster, tiny_fmnist, tmp_path):
    """submitit's TorchDistributedEnvironment -> gloo, SyncBN, DDP: 2 tasks × B/2 == 1 × B;
    the same job without SyncBN is told apart by the same comparison."""
    res = resolve("cpu", tasks_per_node=2, cpus_per_task=1, mem="2G", time="10", partition="debug")
    diffs = {}
    for sync in ("true", "false"):
        cfg = tiny_config(
            tiny_fmnist,
            *ONE_STEP,
            f"train.sync_bn={sync}",
            "monitor.knn_every_epochs=0",
            "eval.final_knn=false",
        )
        expected = Trainer(cfg, tmp_path / f"single-{sync}").fit().model.state_dict()
        ex = make_executor(tmp_path / f"jobs-{sync}", res, "slurm")
        job = ex.submit(PretrainJob(), cfg.to_dict(), str(tmp_path / f"run-{sync}"))
        summaries = job.results()
        assert summaries[1] is None and summaries[0]["world_size"] == 2
        got = final_weights(tmp_path / f"run-{sync}")
        diffs[sync] = max((got[k].double() - expected[k].double()).abs().max().item() for k in got)
    assert diffs["true"] < SYNC_BN_BOUND, diffs
    assert diffs["false"] > 100 * SYNC_BN_BOUND, diffs  # the comparison can see a wrong BN
