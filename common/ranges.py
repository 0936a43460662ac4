"""The valid range of a number or the valid choices of a name, as data: one :class:`Rule`.

A table of rules (``{key: Rule}``) checks the transfer tasks' options and flags
(``transfer/option_rules.py``) and the values of a result record (``records/values.py``), the
way ``pretrain/config_rules.py`` checks the pretraining config (same wording, same bounds). A
value outside its rule is one line naming the key, the value and the valid range
(``batch_size=0 is out of range: must be >= 1``), raised as the caller's error class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from common.errors import UserError


class RangeError(UserError, ValueError):
    """A value outside its rule (the default error of :meth:`Rule.check`)."""


@dataclass(frozen=True)
class Rule:
    """The valid values of one key: a numeric interval or a set of choices.

    ``choices`` may be a callable, for sets owned by a module that imports the table's (a
    registry). ``note`` says why, where the bound is not obvious.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself excluded
    hi_open: bool = False
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None
    note: str = ""

    def allowed(self) -> Sequence[Any] | None:
        return self.choices() if callable(self.choices) else self.choices

    def describe(self) -> str:
        """The valid values in words: ``>= 1``, ``in (0, 1]``, ``one of 'a', 'b'``."""
        choices = self.allowed()
        if choices is not None:
            return "one of " + ", ".join(repr(c) for c in choices)
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"in {left}{_num(self.lo)}, {_num(self.hi)}{right}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return "a finite number"

    def ok(self, value: Any) -> bool:
        choices = self.allowed()
        if choices is not None:
            return value in choices
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)

    def problem(self, path: str, value: Any) -> str | None:
        """None when ``value`` fits (None itself always does: an unset optional value), else
        the one-line reason naming ``path``, ``value`` and the valid values."""
        if value is None or self.ok(value):
            return None
        why = f" ({self.note})" if self.note else ""
        what = "not a valid choice" if self.choices is not None else "out of range"
        return f"{path}={value!r} is {what}: must be {self.describe()}{why}"

    def check(self, path: str, value: Any, error: type[Exception] = RangeError) -> None:
        """Raise ``error`` with :meth:`problem`'s line when ``value`` does not fit."""
        message = self.problem(path, value)
        if message is not None:
            raise error(message)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def finite() -> Rule:
    """Any finite number (no NaN, no infinity)."""
    return Rule()


def at_least(lo: float, note: str = "") -> Rule:
    return Rule(lo=lo, note=note)


def above(lo: float, note: str = "") -> Rule:
    return Rule(lo=lo, lo_open=True, note=note)


def between(
    lo: float, hi: float, lo_open: bool = False, hi_open: bool = False, note: str = ""
) -> Rule:
    return Rule(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, note=note)


def one_of(*choices: Any, note: str = "") -> Rule:
    return Rule(choices=tuple(choices), note=note)
