"""Provenance helpers shared by everything that writes an artifact: the checkout's commit, and
JSON written atomically (``common.files``: temp file beside the target, fsync, ``os.replace``,
mode from the umask), so that a crash or a concurrent reader never sees half a file."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.files import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parents[1]


def git_sha(root: Path = REPO_ROOT) -> str | None:
    """The checkout's commit (``+dirty`` when tracked files have uncommitted changes), or None
    outside a git checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def write_json_atomic(path: Path, obj: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically; the folder is created."""
    return atomic_write_json(path, obj, default=default)
