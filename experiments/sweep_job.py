"""One sweep point as one (Slurm) job: ``SweepPointJob`` pretrains (a ``PretrainJob``:
preemption → checkpoint → requeue → exact resume), then on rank 0 writes the point's
``pretrain`` record and runs its transfer tasks (``transfer.run.run_task``), each recorded once
in ``sweep_progress.json``; ``point.json`` last marks the point done.

submitit pickles the job by its class's module path, ``experiments.sweep_job.SweepPointJob``:
the nodes import it from the installed package.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from experiments.sweep_plan import DONE, PROGRESS
from hub.provenance import git_sha, write_json_atomic
from pretrain.config import from_dict
from pretrain.job import PretrainJob
from records.length import trained_from_epochs
from transfer import run_records as records
from transfer import tasks
from transfer.models import load_model
from transfer.run import run_task
from transfer.tasks import RunContext


class SweepPointJob(PretrainJob):
    """A sweep point as one (Slurm) job: pretrain (resumable), then the transfer tasks on rank
    0, each writing its record once; ``point.json`` last, which marks the point done."""

    def __call__(  # type: ignore[override]
        self, config: dict[str, Any], run_dir: str, point: dict[str, Any]
    ) -> dict[str, Any] | None:
        summary = super().__call__(config, run_dir)
        if summary is None:  # not rank 0
            return None
        return finish_point(Path(run_dir), summary, point)


def finish_point(run: Path, summary: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """Write the point's pretraining record and run its transfer tasks (skipping those a
    previous attempt recorded), then ``point.json``; returns the point's result."""
    progress_path = run / PROGRESS
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else {}
    results_root = Path(point["results_dir"]) if point.get("results_dir") else None
    annotations = {"sweep": point["sweep"]}
    if "pretrain" not in progress:
        record = pretrain_record(run, summary, point)
        progress["pretrain"] = str(
            records.write_record(records.require_hardware(record), results_root)
        )
        write_json_atomic(progress_path, progress)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = RunContext(
        seed=point.get("seed", 0), device=device, results_root=results_root, work_dir=run / "work"
    )
    model = None
    for task in point["transfer"]:
        if task in progress:
            continue
        if model is None:
            model = load_model(str(run))
            model = replace(model, model_id=f"{point['sweep']['id']}/{point['sweep']['point']}")
        overrides = task_overrides(task, point.get("transfer_overrides", []), summary["config"])
        record, path = run_task(task, model, overrides, ctx, annotations=annotations)
        progress[task] = str(path)
        write_json_atomic(progress_path, progress)
        print(f"[{point['sweep']['point']}] {task}: {record['metrics']}", flush=True)
    done = {"point": point["sweep"]["point"], "records": progress, "summary": summary["final"]}
    write_json_atomic(run / DONE, done)
    return done


def task_overrides(task: str, given: list[str], config: dict[str, Any]) -> list[str]:
    """``task:key=value`` options for ``task``; the pretraining data folder by default."""
    mine = [o.split(":", 1)[1] for o in given if o.split(":", 1)[0] == task]
    fields = tasks.get(task).Options.__dataclass_fields__
    given_root = any(o.startswith("data_root=") for o in mine)
    same_data = "dataset" in fields and config["data"]["dataset"] == fields["dataset"].default
    if "data_root" in fields and same_data and not given_root:
        mine.insert(0, f"data_root={config['data']['root']}")
    return mine


def pretrain_record(run: Path, summary: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The ``pretrain`` result record of a sweep point (``leaderboards/results/pretrain/``)."""
    cfg = from_dict(summary["config"])
    steps = summary["steps"]
    metrics = {k: v for k, v in summary["final"].items()}
    metrics["train_seconds"] = summary["train_seconds"]
    metrics["images_per_second"] = (
        steps * cfg.train.batch_size / summary["train_seconds"] if summary["train_seconds"] else 0
    )
    if "knn_eval" in summary:
        metrics["final_knn"] = summary["knn_eval"]
    model_id = f"{point['sweep']['id']}/{point['sweep']['point']}"
    world = summary.get("world_size", 1)
    return {
        "run_id": records.run_id("pretrain", model_id, cfg.train.seed),
        "task": "pretrain",
        "model": {"id": model_id, "revision": None, "kind": "run_dir"},
        "pretrain": {
            "method": cfg.method.name,
            "recipe": cfg.recipe,
            "backbone": asdict(cfg.model),
            "epochs": cfg.train.epochs,  # configured: what the schedules span
            "trained_steps": steps,
            "trained_epochs": summary["epochs"],
            "trained": summary.get("trained")
            or trained_from_epochs(steps, summary["epochs"], cfg.train.epochs),
            "batch_size": cfg.train.batch_size,
            "dataset": cfg.data.dataset,
            "seed": cfg.train.seed,
            "source": f"sweep {point['sweep']['id']}, run directory {run.name}",
        },
        "protocol": {
            "recipe": cfg.recipe,
            "method": cfg.method.name,
            "batch_size": cfg.train.batch_size,
            "world_size": world,
            "accum_steps": cfg.train.accum_steps,
            "micro_batch": cfg.train.batch_size // world // cfg.train.accum_steps,
            "lr_scaling": point["sweep"]["lr_scaling"],
            "base_lr": cfg.optim.base_lr,
            "lr": cfg.init_lr,
            "warmup_epochs": cfg.warmup_epochs,
            "epochs": cfg.train.epochs,
            "steps": steps,
            "optimizer": cfg.optim.name,
            "overrides": point["overrides"],
        },
        "metrics": metrics,
        "sweep": point["sweep"],
        "verdict": summary.get("verdict"),  # records.verdict's, over the run's last fifth
        "seed": cfg.train.seed,
        "git_sha": git_sha(),
        # the pretraining's own (pretrain.summary): its threads, CPU and autocast
        "hardware": summary.get("hardware"),
        "wall_seconds": summary.get("wall_seconds"),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "job": summary.get("job"),
    }
