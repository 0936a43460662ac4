"""Pretrain a recipe: ``python pretrain/run.py [--recipe NAME] [--run-dir DIR] [key=value ...]``.

With no arguments it runs the main job on the embedded default: SimSiam on Fashion-MNIST on
the CPU, then a full kNN evaluation of the trained encoder beside the same architecture at
random init and raw pixels, and writes the run directory (checkpoint, metrics, collapse-curve
plot, summary). A run directory that holds a checkpoint is resumed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pretrain.config import DEFAULT_RECIPE, ConfigError, available_recipes, load_config
from pretrain.data import DataError
from pretrain.evaluate import final_knn_report, format_report
from pretrain.hooks import default_hooks
from pretrain.plots import plot_collapse_curves
from pretrain.train import Trainer


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    overrides = list(args.overrides) + ([f"data.root={args.data}"] if args.data else [])
    cfg = load_config(args.recipe, overrides)
    run_dir = Path(args.run_dir or f"runs/{cfg.recipe}-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.perf_counter()
    trainer = Trainer(cfg, run_dir, default_hooks())
    if trainer.resumed_from is not None:
        print(f"resuming {run_dir} from step {trainer.resumed_from}/{trainer.total_steps}")
    trainer.fit()

    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines() if r]
    last = {k: v for row in rows for k, v in row.items()}  # latest value of every metric
    collapsed = bool(last.get("collapsed", False))  # the CollapseMonitor's flag at its last check
    summary = {
        "recipe": cfg.recipe,
        "method": cfg.method.name,
        "steps": trainer.step,
        "epochs": trainer.epoch,
        "train_seconds": trainer.train_seconds,
        "final": {
            k: last.get(k)
            for k in ("loss", "z_std_sqrt_d", "rankme", "m_o", "m_r", "knn_h", "knn_z")
        },
        "collapsed": collapsed,
        "config": cfg.to_dict(),
    }
    if collapsed:
        print(
            f"COLLAPSED: z-std × √d = {last['z_std_sqrt_d']:.3f} "
            f"< {cfg.monitor.collapse_threshold} "
            "(the representation is nearly constant)"
        )
    if cfg.eval.final_knn and cfg.data.dataset == "fashion_mnist":
        report = final_knn_report(trainer.model, cfg, trainer.device)
        summary["knn_eval"] = report
        print(format_report(report))
    plot = plot_collapse_curves(
        run_dir / "metrics.jsonl",
        run_dir / "collapse_curves.png",
        title=f"{cfg.recipe} ({run_dir.name})",
    )
    summary["wall_seconds"] = time.perf_counter() - started
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"run directory: {run_dir}  (summary.json, metrics.jsonl, {plot.name}, checkpoints/last.pt)"
    )
    return summary


if __name__ == "__main__":
    try:
        main()
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
