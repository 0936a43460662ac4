"""Does the two-view augmentation keep up with the training step? Pipeline vs step throughput.

Method
------
Everything comes from the recipe's config (default: the embedded Fashion-MNIST recipe) and
the project's own objects: a ``pretrain.train.Trainer`` is constructed (nothing is written; its
run directory is a temporary one) for its model, optimizer, dataset and ``train_step``, and
``pretrain.data.pretrain_loader`` gives the loader, with the recipe's ``data.num_workers``
real worker processes unless ``--workers`` overrides it.

Each round measures three things, in this order:

1. **pipeline**: a fresh ``pretrain_loader(cfg, dataset, s, s + batches + 1)``; the first batch
   (worker start-up) is not timed, then ``--batches`` batches are drawn as fast as the loader
   delivers them. This is the pipeline's capacity, images/s = batches × B / seconds.
2. **step**: ``--steps`` Trainer steps (forward both views, loss, zero_grad, backward, SGD
   step; the recipe's autocast and memory format) on one pre-generated pair of views drawn
   from the loader beforehand: the step's speed with no data work beside it.
3. **fed**: ``--steps`` Trainer steps on batches drawn live from a fresh loader (after one
   untimed batch + step), as ``Trainer.fit`` does: the end-to-end rate, where the workers
   compete with the step for the CPU. The time spent blocked waiting for a batch is reported
   as the stall share.

Images/s counts a two-view pair as one image. The report prints every round, the medians,
and the median of the per-round ratios pipeline/step (target ≥ 1.5: the pipeline has
headroom over the step), plus fed/step (1.0 = the data costs the step nothing) and the
median stall share.

Examples::

    python benchmarks/data_pipeline.py
    python benchmarks/data_pipeline.py --workers 2 --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pretrain.config import DEFAULT_RECIPE, load_config
from pretrain.data import pretrain_loader
from pretrain.train import Trainer

TARGET = 1.5


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pipeline(trainer: Trainer, start: int, batches: int) -> float:
    """Seconds to draw ``batches`` batches from a fresh loader, after its first batch."""
    loader = iter(pretrain_loader(trainer.cfg, trainer.dataset, start, start + batches + 1))
    next(loader)  # worker start-up and the first batch: not timed
    started = time.perf_counter()
    for _ in range(batches):
        next(loader)
    elapsed = time.perf_counter() - started
    del loader  # shuts the workers down
    return elapsed


def time_steps(trainer: Trainer, views: tuple[torch.Tensor, torch.Tensor], steps: int) -> float:
    """Seconds for ``steps`` Trainer steps on one pre-generated pair of views."""
    sync(trainer.device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(*views)
    sync(trainer.device)
    return time.perf_counter() - started


def time_fed(trainer: Trainer, start: int, steps: int) -> tuple[float, float]:
    """(seconds, seconds blocked on the loader) for ``steps`` Trainer steps fed by a live loader."""
    loader = iter(pretrain_loader(trainer.cfg, trainer.dataset, start, start + steps + 1))
    trainer.train_step(*next(loader))  # worker start-up, first batch and step: not timed
    sync(trainer.device)
    waited = 0.0
    started = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        x1, x2 = next(loader)
        waited += time.perf_counter() - t
        trainer.train_step(x1, x2)
    sync(trainer.device)
    elapsed = time.perf_counter() - started
    del loader
    return elapsed, waited


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default=DEFAULT_RECIPE)
    p.add_argument("--workers", type=int, default=None, help="default: the recipe's")
    p.add_argument("--batch", type=int, default=None, help="default: the recipe's")
    p.add_argument("--batches", type=int, default=40, help="timed batches per pipeline round")
    p.add_argument("--steps", type=int, default=6, help="timed steps per step / fed round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before the rounds")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps the default")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    p.add_argument("overrides", nargs="*", help="config overrides, section.key=value")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.append(f"data.num_workers={args.workers}")
    if args.batch is not None:
        overrides.append(f"train.batch_size={args.batch}")
    if args.threads:
        overrides.append(f"train.threads={args.threads}")
    cfg = load_config(args.recipe, overrides)

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, run_dir)  # builds model, optimizer and dataset; writes nothing
    trainer.model.train()
    batch = cfg.train.batch_size

    first = iter(pretrain_loader(cfg, trainer.dataset, 0, 1))
    views = next(first)  # the pre-generated pair the "step" rounds reuse
    del first
    for _ in range(args.warmup):
        trainer.train_step(*views)

    amp = trainer.amp_dtype
    print("Two-view data pipeline vs training step (images/s; a two-view pair = 1 image)")
    print(
        f"  {cfg.recipe}: {cfg.data.dataset} '{cfg.data.augment}' augment {cfg.data.img_size}px, "
        f"batch {batch}, data.num_workers {cfg.data.num_workers}"
    )
    print(
        f"  step: {cfg.model.name} on {trainer.device}, "
        f"{'bf16 autocast' if amp is not None else 'fp32'}, "
        f"{'channels_last' if cfg.train.channels_last else 'contiguous'}, "
        f"torch threads {torch.get_num_threads()} ({os.cpu_count()} CPUs), "
        f"torch {torch.__version__}"
    )

    rows = []
    print(
        f"\n{'round':>5} {'pipeline img/s':>15} {'step img/s':>11} {'fed img/s':>10} "
        f"{'pipe/step':>10} {'fed/step':>9} {'stall':>6}"
    )
    for r in range(args.rounds):
        start = r * (args.batches + args.steps + 2)  # fresh batches every round
        pipe_s = time_pipeline(trainer, start, args.batches)
        step_s = time_steps(trainer, views, args.steps)
        fed_s, waited = time_fed(trainer, start + args.batches + 1, args.steps)
        row = {
            "round": r + 1,
            "pipeline_img_s": args.batches * batch / pipe_s,
            "step_img_s": args.steps * batch / step_s,
            "fed_img_s": args.steps * batch / fed_s,
            "stall_share": waited / fed_s,
        }
        row["pipeline_over_step"] = row["pipeline_img_s"] / row["step_img_s"]
        row["fed_over_step"] = row["fed_img_s"] / row["step_img_s"]
        rows.append(row)
        print(
            f"{r + 1:>5} {row['pipeline_img_s']:>15.1f} {row['step_img_s']:>11.1f} "
            f"{row['fed_img_s']:>10.1f} {row['pipeline_over_step']:>10.2f} "
            f"{row['fed_over_step']:>9.3f} {100 * row['stall_share']:>5.1f}%"
        )

    med = {key: statistics.median(r[key] for r in rows) for key in rows[0] if key != "round"}
    ratio = med["pipeline_over_step"]
    print(
        f"{'median':>5} {med['pipeline_img_s']:>15.1f} {med['step_img_s']:>11.1f} "
        f"{med['fed_img_s']:>10.1f} {med['pipeline_over_step']:>10.2f} "
        f"{med['fed_over_step']:>9.3f} {100 * med['stall_share']:>5.1f}%"
    )
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(
        f"\npipeline / step = {ratio:.2f} (median of per-round ratios; target >= {TARGET}: "
        f"{verdict}); fed / step = {med['fed_over_step']:.3f}; "
        f"stall {100 * med['stall_share']:.1f}% of fed time"
    )

    result = {
        "config": {
            "recipe": cfg.recipe,
            "batch": batch,
            "num_workers": cfg.data.num_workers,
            "img_size": cfg.data.img_size,
            "augment": cfg.data.augment,
            "precision": "bf16" if amp is not None else "fp32",
            "channels_last": cfg.train.channels_last,
            "batches": args.batches,
            "steps": args.steps,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "overrides": overrides,
        },
        "env": {
            "device": str(trainer.device),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "rounds": rows,
        "median": med,
        "pipeline_over_step": ratio,
        "target": TARGET,
        "target_met": ratio >= TARGET,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
