"""Pretraining as a preemption-safe submitit job.

``PretrainJob()(config, run_dir)`` runs in every task of a Slurm (or local) job: it joins the
process group (``slurm.dist``), trains, and on rank 0 writes the summary and returns it.

Preemption and time limits: Slurm sends USR2; submitit calls ``checkpoint()`` on rank 0, which
saves ``checkpoints/last.pt`` at the end of the step in progress (``StepGuard``) and returns
the job to requeue. The restarted job resumes from that checkpoint exactly, so a run
preempted any number of times ends with the weights of an uninterrupted run. A requeue that
skips ``checkpoint()`` (``scontrol requeue``, a node failure) resumes from the last periodic
checkpoint (``train.ckpt_every``). Every start and checkpoint is logged in the run's event log
``job_events.jsonl`` (beside the Trainer's config changes on resume); after ``max_requeues``
checkpoint-requeues the job stops requeueing and fails with a message.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import submitit

from pretrain.checkpoint import append_event, read_events
from pretrain.config import from_dict
from pretrain.hooks import Checkpointer, default_hooks
from pretrain.summary import write_summary
from pretrain.train import Trainer
from slurm import dist as sdist
from slurm.signals import StepGuard, ignore_sigterm


def job_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's event log (job starts, checkpoints, config changes), oldest first."""
    return read_events(run_dir)


class PretrainJob(submitit.helpers.Checkpointable):
    """The callable submitted to Slurm: trains ``config`` in ``run_dir``, resumable."""

    def __init__(self, max_requeues: int = 10) -> None:
        self.max_requeues = max_requeues
        self._trainer: Trainer | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"max_requeues": self.max_requeues}  # never pickle the live trainer

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_requeues = state["max_requeues"]
        self._trainer = None

    def __call__(self, config: dict[str, Any], run_dir: str) -> dict[str, Any] | None:
        started = time.perf_counter()
        cfg, run = from_dict(config), Path(run_dir)
        env = sdist.init_distributed(cfg.train.device)
        sigterm = signal.getsignal(signal.SIGTERM)  # given back at the end (a caller in-process)
        ignore_sigterm()  # so that the requeue command survives a preemption's SIGTERM
        guard = StepGuard().install()  # in front of submitit's USR2 handler
        try:
            self._trainer = trainer = Trainer(cfg, run, default_hooks(), step_guard=guard)
            if env.is_main:
                restarts = int(os.environ.get("SLURM_RESTART_COUNT", 0))
                append_event(run, event="start", step=trainer.step, restart=restarts)
                print(
                    f"rank 0 of {env.world_size} ({env.launcher}); "
                    + (f"resuming from step {trainer.step}" if trainer.step else "from scratch")
                    + f" of {trainer.total_steps}; Slurm restart count {restarts}",
                    flush=True,
                )
            trainer.fit()
            summary = None
            if env.is_main:
                events = job_events(run)
                extra = {
                    "job": {
                        "starts": sum(e["event"] == "start" for e in events),
                        "checkpoint_requeues": sum(e["event"] == "checkpoint" for e in events),
                        "max_requeues": self.max_requeues,
                    }
                }
                summary = write_summary(trainer, started, extra)
        finally:
            guard.uninstall()
            if sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)
            self._trainer = None
        sdist.shutdown()
        return summary

    def checkpoint(
        self, config: dict[str, Any], run_dir: str, *rest: Any
    ) -> submitit.helpers.DelayedSubmission:
        """Save the state at the end of the current step, then requeue (rank 0, from submitit)."""
        run = Path(run_dir)
        trainer = self._trainer
        step = None
        if trainer is not None and trainer.dist.is_main:
            Checkpointer.save(trainer)
            step = trainer.step
        done = sum(e["event"] == "checkpoint" for e in job_events(run))
        if done >= self.max_requeues:
            print(f"not requeueing: {done} checkpoint-requeues reached max_requeues", flush=True)
            append_event(run, event="requeue_limit", step=step, requeues=done)
            return None  # submitit then fails the job with "checkpoint function returned None"
        append_event(run, event="checkpoint", step=step, requeue=done + 1)
        print(f"checkpointed at step {step}; requeue {done + 1}/{self.max_requeues}", flush=True)
        # the same kind of job (a subclass: a sweep point) with the same arguments
        resubmit = type(self)(self.max_requeues)
        return submitit.helpers.DelayedSubmission(resubmit, config, run_dir, *rest)
