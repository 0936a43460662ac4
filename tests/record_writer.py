"""A result-record writer for the concurrency test's writers: the record contract alone."""

from __future__ import annotations

from pathlib import Path

from records.write import new_run_id, write_record


def write_one(root: str, index: int, barrier) -> str:
    barrier.wait(timeout=120)  # every writer starts at once: same second, same model, same seed
    record = {
        "run_id": new_run_id("sweep-point", 0),
        "task": "knn",
        "model": {"id": "sweep-point", "revision": None, "kind": "run_dir"},
        "pretrain": {},
        "protocol": {"ks": [20]},
        "metrics": {"top1_k20": float(index)},
        "padding": "x" * 200_000,  # a record big enough that a torn write would show
    }
    return str(write_record(record, Path(root)))
