"""The transfer tasks, one file each, registered by name.

A task module defines ``NAME``, an ``Options`` dataclass (every hyperparameter that moves the
number, overridable as ``key=value`` on the command line; each with its valid range in
``transfer/option_rules.py``) and
``run(model: LoadedModel, opts: Options, ctx: RunContext) -> TaskOutput``.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from common.overrides import parse_value, split_override
from records.tasks import TRANSFER_TASKS
from transfer import option_rules
from transfer.features import FeatureCache
from transfer.option_rules import OptionError

__all__ = ["MODULES", "OptionError", "RunContext", "TaskOutput", "get", "parse_options"]

# the registry's transfer tasks (records.tasks), one module each: the one list of tasks
MODULES: tuple[str, ...] = TRANSFER_TASKS


@dataclass
class RunContext:
    """What every task of one ``transfer/run.py`` invocation shares."""

    seed: int = 0
    cache: FeatureCache = field(default_factory=FeatureCache)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    results_root: Path | None = None
    work_dir: Path = Path("transfer_work")


@dataclass
class TaskOutput:
    """The task's part of a result record."""

    protocol: dict[str, Any]
    metrics: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    # raw predictions behind the metrics, {file name: bytes | text | JSON-able}; written beside
    # the record and listed in it with their sha256 (transfer/artifacts.py)
    artifacts: dict[str, Any] = field(default_factory=dict)


def get(name: str) -> ModuleType:
    """The task module registered as ``name``."""
    if name not in MODULES:
        raise OptionError(f"unknown task {name!r}; available: {', '.join(MODULES)}")
    module = importlib.import_module(f"transfer.tasks.{name}")
    if getattr(module, "NAME", None) != name:  # a module out of step with the registry
        raise RuntimeError(f"transfer/tasks/{name}.py must define NAME = {name!r}")
    return module


def module_files() -> tuple[str, ...]:
    """The task modules in this folder (every ``*.py`` but this one), sorted: the test that
    keeps them and ``records.tasks.TRANSFER_TASKS`` one list reads it."""
    here = Path(__file__).resolve().parent
    return tuple(sorted(p.stem for p in here.glob("*.py") if not p.stem.startswith("_")))


def parse_options(options_cls: type, overrides: list[str]) -> Any:
    """An ``Options`` instance with ``key=value`` overrides applied (typed like the defaults)
    and every option checked against its range (``transfer/option_rules.py``)."""
    opts = options_cls()
    task = option_rules.task_of(options_cls)
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    for item in overrides:
        key, raw = split_override(item)
        if key not in fields:
            raise OptionError(
                f"unknown option {key!r} for {task}; valid: {', '.join(sorted(fields))}"
            )
        setattr(opts, key, _coerce(f"{task} option {key}", raw, getattr(opts, key)))
    option_rules.check(task, opts)
    return opts


def _coerce(key: str, raw: str, default: Any) -> Any:
    """The override's value (common.overrides' grammar), typed like the option's default (a
    tuple's elements like the default's first element)."""
    value = parse_value(raw)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and _is_number(value):
        return float(value)
    elif isinstance(default, tuple):
        items = tuple(value) if isinstance(value, tuple | list) else (value,)
        if not default:
            return items
        typed = [_element(x, default[0]) for x in items]
        if all(t is not None for t in typed):
            return tuple(typed)
        kind = type(default[0]).__name__
        raise OptionError(f"{key}={raw!r}: expected a list of {kind}s, e.g. {default!r}")
    elif default is None or (isinstance(value, type(default)) and not isinstance(value, bool)):
        return value
    elif isinstance(default, str):
        return raw
    raise OptionError(f"{key}={raw!r}: expected {type(default).__name__}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _element(value: Any, like: Any) -> Any:
    """``value`` typed like ``like`` (a tuple option's element), or None when it cannot be."""
    if isinstance(like, bool):
        return value if isinstance(value, bool) else None
    if isinstance(like, float):
        return float(value) if _is_number(value) else None
    if isinstance(like, int):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return value if isinstance(value, str) else str(value)
