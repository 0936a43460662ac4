"""A run's collapse verdict from its monitor trace, robust to the point it ends on.

One logged value is not a verdict: the same no-stop-gradient run read "collapsed" at 400 steps
(train-mode z-std × √d 0.189) and "not collapsed" at 300 (0.217) while its RankMe was 1.25, its
m_o 0.976 and its eval-mode z-std × √d 0.0099. Here the verdict is read from a *window* of the
last ``window`` monitor points (default 3) and from three statistics that vote:

- **z-std × √d** (SimSiam §4.1, Fig. 2): the mean per-channel std of the l2-normalized z, × √d.
  A z spread like an isotropic Gaussian has std ≈ 1/√d, so ≈ 1 is healthy; collapse drives it
  to 0. Collapsed below ``Z_COLLAPSED_BELOW`` = 0.2, the project's ``monitor.collapse_threshold``
  (``pretrain/monitors.is_collapsed``) and the collapse ablation's rule.
- **RankMe** (Garrido et al., ICML 2023): exp of the entropy of z's normalized singular values,
  1 for a z along one direction, up to d. Collapsed below ``RANK_COLLAPSED_BELOW`` = 2: fewer
  than two effective directions, i.e. the center and noise.
- **m_o** (Zhang et al., "How does SimSiam avoid collapse without negative samples?", ICLR 2022,
  §3): the norm of the batch center of the l2-normalized z; m_o → 1 when every z is the center.
  Collapsed above ``MO_COLLAPSED_ABOVE`` = 0.95: the center then holds over 90% of z's squared
  norm (m_o² + mean ‖r‖² = 1), which also caps z-std × √d at √(1 − m_o²) ≈ 0.31.
- **KL(teacher ‖ student)** for DINO, where the trace has it (Caron et al. 2021, §5.3, Fig. 7:
  it goes to 0 in both collapse modes; docs/recipes.md, "Monitors"): collapsed below
  ``KL_COLLAPSED_BELOW`` = 0.05 nats (the Fashion-MNIST recipe's healthy run reads 0.49).

Where a point holds the eval-mode statistics of the kNN monitor's held-out bank
(``z_std_sqrt_d_eval``, ``m_o_eval``, ``rankme_eval``), those are used, and the window is made
of such points: train-mode BN re-normalizes every batch, which keeps a collapsed z's train-mode
z-std × √d near 0.18 while the eval-mode one reads 0.01-0.05 (the committed no-stop-gradient
records). RankMe has no eval version yet; the train-mode RankMe of the same point is used.

**Margin.** A reading within ``MARGIN`` (25%, multiplicative) of a threshold is not counted
either way: z-std × √d in [0.16, 0.25], RankMe in [1.6, 2.5], √(1 − m_o²) within 25% of
√(1 − 0.95²) (m_o in [0.92, 0.968]). A statistic votes "collapsed" (or "healthy") only when every
reading of the window is clearly on that side; otherwise it *straddles*. The outcome is
"collapsed" when a strict majority of the available statistics vote collapsed, and the
verdict names the statistics that agree. 25% is about the scatter of one statistic between
consecutive monitor points near the threshold in the committed traces (no-stop-gradient at
300 steps: train-mode z-std × √d 0.19, 0.25, 0.19, 0.23 at steps 225-300).

**Failed to converge** (SimSiam Table 1b: a fixed random predictor "does not converge, and the
loss remains high", at 1.5% yet not collapsed): not collapsed, the loss still closer to its
first logged value than to its minimum (``LOSS_HIGH_ABOVE``: more than half the gap remains,
the same 25% margin), AND kNN on h not above the random init's kNN on h (within
``KNN_AT_INIT_WITHIN`` = 2 points, one standard error of the difference of two kNN readings on
1,000 queries near 70%: √2 · √(0.7 · 0.3 / 1000) ≈ 2 points; ± the same 2 points of margin).
The loss's minimum: −1 for SimSiam's negative cosine (SimSiam Eq. 1), 0 for BYOL's 2 − 2·cos
(BYOL Eq. 2); for DINO the gap is KL(teacher ‖ student) itself (the loss minus the teacher's
entropy); other methods (MoCo v3's InfoNCE) have no reachable minimum and are not judged on it.

**Borderline**: no majority, or not collapsed and the convergence test straddles.

**Stability.** Every statistic's vote over a window is also its vote over any sub-window (a
reading clearly on one side stays so), so for a run not borderline the verdict is the same
from the last 1, 2 or 3 points, or from any single one of them: the run may end on any of its
last ``window`` points. ``tests/test_verdict.py`` checks it on the committed records.

The claims these outcomes are compared with, and their sources: docs/recipes.md, "Collapse:
the claims the ablation benchmark checks" (and the DINO section's "Monitors").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from records.errors import RecordError

COLLAPSED = "collapsed"
FAILED = "failed to converge"
HEALTHY = "healthy"
BORDERLINE = "borderline"
OUTCOMES = (COLLAPSED, FAILED, HEALTHY, BORDERLINE)

WINDOW = 3
MARGIN = 0.25  # multiplicative band around each threshold
Z_COLLAPSED_BELOW = 0.2
RANK_COLLAPSED_BELOW = 2.0
MO_COLLAPSED_ABOVE = 0.95
KL_COLLAPSED_BELOW = 0.05
LOSS_HIGH_ABOVE = 0.5  # share of the first loss's gap to the minimum still left
KNN_AT_INIT_WITHIN = 2.0  # points above the random init still counted as "at" it
KNN_MARGIN = 2.0
LOSS_MIN = {"simsiam": -1.0, "byol": 0.0}  # SimSiam Eq. 1; BYOL Eq. 2 (both view orders)

_STATS = (
    # name, eval key, train key, threshold, side of the threshold that means collapse
    ("z-std·√d", "z_std_sqrt_d_eval", "z_std_sqrt_d", Z_COLLAPSED_BELOW, "below"),
    ("RankMe", "rankme_eval", "rankme", RANK_COLLAPSED_BELOW, "below"),
    ("m_o", "m_o_eval", "m_o", MO_COLLAPSED_ABOVE, "above"),
    ("KL(t‖s)", None, "teacher_student_kl", KL_COLLAPSED_BELOW, "below"),
)


@dataclass(frozen=True)
class Vote:
    """One statistic over the window: its readings and which side they fall on."""

    name: str
    key: str  # the trace key read
    values: tuple[float, ...]
    threshold: float
    vote: str  # "collapsed", "healthy" or "straddles"

    def text(self) -> str:
        lo, hi = min(self.values), max(self.values)
        span = f"{lo:.3g}" if lo == hi else f"{lo:.3g}–{hi:.3g}"
        return f"{self.name}{' (eval)' if self.key.endswith('_eval') else ''} {span}"


@dataclass(frozen=True)
class Verdict:
    """The outcome, the statistics that agree with it, and everything it was read from."""

    outcome: str
    agree: tuple[str, ...]  # names of the statistics that voted for the outcome
    votes: tuple[Vote, ...]
    steps: tuple[int, ...]  # the window's monitor points
    eval_mode: bool  # the window holds the held-out bank's eval-mode statistics
    loss_gap: tuple[float, ...] = ()  # share of the first loss's gap to its minimum left
    knn_delta: tuple[float, ...] = ()  # kNN on h minus the random init's, points
    converge: str = ""  # "failed", "converged", "straddles" or "" (not judged)

    def text(self) -> str:
        """One line: the outcome, which statistics agree, over which points."""
        where = (
            f"steps {self.steps[0]}–{self.steps[-1]}"
            if len(self.steps) > 1
            else (f"step {self.steps[0]}")
        )
        mode = "eval" if self.eval_mode else "train"
        agree = [v.text() for v in self.votes if v.name in self.agree]
        rest = [f"{v.text()} {v.vote}" for v in self.votes if v.name not in self.agree]
        parts = [f"{self.outcome} ({mode}-mode, {where})"]
        if agree:
            parts.append("agree: " + ", ".join(agree))
        if rest:
            parts.append("other: " + ", ".join(rest))
        if self.outcome in (FAILED, BORDERLINE) and self.converge:
            gap = "/".join(f"{g:.2f}" for g in self.loss_gap) or "?"
            knn = "/".join(f"{d:+.1f}" for d in self.knn_delta) or "?"
            parts.append(f"loss gap left {gap}, kNN h vs init {knn} points")
        return "; ".join(parts)


def _side(value: float, threshold: float, collapsed_side: str, name: str) -> str:
    """Which side of the threshold one reading falls on, clear of the margin."""
    if name == "m_o":  # the margin on the residual's rms norm √(1 − m_o²)
        value = math.sqrt(max(0.0, 1.0 - min(value, 1.0) ** 2))
        threshold = math.sqrt(1.0 - threshold**2)
        collapsed_side = "below"
    lo, hi = threshold / (1 + MARGIN), threshold * (1 + MARGIN)
    if value < lo:
        return COLLAPSED if collapsed_side == "below" else HEALTHY
    if value > hi:
        return HEALTHY if collapsed_side == "below" else COLLAPSED
    return "straddles"


def _combine(sides: list[str]) -> str:
    return sides[0] if len(set(sides)) == 1 else "straddles"


def is_finite_number(value: Any) -> bool:
    """A real, finite number (not a bool, not NaN or inf): a reading a vote can use."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def monitor_points(trace: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], bool]:
    """The trace's monitor points and whether they are eval-mode ones (the kNN bank's)."""
    evals = [r for r in trace if is_finite_number(r.get("z_std_sqrt_d_eval"))]
    if evals:
        return evals, True
    return [
        r
        for r in trace
        if is_finite_number(r.get("z_std_sqrt_d")) or is_finite_number(r.get("rankme"))
    ], False


def _votes(rows: list[Mapping[str, Any]], eval_mode: bool) -> list[Vote]:
    votes = []
    for name, eval_key, key, threshold, side in _STATS:
        use = (
            eval_key
            if eval_mode and eval_key and all(is_finite_number(r.get(eval_key)) for r in rows)
            else key
        )
        values = [r.get(use) for r in rows]
        if not values or not all(is_finite_number(v) for v in values):
            continue
        sides = [_side(float(v), threshold, side, name) for v in values]
        votes.append(Vote(name, use, tuple(float(v) for v in values), threshold, _combine(sides)))
    return votes


def _gap(row: Mapping[str, Any], loss_min: float | None) -> float | None:
    if is_finite_number(row.get("teacher_student_kl")):
        return float(row["teacher_student_kl"])
    if loss_min is not None and is_finite_number(row.get("loss")):
        return float(row["loss"]) - loss_min
    return None


def judge(
    trace: Sequence[Mapping[str, Any]],
    *,
    window: int = WINDOW,
    init_knn_h: float | None = None,
    loss_min: float | None = None,
    points: Sequence[int] | None = None,
) -> Verdict:
    """The verdict of a monitor trace (rows with ``step`` and any of the monitors).

    ``window``: the last N monitor points; ``points``: instead, the indices (into the monitor
    points, negative from the end) of the points to judge on. ``init_knn_h``: the random
    init's kNN on h (default: the trace's step-0 ``knn_h``). ``loss_min``: the loss's minimum
    (``LOSS_MIN``; None: the loss is not judged unless the trace holds DINO's KL).
    """
    all_points, eval_mode = monitor_points(trace)
    if not all_points:
        raise RecordError("no monitor points in the trace (no z_std_sqrt_d / rankme readings)")
    if points is not None:
        rows = [all_points[i] for i in sorted({i % len(all_points) for i in points})]
    else:
        rows = all_points[-max(1, window) :]
    steps = tuple(int(r.get("step", 0)) for r in rows)
    votes = _votes(rows, eval_mode)
    collapsed = [v.name for v in votes if v.vote == COLLAPSED]
    healthy = [v.name for v in votes if v.vote == HEALTHY]
    half = len(votes) / 2
    if len(collapsed) > half:
        return Verdict(COLLAPSED, tuple(collapsed), tuple(votes), steps, eval_mode)
    if not len(healthy) > half:
        return Verdict(BORDERLINE, (), tuple(votes), steps, eval_mode)

    # Not collapsed: did it converge? (SimSiam Table 1b)
    if init_knn_h is None:
        init = [
            r for r in trace if is_finite_number(r.get("knn_h")) and int(r.get("step", -1)) == 0
        ]
        init_knn_h = float(init[0]["knn_h"]) if init else None
    first = next((g for r in trace if (g := _gap(r, loss_min)) is not None), None)
    gaps = [_gap(r, loss_min) for r in rows]
    loss_side = None
    if first is not None and first > 0 and all(g is not None for g in gaps):
        shares = [g / first for g in gaps]
        loss_side = _combine([_side(s, LOSS_HIGH_ABOVE, "above", "loss") for s in shares])
    else:
        shares = []
    lo, hi = steps[0], steps[-1]
    knn_rows = [
        r for r in trace if is_finite_number(r.get("knn_h")) and lo <= int(r.get("step", -1)) <= hi
    ]
    if not knn_rows:  # kNN is sparser than the monitors: the reading nearest the window's end
        later = [
            r for r in trace if is_finite_number(r.get("knn_h")) and int(r.get("step", -1)) > 0
        ]
        knn_rows = sorted(later, key=lambda r: (abs(int(r["step"]) - hi), -int(r["step"])))[:1]
    deltas = []
    knn_side = None
    if init_knn_h is not None and knn_rows:
        deltas = [float(r["knn_h"]) - init_knn_h for r in knn_rows]
        sides = []
        for d in deltas:
            if d < KNN_AT_INIT_WITHIN - KNN_MARGIN:
                sides.append("at_or_below")
            elif d > KNN_AT_INIT_WITHIN + KNN_MARGIN:
                sides.append("above")
            else:
                sides.append("straddles")
        knn_side = _combine(sides)
    # loss side "collapsed" = share above the threshold = loss still high
    if loss_side is None or knn_side is None:
        converge = ""
    elif loss_side == COLLAPSED and knn_side == "at_or_below":
        converge = "failed"
    elif loss_side == HEALTHY or knn_side == "above":
        converge = "converged"
    else:
        converge = "straddles"
    extra = {"loss_gap": tuple(shares), "knn_delta": tuple(deltas), "converge": converge}
    if converge == "failed":
        return Verdict(FAILED, tuple(healthy), tuple(votes), steps, eval_mode, **extra)
    if converge == "straddles":
        return Verdict(BORDERLINE, (), tuple(votes), steps, eval_mode, **extra)
    return Verdict(HEALTHY, tuple(healthy), tuple(votes), steps, eval_mode, **extra)


def record_trace(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """An ablation record's collapse curve; without one, its final values as one point."""
    curve = record.get("curve")
    if isinstance(curve, list) and monitor_points(curve)[0]:
        return curve
    final = {"step": record.get("steps", 0)}
    for key, rec_key in (
        *(("z_std_sqrt_d", "z_std_sqrt_d"), ("rankme", "effective_rank"), ("m_o", "m_o")),
        *(("z_std_sqrt_d_eval", "z_std_sqrt_d_eval"), ("m_o_eval", "m_o_eval")),
        *(("loss", "loss"), ("knn_h", "knn_h"), ("teacher_student_kl", "teacher_student_kl")),
    ):
        if is_finite_number(record.get(rec_key)):
            final[key] = record[rec_key]
    return [final]


def judge_record(
    record: Mapping[str, Any], *, window: int = WINDOW, points: Sequence[int] | None = None
) -> Verdict:
    """The verdict of a collapse-ablation record (its curve, random-init kNN and method)."""
    init = record.get("init_knn_h")
    return judge(
        record_trace(record),
        window=window,
        points=points,
        init_knn_h=float(init) if is_finite_number(init) else None,
        loss_min=LOSS_MIN.get(str(record.get("method"))),
    )
