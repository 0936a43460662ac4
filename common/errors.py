"""The one base class of the errors a user can fix.

Every error that names a bad input and its fix (a config key, a missing folder, a corrupt
image, a checkpoint of another architecture, ...) derives from :class:`UserError`; the CLIs
print it as one ``error:`` line and exit 2 (``common.cli.run_cli``), never as a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""


def clean_message(error: BaseException) -> str:
    """The error's own message, also when a DataLoader worker re-raised it.

    torch re-raises a worker's exception as the same type with the message
    ``Caught X in DataLoader worker process N.\\nOriginal Traceback ...``; the last line of
    that traceback is ``module.X: <the original message>``.
    """
    text = str(error)
    if "Original Traceback" not in text:
        return text
    lines = [line for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else text
    prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
    for candidate in (prefix, f"{type(error).__qualname__}: "):
        if last.startswith(candidate):
            return last[len(candidate) :]
    return last.split(": ", 1)[-1]
