"""Learning-rate schedules: linear warmup then cosine decay, as in the papers' repositories.

SimSiam's repository (``adjust_learning_rate``) sets, once per epoch,
``lr = init_lr · 0.5 · (1 + cos(π · epoch / epochs))`` and leaves groups marked ``fix_lr``
at ``init_lr`` (SimSiam Table 1: "lr not decayed" for the predictor). ``per_step=True``
evaluates the same curve at fractional epochs (every step), which short runs prefer.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer


def lr_at(
    init_lr: float,
    epoch: float,
    epochs: float,
    *,
    warmup_epochs: float = 0.0,
    schedule: str = "cosine",
) -> float:
    """The lr at a (possibly fractional) epoch."""
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return init_lr * epoch / warmup_epochs
    if schedule == "constant":
        return init_lr
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}; use 'cosine' or 'constant'")
    span = max(epochs - warmup_epochs, 1e-12)
    progress = min(max((epoch - warmup_epochs) / span, 0.0), 1.0)
    return init_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def apply_lr(optimizer: Optimizer, init_lr: float, lr: float) -> None:
    """Set every group's lr; groups with ``fix_lr`` keep ``init_lr`` (SimSiam repository)."""
    for group in optimizer.param_groups:
        group["lr"] = init_lr if group.get("fix_lr", False) else lr
