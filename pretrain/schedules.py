"""Schedules: lr (linear warmup then cosine), EMA momentum (cosine to 1) and weight decay.

SimSiam's repository (``adjust_learning_rate``) sets, once per epoch,
``lr = init_lr · 0.5 · (1 + cos(π · epoch / epochs))`` and leaves groups marked ``fix_lr``
at ``init_lr`` (SimSiam Table 1: "lr not decayed" for the predictor). ``per_step=True``
evaluates the same curve at fractional epochs (every step), which short runs prefer.
BYOL and MoCo v3 raise the target momentum to 1 along a cosine every step
(``cosine_to_one``); a weight decay can follow ``cosine_between`` (``optim.weight_decay_end``).
A group's ``lr_mult`` scales its lr under every schedule (``optim.pred_lr_mult``: the
predictor's lr relative to the encoder's, Su 2020; Tian et al., ICML 2021), and a group with
``frozen_left`` > 0 gets lr 0 for that many steps (``optim.pred_freeze_steps``: a fixed random
predictor meanwhile, SimSiam §4.2 Table 1 (b)).
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
    """Set every group's lr for the coming step (call it once per step, before the step).

    Groups with ``fix_lr`` keep ``init_lr`` (SimSiam repository); a group's ``lr_mult``
    multiplies either. A group with ``frozen_left`` > 0 gets lr 0 and one step less to wait:
    the count lives in the group, so the optimizer's checkpoint carries it over a resume. With
    lr 0 SGD, LARS and AdamW leave the parameters as they are (weight decay included), while
    momentum buffers still fill with the frozen steps' gradients.
    """
    for group in optimizer.param_groups:
        base = init_lr if group.get("fix_lr", False) else lr
        group["lr"] = base * group.get("lr_mult", 1.0)
        if group.get("frozen_left", 0) > 0:
            group["lr"] = 0.0
            group["frozen_left"] -= 1


def cosine_to_one(base: float, step: int, total: int) -> float:
    """BYOL's target decay τ_k = 1 − (1 − τ_base)(cos(πk/K) + 1)/2 (BYOL §3.2; MoCo v3 m).

    τ_0 = τ_base, τ_{K/2} = (1 + τ_base)/2, τ_K = 1.
    """
    progress = min(max(step / max(total, 1), 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def momentum_at(base: float, step: int, total: int, schedule: str = "cosine") -> float:
    """The EMA momentum at ``step`` of ``total``: cosine to 1, or ``base`` throughout."""
    if schedule == "cosine":
        return cosine_to_one(base, step, total)
    if schedule == "constant":
        return base
    raise ValueError(f"unknown momentum schedule {schedule!r}; use 'cosine' or 'constant'")


def cosine_between(start: float, end: float, step: int, total: int) -> float:
    """Cosine from ``start`` at step 0 to ``end`` at step ``total`` (a weight-decay schedule)."""
    progress = min(max(step / max(total, 1), 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def apply_weight_decay(optimizer: Optimizer, weight_decay: float) -> None:
    """Set the weight decay of every group that is not excluded from it."""
    for group in optimizer.param_groups:
        if not group.get("no_decay", False):
            group["weight_decay"] = weight_decay
