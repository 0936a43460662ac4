"""Submission through submitit: one job, or a job array, on Slurm or on this machine.

``make_executor`` turns ``Resources`` (``slurm.presets``) into a submitit executor: Slurm
(``sbatch``) or ``local`` (submitit's LocalExecutor: same job files, same requeue by signal,
subprocesses on this machine). ``submit_array`` is ``map_array`` with a concurrency limit.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import submitit

from slurm.presets import PresetError, Resources

CLUSTERS = ("slurm", "local")


def make_executor(
    folder: str | Path,
    resources: Resources,
    cluster: str = "slurm",
    name: str = "siamhub",
    max_requeues: int = 10,
    signal_delay_s: int = 120,
    array_parallelism: int | None = None,
) -> submitit.AutoExecutor:
    """An executor writing its job files under ``folder/%j``.

    ``max_requeues`` is also submitit's limit on time-out requeues (``slurm_max_num_timeout``);
    ``signal_delay_s`` is how long before the time limit Slurm sends USR2.
    """
    if cluster not in CLUSTERS:
        raise PresetError(f"unknown cluster {cluster!r}; use one of {', '.join(CLUSTERS)}")
    if cluster == "local" and resources.nodes > 1:
        raise PresetError(
            f"--cluster local runs on this machine only; {resources.nodes} nodes need Slurm"
        )
    if cluster == "slurm" and shutil.which("srun") is None:
        raise PresetError(
            "--slurm needs Slurm's client commands (sbatch, srun) on PATH and none was found; "
            "submit from a Slurm login node, or use --cluster local to run the job here"
        )
    executor = submitit.AutoExecutor(
        folder=Path(folder) / "%j", cluster=cluster, slurm_max_num_timeout=max_requeues
    )
    params: dict[str, Any] = {
        "name": name,
        "nodes": resources.nodes,
        "tasks_per_node": resources.tasks,
        "gpus_per_node": resources.gpus_per_node,
        "cpus_per_task": resources.cpus_per_task,
        "mem_gb": resources.mem_gb,
        "timeout_min": resources.timeout_min,
    }
    if cluster == "slurm":
        params["slurm_signal_delay_s"] = signal_delay_s
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(resources, key):
                params[f"slurm_{key}"] = getattr(resources, key)
        if array_parallelism:
            params["slurm_array_parallelism"] = array_parallelism
    executor.update_parameters(**params)
    return executor


def describe(job: submitit.Job, resources: Resources, cluster: str = "slurm") -> str:
    """What a user needs after submitting: the id, where the logs are, how to follow them."""
    where = f"partition {resources.partition or '(default)'}" if cluster == "slurm" else "local"
    gpus = f" x {resources.gpus_per_node} GPUs" if resources.gpus_per_node else ""
    lines = [
        f"submitted job {job.job_id} ({where}): {resources.nodes} node(s){gpus}, "
        f"{resources.world_size} process(es), time limit {resources.timeout_min} min",
        f"  stdout: {job.paths.stdout}",
        f"  stderr: {job.paths.stderr}",
        f"  follow: tail -f {job.paths.stderr}",
    ]
    if cluster == "slurm":
        lines.append(f"  state:  squeue -j {job.job_id}   (after it ends: sacct -j {job.job_id})")
        lines.append(f"  cancel: scancel {job.job_id}")
    return "\n".join(lines)


def submit_array(
    executor: submitit.AutoExecutor,
    fn: Callable[..., Any],
    *arg_lists: Sequence[Any],
    parallelism: int | None = None,
) -> list[submitit.Job]:
    """``fn(*args)`` for each position of ``arg_lists`` as one job array, at most
    ``parallelism`` running at once (Slurm's ``--array=0-N%parallelism``)."""
    if parallelism:
        executor.update_parameters(slurm_array_parallelism=parallelism)
    return executor.map_array(fn, *arg_lists)
