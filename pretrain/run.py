"""Pretrain a recipe: ``python pretrain/run.py [--recipe NAME] [--run-dir DIR] [key=value ...]``.

With no arguments it runs the main job on the embedded default: SimSiam on Fashion-MNIST on
the CPU, then a full kNN evaluation of the trained encoder beside the same architecture at
random init and raw pixels, and writes the run directory (checkpoint, metrics, collapse-curve
plot, summary). A run directory that holds a checkpoint is resumed.

Where it runs: in this process (no flag; under torchrun, one process per GPU), as a Slurm job
(``--slurm PRESET``, e.g. ``--slurm 2x8gpu --account proj``), or as a submitit job on this
machine (``--cluster local``). ``train.batch_size`` is always the global batch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from submitit.core.utils import FailedJobError, UncompletedJobError

from pretrain.config import DEFAULT_RECIPE, Config, ConfigError, available_recipes, load_config
from pretrain.data import DataError
from pretrain.hooks import default_hooks
from pretrain.summary import write_summary
from pretrain.train import Trainer
from slurm import dist as sdist
from slurm.cli import add_cluster_arguments, resources_from_args
from slurm.presets import PresetError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipe",
        default=DEFAULT_RECIPE,
        help=f"recipe name or .toml path (default {DEFAULT_RECIPE}); available: "
        + ", ".join(available_recipes()),
    )
    parser.add_argument("--run-dir", help="run directory (resumed when it holds a checkpoint)")
    parser.add_argument("--data", help="dataset folder; shorthand for data.root=PATH")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=2")
    job = add_cluster_arguments(parser, "the run")
    job.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    overrides = list(args.overrides) + ([f"data.root={args.data}"] if args.data else [])
    cfg = load_config(args.recipe, overrides)
    if args.slurm or args.cluster:
        return submit(cfg, args)
    env = sdist.init_distributed(cfg.train.device)  # torchrun's variables, when present
    run_dir = Path(args.run_dir or f"runs/{cfg.recipe}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = Path(sdist.broadcast_object(str(run_dir)))  # rank 0's name on every rank
    started = time.perf_counter()
    trainer = Trainer(cfg, run_dir, default_hooks())
    if trainer.resumed_from is not None and env.is_main:
        print(f"resuming {run_dir} from step {trainer.resumed_from}/{trainer.total_steps}")
    trainer.fit()
    summary = write_summary(trainer, started) if env.is_main else None
    sdist.shutdown()
    return summary


def submit(cfg: Config, args: argparse.Namespace) -> dict | None:
    """Submit the run as a ``PretrainJob``; print the job id, the logs and how to follow them."""
    from pretrain.job import PretrainJob
    from slurm.submit import describe, make_executor

    cluster = args.cluster or "slurm"
    resources = resources_from_args(args)
    if cfg.train.batch_size % resources.world_size:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} (the global batch) does not split over "
            f"{resources.world_size} processes; pick a multiple of {resources.world_size}"
        )
    run_dir = Path(args.run_dir or f"runs/{cfg.recipe}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = run_dir.resolve()
    executor = make_executor(
        run_dir / "submitit", resources, cluster, f"siamhub-{cfg.recipe}", args.max_requeues
    )
    job = executor.submit(PretrainJob(args.max_requeues), cfg.to_dict(), str(run_dir))
    print(describe(job, resources, cluster))
    print(f"  run directory: {run_dir}", flush=True)
    if not (args.wait or cluster == "local"):  # a local job ends with this process: wait
        return {"job_id": job.job_id, "run_dir": str(run_dir)}
    summary = job.results()[0]  # rank 0 writes the summary; the other ranks return None
    print(f"job {job.job_id} finished: {summary['steps']} steps, summary in {run_dir}")
    return summary


if __name__ == "__main__":
    try:
        main()
    except (ConfigError, DataError, PresetError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (FailedJobError, UncompletedJobError) as e:
        print(f"error: the job failed:\n{e}", file=sys.stderr)
        sys.exit(1)
