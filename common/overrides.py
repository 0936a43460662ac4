"""The one ``key=value`` grammar of every command line (pretraining config, transfer task
options, sweep axes) and of the comma-separated lists the CLIs take.

A value is read the same way everywhere:

- a TOML value: ``2``, ``0.05``, ``1e-4``, ``true`` / ``false``, ``'text'`` or ``"text"``,
  ``[0.1, 1.0]``;
- a parenthesised list, the form the README's examples use: ``(0.1, 1.0)``, ``(False,)``
  (as in Python, ``(0.2)`` without a comma is just ``0.2``); items follow the same rules
  (``True`` / ``False`` as in Python are booleans too);
- anything else, a bare word such as ``cpu`` or ``/data/imagenet``: the string itself.

What a key accepts (its type, its range, an enum's choices) is the config's business: this
module only turns text into plain values.
"""

from __future__ import annotations

import tomllib
from typing import Any

from common.errors import UserError

PYTHON_WORDS = {"True": True, "False": False}


class OverrideError(UserError, ValueError):
    """An override that is not ``key=value``."""


def split_override(item: str) -> tuple[str, str]:
    """``"a.b=value"`` -> ``("a.b", "value")``; the key must not be empty."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise OverrideError(f"override {item!r} is not of the form key=value (e.g. train.epochs=2)")
    return key.strip(), value.strip()


def parse_value(text: str) -> Any:
    """The plain value of one override's text (see the module docstring)."""
    text = text.strip()
    if text in PYTHON_WORDS:
        return PYTHON_WORDS[text]
    if text.startswith("(") and text.endswith(")"):
        inner = text[1:-1].strip()
        if inner and "," not in inner:  # as in Python: (0.2) is 0.2, (0.2,) a list of one
            return parse_value(inner)
        return [parse_value(part) for part in split_list(inner)]
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def split_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (empty items dropped): the CLIs' list options
    (``--batch-sizes 64,128``, ``--variants a,b``, ``--set key=v1,v2``)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_int_list(text: str, option: str) -> list[int]:
    """A comma-separated list of integers, or one error line naming ``option``."""
    items = split_list(text)
    values = [parse_value(item) for item in items]
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise OverrideError(f"{option} takes comma-separated integers (e.g. 0,1,2), got {text!r}")
    return values
