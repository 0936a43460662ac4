"""Result records under concurrency: many writers at once lose nothing and leave no debris."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from transfer import run_records as records

WRITERS = 32


def write_one(root: str, index: int, barrier) -> str:
    barrier.wait()  # every writer starts at the same moment: same second, same model, same seed
    record = {
        "run_id": records.run_id("knn", "sweep-point", 0),
        "task": "knn",
        "model": {"id": "sweep-point", "revision": None, "kind": "run_dir"},
        "pretrain": {},
        "protocol": {"ks": [20]},
        "metrics": {"top1_k20": float(index)},
        "padding": "x" * 200_000,  # a record big enough that a torn write would show
    }
    return str(records.write_record(record, Path(root)))


def test_32_concurrent_writers_leave_32_readable_records(tmp_path):
    ctx = mp.get_context("fork")  # Linux; the writers only need the module
    with ctx.Manager() as manager:
        barrier = manager.Barrier(WRITERS)
        with ctx.Pool(WRITERS) as pool:
            paths = pool.starmap(write_one, [(str(tmp_path), i, barrier) for i in range(WRITERS)])
    assert len(set(paths)) == WRITERS
    files = sorted((tmp_path / "knn").iterdir())
    assert len(files) == WRITERS, [f.name for f in files]  # no temp files left behind
    values = sorted(json.loads(f.read_text())["metrics"]["top1_k20"] for f in files)
    assert values == [float(i) for i in range(WRITERS)]


def test_a_record_is_never_overwritten(tmp_path):
    record = {
        "run_id": "r1", "task": "knn", "model": {"kind": "run_dir"}, "pretrain": {},
        "protocol": {}, "metrics": {"top1_k20": 1},
    }  # fmt: skip
    path = records.write_record(record, tmp_path)
    with pytest.raises(FileExistsError, match="exists already"):
        records.write_record({**record, "metrics": {"top1_k20": 2}}, tmp_path)
    assert json.loads(path.read_text())["metrics"] == {"top1_k20": 1}
