"""Sweeps: ``python experiments/sweep.py --recipe NAME --batch-sizes 64,128,...,4096 [--lr-scaling
linear|sqrt] [--transfer knn,linear] [--slurm PRESET | --cluster local] [key=value ...]``.

One pretraining per point, each followed by the requested transfer tasks, every point writing
one ``pretrain`` result record and one record per transfer task (all carrying the sweep's
``sweep`` block, which ``leaderboards/build.py`` groups by). Axes: ``--batch-sizes`` (with the
recipe's lr rule: lr = base_lr × batch/256, SimSiam §4.2 / Table 2, or ``--lr-scaling sqrt``:
base_lr × √(batch/256); the recipe's large-batch warmup, ``optim.large_batch``), any config key
with ``--set key=v1,v2,...`` (lr, weight decay, τ, epochs ...; repeatable: the product), and
several recipes with ``--recipe a,b,c`` (methods side by side on the same budget).

Where the points run: here, one after the other (no flag); as one Slurm job array with at most
``--parallelism`` points at once (``--slurm PRESET``); or as submitit jobs on this machine
(``--cluster local``, ``--parallelism`` at a time). Each point is a ``SweepPointJob``: a
``PretrainJob`` (preemption → checkpoint → requeue → exact resume) that then runs its transfer
tasks on rank 0.

Identity: a sweep is its whole spec (recipes, swept keys and values, every override, the
length each recipe trains, lr rule, micro-batch, transfer tasks and options). Its id, which
every record carries and the boards group by, is ``<name>-<8 hex digits of the SHA-1 of the
canonical spec>`` (name: ``--name``, default recipe and swept keys): two different sweeps never
share rows, and the same command finds its own sweep again.

Resumable: the sweep lives in ``--sweep-dir`` (default ``runs/sweeps/<id>``). A point is
done when its ``point.json`` lists records that exist; re-running the same command skips done
points, leaves points whose Slurm jobs are still queued or running alone, and resubmits the
rest, which resume from their last checkpoint and skip the transfer tasks already recorded.
``--micro-batch N`` splits a batch that does not fit into gradient-accumulation steps of at most
N images per process (``train.accum_steps``), recorded in the results.

Options and ``key=value`` overrides (config keys of every point, e.g. ``train.epochs=5``) may
come in any order. Errors are one ``error:`` line (exit 2); Ctrl-C stops at once (exit 130)
and says which point was running; the same command resumes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from common.cli import clear_position, make_parser, note_position, run_cli
from common.overrides import split_list
from common.progress import progress
from experiments.sweep_job import SweepPointJob
from experiments.sweep_plan import (
    BATCH_KEY,
    LR_SCALINGS,
    Point,
    SweepError,
    SweepSpec,
    active_slurm_jobs,
    format_table,
    plan,
    point_args,
    remember_jobs,
)
from pretrain.config import available_recipes
from slurm.cli import add_cluster_arguments, resources_from_args
from slurm.presets import Resources
from transfer import tasks


def run_sweep(
    spec: SweepSpec,
    folder: Path,
    cluster: str | None = None,
    resources: Resources | None = None,
    parallelism: int = 1,
    results_dir: Path | None = None,
    wait: bool = True,
    max_requeues: int = 10,
) -> dict[str, Any]:
    """Run (or submit) the points that are not done; return what happened."""
    active = active_slurm_jobs(folder) if cluster == "slurm" else set()
    p = plan(spec, folder, active)
    world = resources.world_size if resources else 1
    # every point's config (and so every config error) before anything is submitted
    args = [point_args(spec, x, folder, world, results_dir, 0) for x in p.todo]
    print(
        f"sweep {spec.sweep_id()} ({spec.axis_name()}): {len(p.done)} done, "
        f"{len(p.in_flight)} queued or running, {len(p.todo)} to run -> {folder}",
        flush=True,
    )
    report: dict[str, Any] = {
        "done": [x.slug for x in p.done],
        "in_flight": [x.slug for x in p.in_flight],
        "submitted": [x.slug for x in p.todo],
        "results": {},
    }
    if not p.todo:
        return report
    points = spec.points()
    number = {x.slug: i for i, x in enumerate(points, start=1)}

    def at(point: Point, what: str = "point") -> str:
        return f"{what} {number[point.slug]}/{len(points)} ({point.slug})"

    if cluster is None:
        bar = progress(args, desc="sweep", unit="point")
        for point, (cfg, run_dir, info) in zip(p.todo, bar, strict=True):
            note_position(at(point))
            try:
                report["results"][point.slug] = SweepPointJob(max_requeues)(cfg, run_dir, info)
            except KeyboardInterrupt:
                note_position(at(point))  # the point, not the step inside it, is what resumes
                raise
        return report
    from slurm.submit import make_executor, submit_array

    assert resources is not None
    executor = make_executor(
        folder / "submitit", resources, cluster, f"sweep-{spec.name}", max_requeues,
        array_parallelism=parallelism if cluster == "slurm" else None,
    )  # fmt: skip
    columns = [list(c) for c in zip(*args, strict=True)]
    if cluster == "slurm":
        jobs = submit_array(
            executor, SweepPointJob(max_requeues), *columns, parallelism=parallelism
        )
        remember_jobs(folder, {x.slug: j.job_id for x, j in zip(p.todo, jobs, strict=True)})
        print(
            f"submitted job array {jobs[0].job_id.split('_')[0]} ({len(jobs)} points, at most "
            f"{parallelism} at once); follow with squeue; re-run this command to resume",
            flush=True,
        )
        if wait:
            for point, job in zip(p.todo, jobs, strict=True):
                note_position(f"{at(point, 'waiting for point')}, Slurm job {job.job_id}")
                report["results"][point.slug] = job.results()[0]
        else:
            report["job_ids"] = [j.job_id for j in jobs]
        return report
    # local: submitit jobs on this machine, `parallelism` at a time
    pending = list(zip(p.todo, args, strict=True))
    running: list[tuple[Point, Any]] = []
    while pending or running:
        while pending and len(running) < parallelism:
            point, (cfg, run_dir, info) = pending.pop(0)
            running.append(
                (point, executor.submit(SweepPointJob(max_requeues), cfg, run_dir, info))
            )
        point, job = running.pop(0)
        note_position(at(point, "waiting for point"))
        report["results"][point.slug] = job.results()[0]
    return report


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument(
        "--recipe",
        required=True,
        help=f"recipe name(s), comma-separated; available: {', '.join(available_recipes())}",
    )
    p.add_argument("--batch-sizes", help="global batch sizes, e.g. 64,128,256,512,1024,2048,4096")
    p.add_argument(
        "--lr-scaling",
        choices=LR_SCALINGS,
        default="linear",
        help="lr rule over batch sizes: linear (base_lr × B/256, default) or sqrt "
        "(base_lr × √(B/256))",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a config key over values (repeatable: all combinations)",
    )
    p.add_argument("--transfer", default="", help="transfer tasks per point, e.g. knn,linear")
    p.add_argument(
        "--transfer-opt",
        action="append",
        default=[],
        metavar="TASK:KEY=VALUE",
        help="a transfer task option, e.g. linear:epochs=5 (repeatable)",
    )
    p.add_argument(
        "--name",
        help="sweep name (default: recipe and swept keys); the id adds a hash of the whole spec",
    )
    p.add_argument("--sweep-dir", type=Path, help="the sweep's folder (default runs/sweeps/<id>)")
    p.add_argument("--results-dir", type=Path, help="result records (default leaderboards/results)")
    p.add_argument(
        "--micro-batch",
        type=int,
        default=0,
        help="at most N images per process per forward: larger batches accumulate gradients "
        "(default 0: no limit)",
    )
    add_cluster_arguments(p, "the points as one job array")
    p.add_argument(
        "--parallelism", type=int, default=4, help="points running at once (Slurm or local)"
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="Slurm: return after submitting (re-run the command later to collect and resume)",
    )
    p.add_argument("overrides", nargs="*", help="config overrides for every point, key=value")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    axes: dict[str, list[str]] = {}
    if args.batch_sizes:
        axes[BATCH_KEY] = split_list(args.batch_sizes)
        if not all(v.isdigit() and int(v) > 0 for v in axes[BATCH_KEY]):
            raise SweepError(f"--batch-sizes takes positive integers, got {args.batch_sizes!r}")
    for item in args.set:
        key, sep, values = item.partition("=")
        if not sep or not split_list(values):
            raise SweepError(f"--set takes KEY=V1,V2,..., got {item!r}")
        if key in axes:
            raise SweepError(f"{key} is swept twice")
        axes[key] = split_list(values)  # each value is read by the config's grammar
    recipes = split_list(args.recipe)
    transfer = split_list(args.transfer)
    if transfer or args.transfer_opt:
        for opt in args.transfer_opt:
            if ":" not in opt or opt.split(":", 1)[0] not in transfer:
                raise SweepError(
                    f"--transfer-opt takes TASK:KEY=VALUE for a --transfer task: {opt!r}"
                )
        for t in transfer:  # an unknown task or option names the valid ones, before any run
            mine = [o.split(":", 1)[1] for o in args.transfer_opt if o.startswith(f"{t}:")]
            try:
                tasks.parse_options(tasks.get(t).Options, mine)
            except tasks.OptionError as e:
                raise SweepError(f"--transfer {t}: {e}") from e
    if not axes and len(recipes) < 2:
        raise SweepError("nothing to sweep: give --batch-sizes, --set KEY=V1,V2 or --recipe a,b")
    swept = [k.rsplit(".", 1)[-1] for k in axes]
    name = args.name or "-".join([recipes[0] if len(recipes) == 1 else "methods", *swept])
    return SweepSpec(
        name=name,
        recipes=recipes,
        axes=axes,
        lr_scaling=args.lr_scaling,
        transfer=transfer,
        transfer_overrides=list(args.transfer_opt),
        overrides=list(args.overrides),
        micro_batch=args.micro_batch,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    spec = spec_from_args(args)
    folder = args.sweep_dir or Path("runs/sweeps") / spec.sweep_id()
    cluster = args.cluster or ("slurm" if args.slurm else None)
    resources = resources_from_args(args) if cluster else None
    report = run_sweep(
        spec,
        folder,
        cluster,
        resources,
        args.parallelism,
        args.results_dir,
        wait=not args.no_wait,
        max_requeues=args.max_requeues,
    )
    clear_position()
    print(format_table(folder, spec))
    print("leaderboards: python leaderboards/build.py")
    return report


def main_or_failed_point() -> None:
    """``main`` with a failed point as one message (exit 1) instead of submitit's traceback."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        main()
    except (FailedJobError, UncompletedJobError) as e:
        print(f"error: a sweep point failed (re-run the command to resume):\n{e}", file=sys.stderr)
        sys.exit(1)


def cli() -> None:
    """The command (``python experiments/sweep.py``, console script ``siamhub-sweep``)."""
    run_cli(main_or_failed_point)


if __name__ == "__main__":
    cli()
