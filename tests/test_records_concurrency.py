"""Result records under concurrency: many writers at once lose nothing and leave no debris."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.record_writer import write_one
from transfer import run_records as records

WRITERS = 32


def test_32_concurrent_writers_leave_32_readable_records(tmp_path):
    # Threads, not forked processes: a process forked from this one (whose threads may hold
    # a lock at that moment) can wait forever, and a fork server hung here too. The writes
    # still interleave: each is many write syscalls, the GIL released around every one.
    barrier = threading.Barrier(WRITERS)
    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(write_one, str(tmp_path), i, barrier) for i in range(WRITERS)]
        paths = [f.result(timeout=300) for f in futures]
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
