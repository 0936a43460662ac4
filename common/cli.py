"""The one error path and argument style of every command-line tool of the project.

- ``make_parser(doc)``: the module docstring, whole, as the ``--help`` text (the first line as
  the summary, the rest as the description), options and ``key=value`` overrides in any order
  (``parse_args`` uses ``parse_intermixed_args``).
- ``run_cli(main)``: known errors (:class:`common.errors.UserError`) print one ``error:`` line
  on stderr and exit 2; Ctrl-C prints where the work stopped and that re-running the same
  command resumes, and exits 130 (the shell's code for SIGINT); a DataLoader worker's error
  is shown as its original message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from common.errors import UserError, clean_message

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

_position: list[str] = []  # where long work is now ("step 15/2808"), for the Ctrl-C message


def note_position(text: str) -> None:
    """Record where the running work is (e.g. ``"step 15/2808"``) for the Ctrl-C message."""
    _position[:] = [text]


def clear_position() -> None:
    _position.clear()


class _Parser(argparse.ArgumentParser):
    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        return self.parse_intermixed_args(args, namespace)


def make_parser(doc: str | None, **kwargs: Any) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` whose help is the whole docstring, layout kept, and whose
    ``parse_args`` accepts options after positional overrides."""
    text = (doc or "").strip()
    summary, _, rest = text.partition("\n")
    return _Parser(
        description=f"{summary}\n{rest}".rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )


def run_cli(
    main: Callable[[], Any],
    resume_hint: str | Callable[[], str] = "re-run the same command to resume",
) -> Any:
    """Run ``main`` with the project's error path; exits on a known error or Ctrl-C.

    ``resume_hint`` may be a function, asked after the interruption (what was saved by then:
    pretraining's checkpoint of the last completed step)."""
    try:
        return main()
    except UserError as e:
        print(f"error: {clean_message(e)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        where = f" at {_position[0]}" if _position else ""
        hint = resume_hint() if callable(resume_hint) else resume_hint
        print(f"\ninterrupted{where}; {hint}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
