"""Measure an encoder: ``python transfer/run.py --task <name> --model <hub id | encoder dir |
run dir> [key=value ...]``.

Tasks (one file each in ``transfer/tasks/``): knn, linear, lowshot, fmnist_det, voc_det,
coco_det. With no ``--task`` it runs the embedded default: kNN, the fast linear probe,
low-shot and fmnist_det, for the model and for the same architecture at random init; with no
``--model`` the model is the latest ``runs/simsiam_resnet18_fmnist-*`` pretraining run. Every
(model, task) run writes one record ``leaderboards/results/<task>/<run id>.json``.

``--model`` is a local folder (an encoder folder with config.json + model.safetensors, or a
pretraining run directory with checkpoints/last.pt) or a Hugging Face Hub repo id
``<org>/<name>``. A value that looks like a path (``./x``, ``runs/x``, ``a/b/c``, ``x.pt``) is
never sent to the Hub; a Hub id is looked up once (``HF_ENDPOINT``; the local cache when the
Hub cannot be reached or ``HF_HUB_OFFLINE=1``).

Task options are ``key=value`` arguments, before or after the options (e.g. ``epochs=5
lrs=(0.1,1.0)``); an unknown key lists the task's valid ones, a value outside its range
(``transfer/option_rules.py``, as the flags' numbers) names the range. Errors are one
``error:`` line (exit 2), given before any model is loaded. Ctrl-C stops at once (exit 130);
the records already written are kept, and the same command measures everything again.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from common.cli import clear_position, make_parser, note_position, run_cli
from hub.provenance import git_sha
from records.length import with_trained
from records.tasks import canonical_metrics
from transfer import artifacts, option_rules, tasks
from transfer import run_records as records
from transfer.models import LoadedModel, load_model
from transfer.tasks import RunContext, TaskOutput

EMBEDDED = ("fmnist_det", "knn", "linear", "lowshot")  # detection first: the longest


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument(
        "--task", help=f"one of {', '.join(tasks.MODULES)}; none: the embedded default (above)"
    )
    p.add_argument(
        "--model",
        help="Hub repo id <org>/<name>, encoder folder, or pretraining run directory; none: the "
        "latest runs/simsiam_resnet18_fmnist-* run",
    )
    p.add_argument("--revision", help="Hub revision (branch, tag or commit) of a Hub --model")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="measure the model's architecture at a seeded random init instead of its weights",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the task (and of a random init)")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="run seeds seed..seed+N-1 and record their mean ± std (default 1)",
    )
    p.add_argument("--engine", help="detection engine: torchvision (default) or detectron2")
    p.add_argument("--iters", type=int, help="detection: training iterations (small runs)")
    p.add_argument("--short-side", type=int, help="detection: one train/test short side (px)")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="where records go (default leaderboards/results, or $SIAMHUB_RESULTS)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("transfer_work"),
        help="scratch space of the tasks, e.g. generated detection data (default transfer_work)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("overrides", nargs="*", help="task options, e.g. lrs=(0.1,1.0) epochs=5")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def check_flags(args: argparse.Namespace) -> None:
    """The flags' numbers against ``option_rules.FLAGS`` (one ``error:`` line, exit 2)."""
    option_rules.check_flags(
        {
            "--seed": args.seed,
            "--seeds": args.seeds,
            "--iters": args.iters,
            "--short-side": args.short_side,
            "--threads": args.threads,
        }
    )


def task_overrides(args: argparse.Namespace) -> list[str]:
    """The task's ``key=value`` options, with the detection flags as options."""
    extra = []
    if args.engine is not None:
        extra.append(f"engine={args.engine}")
    if args.iters is not None:
        extra.append(f"iters={args.iters}")
    if args.short_side is not None:
        extra.append(f"short_side={args.short_side}")
    return list(args.overrides) + extra


def aggregate(outputs: list[TaskOutput]) -> dict:
    """One seed: its metrics. Several: mean and std of every numeric metric, and each seed's."""
    if len(outputs) == 1:
        return outputs[0].metrics
    metrics: dict = {}
    for key in outputs[0].metrics:
        values = [o.metrics[key] for o in outputs]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            metrics[key] = statistics.fmean(values)
            metrics[f"{key}_std"] = statistics.stdev(values)
    metrics["per_seed"] = [o.metrics for o in outputs]
    return metrics


def run_task(
    name: str,
    model: LoadedModel,
    overrides: list[str],
    ctx: RunContext,
    seeds: int = 1,
    annotations: dict | None = None,
) -> tuple[dict, Path]:
    """Run a task (``seeds`` times), write its record, return (record, path).

    ``annotations`` are extra top-level fields of the record (a sweep point's ``sweep`` block).
    """
    module = tasks.get(name)
    opts = tasks.parse_options(module.Options, overrides)
    started = time.perf_counter()
    base_seed = ctx.seed
    outputs = []
    for s in range(base_seed, base_seed + seeds):
        ctx.seed = s
        out = module.run(model, opts, ctx)
        out.metrics = canonical_metrics(name, out.metrics)  # the registry's metric names
        outputs.append(out)
    ctx.seed = base_seed
    record = {
        "run_id": records.run_id(
            name, model.model_id + ("-random_init" if "random" in model.kind else ""), base_seed
        ),
        "task": name,
        "model": {"id": model.model_id, "revision": model.revision, "kind": model.kind},
        "pretrain": with_trained(model.pretrain),  # configured and trained length
        "protocol": outputs[0].protocol,
        "metrics": aggregate(outputs),
        "seed": base_seed if seeds == 1 else list(range(base_seed, base_seed + seeds)),
        "git_sha": git_sha(),
        # threads, CPU model and the precision it computed in (records.schema.HARDWARE_KEYS)
        "hardware": records.hardware(
            records.run_precision(ctx.device, outputs[0].protocol), ctx.device
        ),
        "wall_seconds": time.perf_counter() - started,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "extra": outputs[0].extra if seeds == 1 else [o.extra for o in outputs],
        **(annotations or {}),
    }
    records.require_hardware(record)  # before its artifacts are saved
    per_seed = [o.artifacts for o in outputs]  # saved beside the record, listed in it
    with artifacts.saved_beside(record, per_seed, base_seed, ctx.results_root) as saved:
        record["artifacts"] = saved
        path = records.write_record(record, ctx.results_root)
    return record, path


def headline(record: dict) -> str:
    m = record["metrics"]
    keys = [
        k
        for k in m
        if k.startswith(("top1", "box_AP", "mask_AP", "voc07_AP"))
        and not k.endswith("_std")
        and isinstance(m[k], float)
    ]
    return ", ".join(
        f"{k} {m[k]:.2f}" + (f" ± {m[k + '_std']:.2f}" if k + "_std" in m else "") for k in keys
    )


def run_embedded(args: argparse.Namespace, ctx: RunContext) -> list[dict]:
    """kNN, fast linear, low-shot and fmnist_det for the model and its random init (detection
    first: the longest task, and the two backbones train on the same schedule)."""
    out = []
    started = time.perf_counter()
    tasks.parse_options(tasks.get("fmnist_det").Options, task_overrides(args))  # before loading
    models = {
        "trained": load_model(args.model, args.revision, seed=args.seed),
        "random init": load_model(args.model, args.revision, random_init=True, seed=args.seed),
    }
    runs = [(name, label, model) for name in EMBEDDED for label, model in models.items()]
    for i, (name, label, model) in enumerate(runs, start=1):
        note_position(f"task {i}/{len(runs)} ({name}, {label})")
        overrides = task_overrides(args) if name == "fmnist_det" else []
        record, path = run_task(name, model, overrides, ctx)
        print(f"[{label}] {name}: {headline(record)}  ({record['wall_seconds']:.0f} s) -> {path}")
        out.append({"init": label, **record})
    clear_position()
    print(f"embedded default: {time.perf_counter() - started:.0f} s in all")
    print(format_table(out))
    return out


def format_table(rows: list[dict]) -> str:
    trained = {r["task"]: r["metrics"] for r in rows if r["init"] == "trained"}
    random = {r["task"]: r["metrics"] for r in rows if r["init"] == "random init"}
    lines = ["| task | metric | trained | random init | gain |", "|---|---|---|---|---|"]
    for task, m in trained.items():
        for k, v in m.items():
            if not k.startswith(("top1", "box_AP", "voc07_AP")) or not isinstance(v, float):
                continue
            r = random.get(task, {}).get(k)
            r = r if isinstance(r, float) else None
            gain = f"{v - r:+.2f}" if r is not None else ""
            lines.append(
                f"| {task} | {k} | {v:.2f} | {r:.2f} | {gain} |"
                if r is not None
                else f"| {task} | {k} | {v:.2f} | | |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    check_flags(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = RunContext(
        seed=args.seed, device=device, results_root=args.results_dir, work_dir=args.work_dir
    )
    if args.task is None:
        return run_embedded(args, ctx)
    module = tasks.get(args.task)  # an unknown task is named before any model is loaded
    tasks.parse_options(module.Options, task_overrides(args))  # and so is a bad option
    model = load_model(args.model, args.revision, args.random_init, args.seed)
    note_position(f"task {args.task}")
    record, path = run_task(args.task, model, task_overrides(args), ctx, args.seeds)
    clear_position()
    print(f"{args.task}: {headline(record)}  ({record['wall_seconds']:.0f} s)\nrecord: {path}")
    return [record]


def cli() -> None:
    """The command: ``main`` with the project's error path (console script siamhub-transfer)."""
    run_cli(main, "the records already written are kept; re-run the same command to measure again")


if __name__ == "__main__":
    cli()
