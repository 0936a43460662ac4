"""Command-line values that name a local path: telling them from Hub repo ids, and saying
which existing names come closest when the path does not exist.

A Hub repo id is ``<org>/<name>``: one slash, no leading ``.``/``/``/``~``. A value that cannot
be one (or that points into a folder that exists here) is a path, and a path that does not
exist is reported as such (with the closest existing names) instead of being sent to the Hub.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

# Endings of the files these commands read or write; a Hub repo id ending so is unheard of
# (one like ``timm/resnet50.a1_in1k`` has a dot, but no such ending).
FILE_EXTENSIONS = (
    *(".pt", ".pth", ".tar", ".ckpt", ".bin", ".safetensors", ".pkl", ".pickle"),
    *(".json", ".yaml", ".yml", ".toml", ".npz", ".npy", ".onnx", ".h5", ".zip", ".gz"),
)


def looks_like_path(value: str) -> bool:
    """Whether ``value`` names a local path rather than a Hub repo id ``<org>/<name>``.

    A path: starts with ``.``, ``/``, ``~`` or ``runs/``; has more than one ``/``; ends with a
    file extension (``FILE_EXTENSIONS``); or contains a path separator and its parent folder
    exists here.
    """
    seps = [s for s in (os.sep, os.altsep) if s]
    if value.startswith((".", "/", "~", "runs/", *seps)) or value.count("/") > 1:
        return True
    if value.lower().endswith(FILE_EXTENSIONS):
        return True
    if any(s in value for s in seps):
        parent = Path(value).expanduser().parent
        return parent != Path(".") and parent.is_dir()
    return False


def closest_names(path: Path, n: int = 3) -> list[Path]:
    """Existing siblings of the first missing part of ``path`` whose names come closest to it
    (difflib), e.g. ``runs/short`` for ``runs/short2``; empty when nothing is close."""
    path = path.expanduser()
    parent = Path(path.anchor) if path.is_absolute() else Path(".")
    for part in path.parts[len(Path(path.anchor).parts) if path.is_absolute() else 0 :]:
        candidate = parent / part
        if not candidate.exists():
            try:
                names = sorted(p.name for p in parent.iterdir())
            except OSError:
                return []
            close = difflib.get_close_matches(part, names, n=n, cutoff=0.6)
            return [parent / name for name in close]
        parent = candidate
    return []


def missing_path_message(value: str) -> str:
    """``no such file or folder: <value>`` plus the closest existing names, if any."""
    close = closest_names(Path(value))
    text = f"no such file or folder: {value}"
    if close:
        text += f" (closest: {', '.join(str(p) for p in close)})"
    return text
