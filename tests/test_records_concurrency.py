"""Result records under concurrency: many writers at once lose nothing and leave no debris."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from tests.record_writer import write_one
from transfer import run_records as records

WRITERS = 32


def test_32_concurrent_writers_leave_32_readable_records(tmp_path):
    # Workers fork from a clean fork server (tests/record_writer.py says why not from this
    # process); a lost worker fails the test after the timeout instead of hanging the run.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.record_writer"])
    with ctx.Manager() as manager:
        barrier = manager.Barrier(WRITERS)
        with ctx.Pool(WRITERS) as pool:
            args = [(str(tmp_path), i, barrier) for i in range(WRITERS)]
            paths = pool.starmap_async(write_one, args).get(timeout=300)
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
