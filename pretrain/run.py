"""Pretrain a recipe: ``python pretrain/run.py [--recipe NAME] [--run-dir DIR] [key=value ...]``.

With no arguments it runs the main job on the embedded default: SimSiam on Fashion-MNIST on
the CPU, then a full kNN evaluation of the trained encoder beside the same architecture at
random init and raw pixels, and writes the run directory (checkpoint, metrics, collapse-curve
plot, summary). Options and ``key=value`` overrides may come in any order.

Where it runs: in this process (no flag; under torchrun, one process per GPU), as a Slurm job
(``--slurm PRESET``, e.g. ``--slurm 2x8gpu --account proj``), or as a submitit job on this
machine (``--cluster local``). ``train.batch_size`` is always the global batch.

Resuming: a run directory that holds a checkpoint (or the config.json of a run stopped before
its first one) is resumed with the config it was started with, read from the run directory,
not from the recipe: ``pretrain/run.py --run-dir DIR`` alone continues the run. An override
given on resume may change only what leaves the trained state and the batches still to come
as they are (listed below; train.epochs only upward, which stretches the lr and momentum
schedules to the new length), and DINO's teacher temperature, last-layer freeze and clipping
(its authors' remedies for a run that does not learn); anything else (seed, batch size, lr,
method, model, augmentation, data set) is refused: start a new --run-dir for it. A key that
changes the weights' shapes is "another architecture". ``--recipe``, if given on resume, must
be the run's. Each accepted change is appended to DIR/job_events.jsonl (time, step, key, old
and new value) before DIR/config.json is rewritten, and summary.json lists them.

Config keys: ``pretrain/run.py --list-keys [--recipe NAME]`` prints every key with its type,
default (or the recipe's value), valid range and meaning.

Ctrl-C: the step in progress completes, ``checkpoints/last.pt`` is saved at it, and the run
says where it stopped and how to resume (exit status 130); the same command continues from that
step. Errors: a bad config key or value, missing or corrupt data, a checkpoint of another
architecture or of another run, an unknown preset: one ``error:`` line, exit status 2. A failed
Slurm or submitit job: its error, exit status 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.cli import make_parser, run_cli
from pretrain.recipe_index import DEFAULT_RECIPE, available_recipes
from pretrain.resume import RESUME_MUTABLE
from slurm.cli import add_cluster_arguments, resources_from_args

if TYPE_CHECKING:
    from pretrain.config import Config
    from pretrain.train import Trainer

# --help and --list-keys import no torch: what training needs is imported once the arguments
# have parsed (pretrain/run.py --help in well under 2 s, BENCHMARKS.md).


def _epilog() -> str:
    mutable = "\n".join(f"  {key:33} {why}" for key, why in RESUME_MUTABLE.items())
    recipes = "\n".join(f"  {name}" for name in available_recipes())
    return (
        f"recipes (--recipe):\n{recipes}\n\nwhat an override may change on resume:\n{mutable}"
        "\n\nevery config key, its type, default, range and meaning: --list-keys"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = make_parser(__doc__, epilog=_epilog())
    parser.add_argument(
        "--recipe",
        default=None,
        help=f"recipe name or .toml path (default {DEFAULT_RECIPE}; on resume: the run's)",
    )
    parser.add_argument("--run-dir", help="run directory (resumed when it holds a run)")
    parser.add_argument("--data", help="dataset folder; shorthand for data.root=PATH")
    parser.add_argument(
        "--list-keys",
        action="store_true",
        help="print every config key (type, default or --recipe's value, range, meaning); exit",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=2")
    job = add_cluster_arguments(parser, "the run")
    job.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    return parser.parse_args(argv)


def resolve(args: argparse.Namespace) -> tuple[Config, Path]:
    """The run's config and directory: a new run from the recipe, or the stored run's config
    (with the overrides ``Trainer`` then checks against ``RESUME_MUTABLE``)."""
    from pretrain.checkpoint import stored_config
    from pretrain.config import load_config
    from pretrain.resume import resume_config

    overrides = list(args.overrides) + ([f"data.root={args.data}"] if args.data else [])
    stored = stored_config(args.run_dir) if args.run_dir else None
    if stored is None:
        cfg = load_config(args.recipe or DEFAULT_RECIPE, overrides)
    else:
        cfg = resume_config(stored, overrides, args.recipe)
    run_dir = Path(args.run_dir or f"runs/{cfg.recipe}-{time.strftime('%Y%m%d-%H%M%S')}")
    return cfg, run_dir


def resume_hint(run_dir: Path, named: bool, saved_step: int | None, rank0: bool = True) -> str:
    """What to run after Ctrl-C: the same command (or the auto-named run directory), and the
    step it continues from (the checkpoint the interrupted run saved), or that it starts over.
    Under torchrun only rank 0 saves, and says the step."""
    again = "re-run the same command" if named else f"re-run with --run-dir {run_dir}"
    if not rank0:
        return f"{again} to resume (rank 0 saves the last completed step)"
    if saved_step is None:
        return f"{again} to start over (no step was completed)"
    return f"{again} to resume from step {saved_step} (saved in checkpoints/last.pt)"


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of the run directory's ``last.pt`` (None without a readable one)."""
    from pretrain.checkpoint import LAST, CheckpointError, read_checkpoint

    path = run_dir / "checkpoints" / LAST
    try:
        return int(read_checkpoint(path, mmap=True)["step"]) if path.is_file() else None
    except CheckpointError:
        return None


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.list_keys:
        from pretrain.config_keys import keys_table

        print(run_cli(lambda: keys_table(args.recipe)))
        return None
    cfg, run_dir = run_cli(lambda: resolve(args))
    held: dict[str, Trainer] = {}  # the Trainer, once built: its saved step for the hint

    def hint() -> str:
        trainer = held.get("trainer")
        if trainer is None:  # stopped while setting up: whatever the directory holds
            return resume_hint(run_dir, bool(args.run_dir), checkpoint_step(run_dir))
        return resume_hint(run_dir, bool(args.run_dir), trainer.saved_step, trainer.dist.is_main)

    return run_cli(lambda: execute(cfg, args, run_dir, held), resume_hint=hint)


def execute(
    cfg: Config, args: argparse.Namespace, run_dir: Path, held: dict[str, Any] | None = None
) -> dict | None:
    """Train here (one process, or one per GPU under torchrun), or submit the job."""
    if args.slurm or args.cluster:
        return submit(cfg, args, run_dir)
    from pretrain.checkpoint import EVENTS
    from pretrain.hooks import default_hooks
    from pretrain.summary import write_summary
    from pretrain.train import Trainer
    from slurm import dist as sdist

    env = sdist.init_distributed(cfg.train.device)  # torchrun's variables, when present
    run_dir = Path(sdist.broadcast_object(str(run_dir)))  # rank 0's name on every rank
    started = time.perf_counter()
    trainer = Trainer(cfg, run_dir, default_hooks())
    if held is not None:
        held["trainer"] = trainer
    if env.is_main:
        if trainer.resumed_from is not None:
            print(
                f"resuming {run_dir} from step {trainer.resumed_from}/{trainer.total_steps} "
                f"with the run's config (recipe {cfg.recipe})"
            )
        for c in trainer.config_changes:
            print(f"  changed: {c.key} {c.old!r} -> {c.new!r} (logged in {run_dir / EVENTS})")
    trainer.fit()
    summary = write_summary(trainer, started) if env.is_main else None
    sdist.shutdown()
    return summary


def submit(cfg: Config, args: argparse.Namespace, run_dir: Path) -> dict | None:
    """Submit the run as a ``PretrainJob``; print the job id, the logs and how to follow them."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    from pretrain.config import check_batch_split
    from pretrain.job import PretrainJob
    from slurm.submit import describe, make_executor

    cluster = args.cluster or "slurm"
    resources = resources_from_args(args)
    check_batch_split(cfg.train.batch_size, resources.world_size)
    run_dir = run_dir.resolve()
    executor = make_executor(
        run_dir / "submitit", resources, cluster, f"siamhub-{cfg.recipe}", args.max_requeues
    )
    job = executor.submit(PretrainJob(args.max_requeues), cfg.to_dict(), str(run_dir))
    print(describe(job, resources, cluster))
    print(f"  run directory: {run_dir}", flush=True)
    if not (args.wait or cluster == "local"):  # a local job ends with this process: wait
        return {"job_id": job.job_id, "run_dir": str(run_dir)}
    try:
        summary = job.results()[0]  # rank 0 writes the summary; the other ranks return None
    except (FailedJobError, UncompletedJobError) as e:
        print(f"error: the job failed:\n{e}", file=sys.stderr)
        sys.exit(1)
    print(f"job {job.job_id} finished: {summary['steps']} steps, summary in {run_dir}")
    return summary


def cli() -> None:
    """The console script ``siamhub-pretrain`` (``main`` returns the summary; exit 0)."""
    main()


if __name__ == "__main__":
    cli()
