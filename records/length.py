"""How long a pretraining ran: the configured length (the recipe's epochs, which the lr and
momentum schedules span) and the trained one (the steps the checkpoint got to).

A run stopped by ``train.max_steps`` (or evaluated before its last epoch) trained less than
its recipe says; pages, model cards and names show the trained length. Records carry it as
``pretrain.trained = {steps, epochs, stopped_early}`` beside ``pretrain.epochs`` (configured);
older records without the block fall back to ``trained_steps`` / ``trained_epochs`` and, with
none of them, to the configured epochs (a completed run: configured == trained).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from records.tasks import is_number

EPS = 1e-9


def trained_block(steps: int, steps_per_epoch: float, configured_epochs: float) -> dict[str, Any]:
    """``{steps, epochs, stopped_early}`` of a run that got to ``steps``.

    A complete run trains ``ceil(configured_epochs × steps_per_epoch)`` steps (the schedules'
    length); fewer is stopped early.
    """
    epochs = steps / steps_per_epoch if steps_per_epoch else 0.0
    planned = math.ceil(configured_epochs * steps_per_epoch - EPS)
    return {"steps": int(steps), "epochs": epochs, "stopped_early": steps < planned}


def trained_from_epochs(steps: int, epochs: float, configured_epochs: float) -> dict[str, Any]:
    """The block from a checkpoint's ``step`` and ``epoch`` (= step / steps per epoch)."""
    spe = steps / epochs if epochs else 0.0
    if not spe:
        return {"steps": int(steps), "epochs": float(epochs), "stopped_early": steps == 0}
    return trained_block(steps, spe, configured_epochs)


@dataclass(frozen=True)
class Length:
    """Configured and trained length of one pretraining."""

    configured: float | None  # epochs the recipe asked for
    steps: int | None  # trained steps, when known
    epochs: float | None  # trained epochs, when known (else = configured)
    stopped_early: bool

    @property
    def label(self) -> str:
        """``12 ep`` for a complete run, ``20 steps (0.09 ep)`` for one stopped early."""
        if self.stopped_early:
            return f"{self.steps} steps ({_epochs(self.epochs)} ep)"
        return f"{_num(self.configured if self.configured is not None else self.epochs)} ep"

    @property
    def cell(self) -> str:
        """An ``epochs`` table cell: the number when complete, else the label."""
        if self.stopped_early:
            return self.label
        value = self.configured if self.configured is not None else self.epochs
        return "?" if value is None else _num(value)

    @property
    def tag(self) -> str:
        """A name part: ``12ep`` or ``20steps``."""
        if self.stopped_early:
            return f"{self.steps}steps"
        value = self.configured if self.configured is not None else self.epochs
        return f"{_num(value)}ep" if value is not None else "ep"

    @property
    def key(self) -> int | None:
        """What tells two runs of one recipe apart in a group key: the trained steps of a
        run stopped early, None for a complete one."""
        return self.steps if self.stopped_early else None


def length_of(pretrain: dict[str, Any] | None) -> Length:
    """The length a record's ``pretrain`` block (or a model's ``ssl`` block) says."""
    pre = pretrain if isinstance(pretrain, dict) else {}
    configured = pre.get("epochs") if is_number(pre.get("epochs")) else None
    trained = pre.get("trained")
    if isinstance(trained, dict) and is_number(trained.get("steps")):
        epochs = trained.get("epochs")
        return Length(
            configured,
            int(trained["steps"]),
            float(epochs) if is_number(epochs) else None,
            bool(trained.get("stopped_early")),
        )
    steps, epochs = pre.get("trained_steps"), pre.get("trained_epochs")
    if is_number(steps) and is_number(epochs) and configured is not None:
        early = epochs < configured - EPS
        return Length(configured, int(steps), float(epochs), early)
    return Length(configured, None, None, False)


def _num(value: float) -> str:
    return f"{value:g}"


def _epochs(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.2f}"


def with_trained(pretrain: dict[str, Any] | None) -> dict[str, Any] | None:
    """``pretrain`` with its ``trained`` block, derived from ``trained_steps`` /
    ``trained_epochs`` when it has none (a model loaded from a run directory); unchanged when
    the trained length is not known (an encoder published without it)."""
    if not isinstance(pretrain, dict) or isinstance(pretrain.get("trained"), dict):
        return pretrain
    steps, epochs = pretrain.get("trained_steps"), pretrain.get("trained_epochs")
    configured = pretrain.get("epochs")
    if not (is_number(steps) and is_number(epochs) and is_number(configured)):
        return pretrain
    return {**pretrain, "trained": trained_from_epochs(int(steps), float(epochs), configured)}
