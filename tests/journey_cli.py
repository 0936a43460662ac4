"""One command of a chained journey, as a user types it: a real process from the repository
root (or ``cwd``), offline, with progress lines at most once a minute; a non-zero exit fails the
test with the end of its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: object, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python <args>`` and return the finished process (exit 0 asserted)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SIAMHUB_PROGRESS_SECONDS": "60"}
    proc = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc
