"""The one atomic file write of the project, and the clean-up after a killed one.

``atomic_write(path, write)`` writes into a temporary file beside ``path`` (same folder, so
the final rename never crosses a file system), flushes it to disk (fsync) and renames it over
``path``: a reader, a crash or a full disk sees the old file or the new one, never half of
one. The temporary file is created with mode 0666 and the process umask applies, like any
``open(path, "w")``: 0644 under the usual umask 022 (``tempfile.mkstemp`` would give 0600,
unreadable to the rest of a group sharing a run directory).

A process killed mid-write leaves its temporary file (``.<name>.<random>.tmp``) behind;
``remove_stale_temps(folder)`` removes them, e.g. when a run starts again in that folder.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
# ours (16 hex digits) and tempfile.mkstemp's (8 characters), which older versions used
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8,16}\.tmp$")


def temp_name(path: Path) -> Path:
    """A fresh temporary name beside ``path``: ``.<name>.<16 hex digits>.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")


def _create(path: Path) -> tuple[int, Path]:
    """Create a new temporary file beside ``path``; mode 0666 minus the umask."""
    for _ in range(100):
        tmp = temp_name(path)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a binary file that becomes ``path`` atomically once it returns.

    On any error (a full disk included) the temporary file is removed, ``path`` keeps its old
    content, and the error propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(
    path: str | Path, obj: Any, default: Callable[[Any], Any] | None = None
) -> Path:
    """Write ``obj`` as indented JSON (and a final newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=default) + "\n")


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed atomic writes left in ``folder``; returns them.

    Call it only where no other process is writing into ``folder`` at the same time.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.glob(f".*{TEMP_SUFFIX}"):
        if _TEMP.match(tmp.name) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return sorted(removed)
