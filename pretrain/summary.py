"""The end of a run on rank 0: the final kNN report, the collapse-curve plot, summary.json and
the run's hub encoder folder ``encoder/`` (``pretrain.hooks.write_encoder``).

summary.json records the configured length (``configured_epochs``: the recipe's, which the
schedules span) and the trained one (``trained``: steps, epochs, stopped_early), which differ
for a run stopped by ``train.max_steps``, and every config change a resume made
(``config_changes``: step, key, old and new value, from the run's event log), so that a run
whose DINO temperature changed half-way does not read as a run of its final config.

``verdict`` is ``records.verdict``'s windowed verdict over the run's metrics rows (the monitor
points of its last fifth), the one the ablation records and the boards use; one run has no
healthy reference of its configuration, so dimensional collapse is not judged here (the
verdict's text says so). A run without monitor points (``monitor.every=0``) has none.
"""

from __future__ import annotations

import json
import time
from typing import Any

from common.files import atomic_write_json
from common.hardware import hardware, precision_label
from pretrain.checkpoint import read_events
from pretrain.evaluate import final_knn_report, format_report
from pretrain.hooks import EVAL_COLLAPSE_KEYS, write_encoder
from pretrain.plots import plot_collapse_curves
from pretrain.train import Trainer
from records.errors import RecordError
from records.length import trained_block
from records.verdict import LOSS_MIN, judge


def run_verdict(rows: list[dict[str, Any]], method: str) -> dict[str, Any] | None:
    """The windowed verdict of a run's metrics rows as the records store it; None when the
    rows hold no monitor point."""
    try:
        return judge(rows, loss_min=LOSS_MIN.get(method)).as_record()
    except RecordError:
        return None


def write_summary(trainer: Trainer, started: float, extra: dict[str, Any] | None = None) -> dict:
    """Write ``summary.json`` (and the plot) for a finished ``trainer``; print the report."""
    cfg, run_dir = trainer.cfg, trainer.run_dir
    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines() if r]
    last = {k: v for row in rows for k, v in row.items()}  # latest value of every metric
    verdict = run_verdict(rows, cfg.method.name)
    summary = {
        "recipe": cfg.recipe,
        "method": cfg.method.name,
        "steps": trainer.step,
        "epochs": trainer.epoch,
        "configured_epochs": cfg.train.epochs,
        "trained": trained_block(trainer.step, trainer.steps_per_epoch, cfg.train.epochs),
        "train_seconds": trainer.train_seconds,
        "world_size": trainer.dist.world_size,
        # what it ran on and in: threads, CPU model, device, autocast (common.hardware)
        "hardware": hardware(precision_label(trainer.amp_dtype, trainer.device), trainer.device),
        "final": {
            k: last.get(k)
            for k in (
                *("loss", "z_std_sqrt_d", "rankme", "m_o", "m_r", "knn_h", "knn_z"),
                *(f"{key}_eval" for key in EVAL_COLLAPSE_KEYS),
            )
        },
        "verdict": verdict,
        "config": cfg.to_dict(),
        "config_changes": [
            {k: e[k] for k in ("step", "key", "old", "new")}
            for e in read_events(run_dir)
            if e["event"] == "config_change"
        ],
        **(extra or {}),
    }
    print(f"verdict: {verdict['text']}" if verdict else "verdict: none (no monitor points)")
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
    atomic_write_json(run_dir / "summary.json", summary)
    encoder = write_encoder(trainer.state_dict(), run_dir)  # now with the final kNN result
    print(
        f"run directory: {run_dir}  (summary.json, metrics.jsonl, {plot.name}, "
        f"checkpoints/last.pt, {encoder.name}/)"
    )
    return summary
