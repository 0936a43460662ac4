"""Progress bars with rate and ETA that stay short in a log file.

On a terminal: tqdm's bar. Elsewhere (CI, Slurm logs, ``make demo > log``): one plain line
every ``SIAMHUB_PROGRESS_SECONDS`` seconds (default 30) and one at the end, instead of a
carriage-return update per step. In a log file ``set_postfix`` / ``set_description`` only
change what the next line says: on a terminal they redraw the bar, in a file each would be a
line of its own, with the counter tqdm had last printed (an iterating bar updates it only
when it prints).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm

DEFAULT_LOG_SECONDS = 30.0


def _log_seconds() -> float:
    try:
        return max(float(os.environ.get("SIAMHUB_PROGRESS_SECONDS", DEFAULT_LOG_SECONDS)), 0.0)
    except ValueError:
        return DEFAULT_LOG_SECONDS


class _LineBar(tqdm):
    """tqdm that writes whole lines (no ``\\r``), at most one per ``mininterval`` seconds."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh=False)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self.fp is None:
            return False
        self.fp.write((msg or self.__str__()).strip() + "\n")
        self.fp.flush()
        return True


def is_tty(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress(*args: Any, **kwargs: Any) -> tqdm:
    """``tqdm(*args, **kwargs)`` on a terminal; a line every N seconds elsewhere."""
    if is_tty(kwargs.get("file")):
        return tqdm(*args, **kwargs)
    kwargs.setdefault("mininterval", _log_seconds())
    kwargs.setdefault("maxinterval", max(kwargs["mininterval"], 10.0))
    kwargs.setdefault("miniters", 1)
    kwargs.setdefault("ascii", True)
    kwargs["dynamic_ncols"] = False
    kwargs.setdefault("ncols", 120)
    return _LineBar(*args, **kwargs)
