"""A run's outcome from its monitor trace, read over the last fifth of the run.

Five outcomes (``OUTCOMES``), each with its thresholds stated once, here:

- **complete collapse**: every output is (nearly) one vector. For SimSiam, BYOL and MoCo v3
  three statistics of z vote:
  - **z-std × √d** (SimSiam §4.1, Fig. 2): the mean per-channel std of the l2-normalized z,
    × √d; ≈ 1 for a z spread like an isotropic Gaussian, 0 when collapsed. Collapsed below
    ``Z_COLLAPSED_BELOW`` = 0.2 (the default of ``monitor.collapse_threshold``, which old
    configs still carry and nothing reads any more).
  - **RankMe** (Garrido et al., "RankMe: Assessing the Downstream Performance of Pretrained
    Self-Supervised Representations by Their Rank", ICML 2023, Eq. 1): exp of the entropy of
    z's normalized singular values, 1 for a z along one direction, up to d. Collapsed below
    ``RANK_COLLAPSED_BELOW`` = 2: fewer than two effective directions.
  - **m_o** (Zhang et al., "How does SimSiam avoid collapse without negative samples?", ICLR
    2022, §3): the norm of the batch center of the l2-normalized z, → 1 when every z is the
    center. Collapsed above ``MO_COLLAPSED_ABOVE`` = 0.95: the center holds over 90% of z's
    squared norm (m_o² + mean ‖r‖² = 1).
  The run is completely collapsed when a strict majority of them vote collapsed.

  **DINO** collapses in its *output*, the softmax over the head's K dimensions, not in z
  (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
  §5.3, Fig. 7): with sharpening alone one dimension dominates (the teacher's entropy → 0),
  with centering alone the output goes uniform (entropy → log K), and in both modes
  KL(teacher ‖ student) → 0. A trace that logs ``teacher_student_kl`` on every window point
  is therefore judged on the output: the KL clearly below ``KL_COLLAPSED_BELOW`` = 0.05 nats
  (the Fashion-MNIST recipe's healthy run reads 0.49-0.72) on every window point is complete
  collapse, clearly above it on every point is not, and a KL that straddles it is borderline.
  The collapse mode is named from the window's mean ``teacher_entropy`` as a fraction of
  log K, by ``records/dino_modes.py``'s thresholds (below 10%: one dimension dominates; above
  90%: uniform); K is the head's ``config["method"]["out_dim"]`` (``judge_record``), and
  without it the mode is not named (the outcome still follows the KL). z's three statistics
  are still read and reported, and dimensional collapse of z against DINO's healthy reference
  is still judged when the output is not collapsed, but they do not outvote the output: a
  uniform output with KL 0.02 is complete collapse even where z-std·√d reads 0.79.
- **dimensional collapse** (Jing et al., "Understanding Dimensional Collapse in Contrastive
  Self-supervised Learning", ICLR 2022, §3 and Fig. 1: the embedding spans a low-dimensional
  subspace, seen as the tail of its singular-value spectrum falling to zero, while it is not
  one point): not completely collapsed, and RankMe far below the same configuration's healthy
  runs: its ratio to ``reference_rankme`` (``records.references``: the mean window RankMe of
  the reference variant's runs of the same method and length) below ``DIM_RATIO`` = 0.25 on
  every window point. The ratio compares like with like: the run's RankMe and the reference's
  are read from the same key (``rankme_key``): the eval bank's ``rankme_eval`` where the run
  has it on every window point and every reference run has it too, else the train batch's
  ``rankme`` on both sides (train-mode BN re-normalizes each batch, so the two modes read
  different numbers of the same z). RankMe is the effective-rank summary of that spectrum
  (Garrido et al. §3); the record keeps the spectrum itself (``z_spectrum``). Without a
  reference the question is not asked, and the verdict says so.
- **failed to converge** (SimSiam Table 1b: a fixed random predictor "does not converge, and
  the loss remains high", 1.5%, yet not collapsed): neither collapse, the loss still closer to
  its first logged value than to its minimum (``LOSS_HIGH_ABOVE``: more than half the gap
  left), AND kNN on h not above the random init's kNN on h (within ``KNN_AT_INIT_WITHIN`` = 2
  points, one standard error of the difference of two kNN readings on 1,000 queries near 70%:
  √2 · √(0.7 · 0.3 / 1000) ≈ 2 points; ± ``KNN_MARGIN`` = 2 points of margin). The loss's
  minimum (``LOSS_MIN``): −1 for SimSiam's negative cosine (SimSiam Eq. 1), 0 for BYOL's
  2 − 2·cos (BYOL Eq. 2); for DINO the gap is KL(teacher ‖ student) itself; MoCo v3's InfoNCE
  has no reachable minimum and is not judged on it.
- **healthy**: neither collapse, and converged (the loss past half its gap, or kNN on h above
  the random init).
- **borderline**: a question the window does not answer: no majority of the collapse
  statistics (for DINO, a KL that straddles its threshold), a RankMe ratio within the margin
  of ``DIM_RATIO``, or a convergence test that straddles. ``Verdict.between`` names the
  outcomes it lies between.

**Margin.** A reading within ``MARGIN`` (25%, multiplicative) of a threshold is not counted
either way: z-std × √d in [0.16, 0.25], RankMe in [1.6, 2.5], √(1 − m_o²) within 25% of
√(1 − 0.95²) (m_o in [0.92, 0.968]), DINO's KL in [0.04, 0.0625] nats, a RankMe ratio in
[0.2, 0.3125]. A statistic votes only when every reading of the window is clearly on one
side; otherwise it straddles. 25% is about the scatter of one statistic between consecutive
monitor points near the threshold in the committed traces (no-stop-gradient at 300 steps:
train-mode z-std × √d 0.19, 0.25, 0.19, 0.23 at steps 225-300).

**Window.** The monitor points in the last ``WINDOW_FRACTION`` (a fifth) of the run's steps,
``step >= (1 − 0.2) · last step``, at least one point: steps 240-300 of a 300-step run,
1,200-1,500 of a 1,500-step one. A fixed count of points would be the whole of a short run.
Where the trace holds the kNN monitor's eval-mode statistics of its held-out bank
(``z_std_sqrt_d_eval``, ``m_o_eval``, ``rankme_eval``), the window is made of those points
and they are read in preference to the train-mode ones: train-mode BN re-normalizes every
batch, which keeps a collapsed z's train-mode z-std × √d near 0.18 while the eval-mode one
reads 0.01-0.05 (the committed no-stop-gradient records).

**Stability.** A statistic's vote over a window is also its vote over any sub-window (a
reading clearly on one side stays so), so a verdict that is not borderline is the same from
any subset of its window's points (``points=``; ``tests/test_verdict.py`` checks it on the
committed records).

**p.** ``on="p"`` judges the predictor's output p (l2-normalized like z) from its own keys
(``p_std_sqrt_d``, ``rankme_p``, ``m_o_p`` and their eval-mode versions): the collapse Zhang et
al. (§2) argue the symmetric predictor and Mirror SimSiam reach may show in p before z.

The claims these outcomes are compared with, and their sources: ``records/explanations.py``
and docs/recipes.md, "Collapse: the claims the ablation benchmark checks".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from records.errors import RecordError

HEALTHY = "healthy"
DIMENSIONAL = "dimensional collapse"
COMPLETE = "complete collapse"
FAILED = "failed to converge"
BORDERLINE = "borderline"
OUTCOMES = (HEALTHY, DIMENSIONAL, COMPLETE, FAILED, BORDERLINE)
# Not an outcome: a record with no monitor trace to judge (a pretraining record written before
# the windowed verdict keeps only its last monitor values, one point, which is no window)
NOT_JUDGED = "not judged"

WINDOW_FRACTION = 0.2  # the last fifth of the run's steps
WINDOW = 3  # records/dino_modes.py's KL mean: the last points it averages (not the verdict's)
MARGIN = 0.25  # multiplicative band around each threshold
Z_COLLAPSED_BELOW = 0.2
RANK_COLLAPSED_BELOW = 2.0
MO_COLLAPSED_ABOVE = 0.95
KL_COLLAPSED_BELOW = 0.05
DIM_RATIO = 0.25  # RankMe / the healthy reference's below this: dimensional collapse
LOSS_HIGH_ABOVE = 0.5  # share of the first loss's gap to the minimum still left
KNN_AT_INIT_WITHIN = 2.0  # points above the random init still counted as "at" it
KNN_MARGIN = 2.0
LOSS_MIN = {"simsiam": -1.0, "byol": 0.0}  # SimSiam Eq. 1; BYOL Eq. 2 (both view orders)

OUTPUT = "KL(t‖s)"  # DINO's output statistic: it alone decides complete collapse (§5.3)
OUTPUT_KEY = "teacher_student_kl"  # nats
ENTROPY_KEY = "teacher_entropy"  # nats; its mode thresholds live in records/dino_modes.py

# Vote values of one statistic over the window
COLLAPSED_VOTE, HEALTHY_VOTE, STRADDLES = "collapsed", "healthy", "straddles"


@dataclass(frozen=True)
class Stat:
    """One statistic of the complete-collapse vote: the keys it reads, its threshold."""

    name: str
    eval_key: str | None  # the kNN bank's eval-mode reading (preferred)
    key: str  # the train batch's reading
    threshold: float
    collapsed_side: str  # "below" or "above"


STATS = {
    "z": (
        Stat("z-std·√d", "z_std_sqrt_d_eval", "z_std_sqrt_d", Z_COLLAPSED_BELOW, "below"),
        Stat("RankMe", "rankme_eval", "rankme", RANK_COLLAPSED_BELOW, "below"),
        Stat("m_o", "m_o_eval", "m_o", MO_COLLAPSED_ABOVE, "above"),
        Stat(OUTPUT, None, OUTPUT_KEY, KL_COLLAPSED_BELOW, "below"),
    ),
    "p": (
        Stat("p-std·√d", "p_std_sqrt_d_eval", "p_std_sqrt_d", Z_COLLAPSED_BELOW, "below"),
        Stat("RankMe(p)", "rankme_p_eval", "rankme_p", RANK_COLLAPSED_BELOW, "below"),
        Stat("m_o(p)", "m_o_p_eval", "m_o_p", MO_COLLAPSED_ABOVE, "above"),
    ),
}
RATIO = "RankMe / reference"  # the dimensional-collapse statistic's name


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
    votes: tuple[Vote, ...]  # the complete-collapse vote
    steps: tuple[int, ...]  # the window's monitor points
    eval_mode: bool  # the window holds the held-out bank's eval-mode statistics
    rank_ratio: tuple[float, ...] = ()  # RankMe / reference_rankme per window point
    reference_rankme: float | None = None
    loss_gap: tuple[float, ...] = ()  # share of the first loss's gap to its minimum left
    knn_delta: tuple[float, ...] = ()  # kNN on h minus the random init's, points
    converge: str = ""  # "failed", "converged", "straddles" or "" (not judged)
    between: tuple[str, ...] = ()  # a borderline verdict: the outcomes it lies between
    fraction: float | None = WINDOW_FRACTION  # None: the window was given as points
    on: str = "z"
    rank_key: str = ""  # the RankMe key the ratio read (the reference's is the same key)
    # DINO: the collapse mode of the output, e.g. "uniform (entropy 99% of log K)", or why it is
    # not named; "" where the output is not judged (not DINO)
    output_mode: str = ""
    entropy_ratio: float | None = None  # DINO: the window's mean teacher entropy / log K
    output_steps: tuple[int, ...] = ()  # DINO: the points the output was read on

    @property
    def output(self) -> Vote | None:
        """DINO's KL vote, which decides complete collapse; None for the other methods."""
        return next((v for v in self.votes if v.name == OUTPUT), None)

    def text(self) -> str:
        """One line: the outcome, what agrees, over which points, what was not judged."""
        where = _where(self.steps)
        mode = "eval" if self.eval_mode else "train"
        head = self.outcome
        if self.between:
            head += f" ({' vs '.join(self.between)})"
        output = self.output
        out_where = _where(self.output_steps, count=True)
        z_votes = ", ".join(f"{v.text()} {v.vote}" for v in self.votes if v is not output)
        if output is not None and self.outcome == COMPLETE:
            parts = [
                f"{head} of the output ({out_where}): {self.output_mode}, {output.text()} "
                f"(DINO §5.3, Fig. 7)",
                f"z ({mode}-mode, {where}): {z_votes}",
            ]
        else:
            parts = [f"{head} ({self.on}, {mode}-mode, {where})"]
            if output is not None:
                side = "straddles" if output.vote == STRADDLES else "above"  # not collapsed
                parts.append(
                    f"output ({out_where}): {output.text()} {side} {output.threshold:g}, "
                    f"{self.output_mode}"
                )
        if self.rank_ratio:
            span = _span(self.rank_ratio, "{:.2f}")
            parts.append(
                f"RankMe{' (eval)' if self.rank_key.endswith('_eval') else ''} {span} of the "
                f"healthy reference {self.reference_rankme:.3g}"
            )
        if output is not None:  # z's statistics are reported; they do not outvote the output
            if self.outcome != COMPLETE:
                parts.append(f"z: {z_votes}")
        else:
            agree = [v.text() for v in self.votes if v.name in self.agree]
            rest = [f"{v.text()} {v.vote}" for v in self.votes if v.name not in self.agree]
            if agree:
                parts.append("agree: " + ", ".join(agree))
            if rest:
                label = "not complete" if self.outcome == DIMENSIONAL else "other"
                parts.append(f"{label}: " + ", ".join(rest))
        if not self.rank_ratio and self.outcome != COMPLETE:
            why = (
                "it needs a healthy reference RankMe"
                if self.reference_rankme is None
                else f"a window point lacks {self.rank_key or 'RankMe'}"
            )
            parts.append(f"dimensional collapse not judged ({why})")
        if self.outcome in (FAILED, BORDERLINE) and self.converge:
            gap = _span(self.loss_gap, "{:.2f}")
            knn = _span(self.knn_delta, "{:+.1f}")
            parts.append(f"loss gap left {gap}, kNN h vs init {knn} points")
        return "; ".join(parts)

    def as_record(self) -> dict[str, Any]:
        """The block a record stores as its ``verdict`` (for DINO also ``output_mode`` and
        ``entropy_ratio``)."""
        dino = (
            {
                "output_mode": self.output_mode,
                "entropy_ratio": self.entropy_ratio,
                "output_steps": list(self.output_steps),
            }
            if self.output is not None
            else {}
        )
        return {
            "outcome": self.outcome,
            "agree": list(self.agree),
            "between": list(self.between),
            "votes": {v.name: v.vote for v in self.votes},
            "steps": list(self.steps),
            "eval_mode": self.eval_mode,
            "window_fraction": self.fraction,
            "on": self.on,
            "rank_ratio": list(self.rank_ratio),
            "reference_rankme": self.reference_rankme,
            "rank_key": self.rank_key,
            "converge": self.converge,
            "text": self.text(),
        } | dino


def not_judged(reason: str) -> dict[str, Any]:
    """The ``verdict`` block of a record that holds no monitor trace to judge: outcome
    ``NOT_JUDGED`` and, in its text, why."""
    if not reason.strip():
        raise ValueError("a verdict that is not judged says why")
    return {
        "outcome": NOT_JUDGED,
        "agree": [],
        "between": [],
        "votes": {},
        "steps": [],
        "eval_mode": False,
        "window_fraction": None,
        "on": "z",
        "rank_ratio": [],
        "reference_rankme": None,
        "rank_key": "",
        "converge": "",
        "text": f"{NOT_JUDGED}: {reason}",
    }


def _where(steps: Sequence[int], count: bool = False) -> str:
    """``steps a–b`` (``count``: with ``, n points``) or ``step a``."""
    if len(steps) > 1:
        return f"steps {steps[0]}–{steps[-1]}" + (f", {len(steps)} points" if count else "")
    return f"step {steps[0]}" if steps else "no step"


def _span(values: Sequence[float], fmt: str) -> str:
    """``lo–hi`` of a window's readings (one number when they agree, ? when none)."""
    if not values:
        return "?"
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}–{hi}"


def _side(value: float, threshold: float) -> str:
    """ "below" or "above" the threshold, clear of the margin; else "straddles"."""
    if value < threshold / (1 + MARGIN):
        return "below"
    if value > threshold * (1 + MARGIN):
        return "above"
    return STRADDLES


def _vote(value: float, stat: Stat) -> str:
    """One reading's vote on complete collapse."""
    threshold, collapsed_side = stat.threshold, stat.collapsed_side
    if stat.key.startswith("m_o"):  # the margin on the residual's rms norm √(1 − m_o²)
        value = math.sqrt(max(0.0, 1.0 - min(value, 1.0) ** 2))
        threshold = math.sqrt(1.0 - threshold**2)
        collapsed_side = "below"
    side = _side(value, threshold)
    if side == STRADDLES:
        return STRADDLES
    return COLLAPSED_VOTE if side == collapsed_side else HEALTHY_VOTE


def _combine(sides: list[str]) -> str:
    return sides[0] if len(set(sides)) == 1 else STRADDLES


def is_finite_number(value: Any) -> bool:
    """A real, finite number (not a bool, not NaN or inf): a reading a vote can use."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_on(on: str) -> tuple[Stat, ...]:
    if on not in STATS:
        raise ValueError(f"on={on!r}: judge z or p (one of {', '.join(STATS)})")
    return STATS[on]


def monitor_points(
    trace: Sequence[Mapping[str, Any]], on: str = "z"
) -> tuple[list[Mapping[str, Any]], bool]:
    """The trace's monitor points of ``on`` and whether they are eval-mode ones (the kNN
    bank's)."""
    stats = _check_on(on)
    spread = stats[0]
    evals = [r for r in trace if is_finite_number(r.get(spread.eval_key))]
    if evals:
        return evals, True
    return [
        r
        for r in trace
        if is_finite_number(r.get(spread.key)) or is_finite_number(r.get(stats[1].key))
    ], False


def window_rows(
    trace: Sequence[Mapping[str, Any]],
    *,
    fraction: float = WINDOW_FRACTION,
    points: Sequence[int] | None = None,
    on: str = "z",
) -> tuple[list[Mapping[str, Any]], bool]:
    """The monitor points a verdict reads: those in the last ``fraction`` of the run's steps
    (at least the last one), or the given ``points`` (indices into the monitor points, negative
    from the end); and whether they are eval-mode points."""
    all_points, eval_mode = monitor_points(trace, on)
    if not all_points:
        raise RecordError(
            f"no monitor points of {on} in the trace (no {STATS[on][0].key} / "
            f"{STATS[on][1].key} readings)"
        )
    if points is not None:
        return [all_points[i] for i in sorted({i % len(all_points) for i in points})], eval_mode
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction}: the window is a share of the run, in (0, 1]")
    start = _window_start(trace, fraction)
    rows = [r for r in all_points if int(r.get("step", 0)) >= start]
    return rows or all_points[-1:], eval_mode


def _window_start(trace: Sequence[Mapping[str, Any]], fraction: float) -> float:
    """The first step of the window: ``(1 − fraction) · last step``."""
    last = max(int(r.get("step", 0)) for r in trace if is_finite_number(r.get("step", 0)))
    return (1 - fraction) * last


def output_rows(
    trace: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    *,
    fraction: float = WINDOW_FRACTION,
    points: Sequence[int] | None = None,
) -> list[Mapping[str, Any]]:
    """The points DINO's output is read on: every point of the window's steps (the last
    ``fraction`` of the run) that logs ``teacher_student_kl``, a train-batch statistic logged
    at every monitor point, not only at the kNN bank's eval-mode points that make ``rows``;
    with ``points`` given, ``rows`` themselves (a sub-window stays a sub-window)."""
    if points is not None:
        return list(rows)
    start = _window_start(trace, fraction)
    out = [
        r for r in trace if is_finite_number(r.get(OUTPUT_KEY)) and int(r.get("step", 0)) >= start
    ]
    return out or list(rows)


def _votes(
    rows: Sequence[Mapping[str, Any]], eval_mode: bool, on: str, only: str | None = None
) -> list[Vote]:
    """The votes of ``on``'s statistics over ``rows`` (``only``: that statistic's alone)."""
    votes = []
    for stat in STATS[on]:
        if only is not None and stat.name != only:
            continue
        eval_key = stat.eval_key
        use = (
            eval_key
            if eval_mode and eval_key and all(is_finite_number(r.get(eval_key)) for r in rows)
            else stat.key
        )
        values = [r.get(use) for r in rows]
        if not values or not all(is_finite_number(v) for v in values):
            continue
        sides = [_vote(float(v), stat) for v in values]
        votes.append(Vote(stat.name, use, tuple(float(v) for v in values), stat.threshold,
                          _combine(sides)))  # fmt: skip
    return votes


def rank_keys(on: str = "z") -> tuple[str, str]:
    """The RankMe keys of ``on``: (the eval bank's, the train batch's)."""
    rank = _check_on(on)[1]
    assert rank.eval_key is not None
    return rank.eval_key, rank.key


def _has(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    return bool(rows) and all(is_finite_number(r.get(key)) for r in rows)


def rank_key(rows: Sequence[Mapping[str, Any]], on: str = "z") -> str | None:
    """The RankMe key the window's points all have, eval-mode preferred; None if none."""
    return next((key for key in rank_keys(on) if _has(rows, key)), None)


def _check_rank_key(key: str, on: str) -> None:
    if key not in rank_keys(on):
        raise ValueError(f"rankme_key={key!r}: a RankMe key of {on} ({', '.join(rank_keys(on))})")


def window_rankme(
    trace: Sequence[Mapping[str, Any]],
    *,
    fraction: float = WINDOW_FRACTION,
    on: str = "z",
    key: str | None = None,
) -> float | None:
    """The mean RankMe over the verdict's window (what a reference run contributes), read from
    ``key`` (``rankme_eval`` or ``rankme`` for z; default: the key every window point has,
    eval-mode preferred); None when a window point lacks it."""
    rows, _ = window_rows(trace, fraction=fraction, on=on)
    if key is not None:
        _check_rank_key(key, on)
    key = key or rank_key(rows, on)
    return statistics.fmean(float(r[key]) for r in rows) if key and _has(rows, key) else None


def _gap(row: Mapping[str, Any], loss_min: float | None) -> float | None:
    if is_finite_number(row.get("teacher_student_kl")):
        return float(row["teacher_student_kl"])
    if loss_min is not None and is_finite_number(row.get("loss")):
        return float(row["loss"]) - loss_min
    return None


def _converge(
    trace: Sequence[Mapping[str, Any]],
    rows: list[Mapping[str, Any]],
    steps: tuple[int, ...],
    init_knn_h: float | None,
    loss_min: float | None,
) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """SimSiam Table 1b's test over the window: ("failed" | "converged" | "straddles" | "",
    the loss gap shares, the kNN-on-h deltas to the random init)."""
    if init_knn_h is None:
        init = [
            r for r in trace if is_finite_number(r.get("knn_h")) and int(r.get("step", -1)) == 0
        ]
        init_knn_h = float(init[0]["knn_h"]) if init else None
    first = next((g for r in trace if (g := _gap(r, loss_min)) is not None), None)
    gaps = [_gap(r, loss_min) for r in rows]
    loss_side = None
    shares: list[float] = []
    if first is not None and first > 0 and all(g is not None for g in gaps):
        shares = [g / first for g in gaps]  # type: ignore[operator]
        loss_side = _combine([_side(s, LOSS_HIGH_ABOVE) for s in shares])
    lo, hi = steps[0], steps[-1]
    knn_rows = [
        r for r in trace if is_finite_number(r.get("knn_h")) and lo <= int(r.get("step", -1)) <= hi
    ]
    if not knn_rows:  # kNN is sparser than the monitors: the reading nearest the window's end
        later = [
            r for r in trace if is_finite_number(r.get("knn_h")) and int(r.get("step", -1)) > 0
        ]
        knn_rows = sorted(later, key=lambda r: (abs(int(r["step"]) - hi), -int(r["step"])))[:1]
    deltas: list[float] = []
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
                sides.append(STRADDLES)
        knn_side = _combine(sides)
    if loss_side is None or knn_side is None:
        converge = ""
    elif loss_side == "above" and knn_side == "at_or_below":
        converge = "failed"
    elif loss_side == "below" or knn_side == "above":
        converge = "converged"
    else:
        converge = STRADDLES
    return converge, tuple(shares), tuple(deltas)


def _output_mode(
    rows: Sequence[Mapping[str, Any]], log_k: float | None
) -> tuple[str, float | None]:
    """DINO's collapse mode over the window (DINO §5.3, Fig. 7), named by
    ``records.dino_modes.mode_of`` from the mean teacher entropy / log K: the phrase and the
    ratio, or why the mode is not named and None."""
    from records import dino_modes  # it imports this module's thresholds

    if log_k is None or not log_k > 0:
        return "mode not named (no K, the head's output dimension)", None
    if not _has(rows, ENTROPY_KEY):
        return f"mode not named (a window point lacks {ENTROPY_KEY})", None
    ratio = statistics.fmean(float(r[ENTROPY_KEY]) for r in rows) / log_k
    return f"{dino_modes.SHORT[dino_modes.mode_of(ratio)]} (entropy {ratio:.0%} of log K)", ratio


def judge(
    trace: Sequence[Mapping[str, Any]],
    *,
    fraction: float = WINDOW_FRACTION,
    init_knn_h: float | None = None,
    loss_min: float | None = None,
    reference_rankme: float | None = None,
    points: Sequence[int] | None = None,
    on: str = "z",
    rankme_key: str | None = None,
    log_k: float | None = None,
) -> Verdict:
    """The verdict of a monitor trace (rows with ``step`` and any of the monitors).

    ``fraction``: the window is the monitor points in the last ``fraction`` of the run's steps;
    ``points``: instead, the indices (into the monitor points, negative from the end) of the
    points to judge on. ``init_knn_h``: the random init's kNN on h (default: the trace's
    step-0 ``knn_h``). ``loss_min``: the loss's minimum (``LOSS_MIN``; None: the loss is not
    judged unless the trace holds DINO's KL). ``reference_rankme``: the mean window RankMe of
    the configuration's healthy reference runs (``records.references``; None: dimensional
    collapse is not judged). ``on``: "z" or "p" (the predictor's output). ``rankme_key``: the
    RankMe key the ratio reads, the one ``reference_rankme`` was read from (``rank_keys``;
    default: the key every window point has, eval-mode preferred); a window point without it
    leaves dimensional collapse not judged. ``log_k``: DINO's log K (nats; K the head's output
    dimension), which names the output's collapse mode (None: not named; the outcome is the
    same).
    """
    rows, eval_mode = window_rows(trace, fraction=fraction, points=points, on=on)
    steps = tuple(int(r.get("step", 0)) for r in rows)
    votes = tuple(_votes(rows, eval_mode, on))
    dino_rows: list[Mapping[str, Any]] = []
    if on == "z" and any(is_finite_number(r.get(OUTPUT_KEY)) for r in trace):
        # DINO: the output is read on every monitor point of the window
        dino_rows = output_rows(trace, rows, fraction=fraction, points=points)
        output_votes = _votes(dino_rows, False, on, only=OUTPUT)
        votes = tuple(v for v in votes if v.name != OUTPUT) + tuple(output_votes)
    common = {
        "votes": votes,
        "steps": steps,
        "eval_mode": eval_mode,
        "reference_rankme": reference_rankme,
        "fraction": None if points is not None else fraction,
        "on": on,
    }
    if rankme_key is not None:
        _check_rank_key(rankme_key, on)
    key = rankme_key or rank_key(rows, on)
    if reference_rankme is not None and key:
        common["rank_key"] = key
    if reference_rankme is not None and reference_rankme > 0 and key and _has(rows, key):
        common["rank_ratio"] = tuple(float(r[key]) / reference_rankme for r in rows)
    ratio = common.get("rank_ratio", ())
    ratio_side = _combine([_side(x, DIM_RATIO) for x in ratio]) if ratio else None
    output = next((v for v in votes if v.name == OUTPUT), None)
    if output is not None:  # DINO: the output decides complete collapse (§5.3, Fig. 7)
        common["output_mode"], common["entropy_ratio"] = _output_mode(dino_rows, log_k)
        common["output_steps"] = tuple(int(r.get("step", 0)) for r in dino_rows)
        if output.vote == COLLAPSED_VOTE:
            return Verdict(COMPLETE, (OUTPUT,), **common)
        if output.vote == STRADDLES:
            other = DIMENSIONAL if ratio_side == "below" else HEALTHY
            return Verdict(BORDERLINE, (), between=(COMPLETE, other), **common)
    z_votes = [v for v in votes if v is not output]
    collapsed = tuple(v.name for v in z_votes if v.vote == COLLAPSED_VOTE)
    healthy = tuple(v.name for v in votes if v.vote == HEALTHY_VOTE)
    half = len(z_votes) / 2
    if output is None and len(collapsed) > half:
        return Verdict(COMPLETE, collapsed, **common)
    if output is None and not len(healthy) > half:
        # the complete-collapse question is open: between complete collapse and whatever the
        # run would be without it (dimensional collapse when RankMe is clearly low)
        other = DIMENSIONAL if ratio_side == "below" else HEALTHY
        return Verdict(BORDERLINE, (), between=(COMPLETE, other), **common)
    if ratio_side == "below":
        return Verdict(DIMENSIONAL, (RATIO,), **common)
    if ratio_side == STRADDLES:
        return Verdict(BORDERLINE, (), between=(DIMENSIONAL, HEALTHY), **common)

    # Neither collapse: did it converge? (SimSiam Table 1b)
    converge, shares, deltas = _converge(trace, rows, steps, init_knn_h, loss_min)
    extra = {"loss_gap": shares, "knn_delta": deltas, "converge": converge}
    if converge == "failed":
        return Verdict(FAILED, healthy, **common, **extra)
    if converge == STRADDLES:
        return Verdict(BORDERLINE, (), between=(HEALTHY, FAILED), **common, **extra)
    return Verdict(HEALTHY, healthy, **common, **extra)


# The record's final values that stand in for a curve (trace key, record key)
FINAL_KEYS = (
    *(("z_std_sqrt_d", "z_std_sqrt_d"), ("rankme", "effective_rank"), ("m_o", "m_o")),
    *(("z_std_sqrt_d_eval", "z_std_sqrt_d_eval"), ("m_o_eval", "m_o_eval")),
    *(("loss", "loss"), ("knn_h", "knn_h"), ("teacher_student_kl", "teacher_student_kl")),
)


def record_trace(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """An ablation record's collapse curve; without one, its final values as one point."""
    curve = record.get("curve")
    if isinstance(curve, list) and any(monitor_points(curve, on)[0] for on in STATS):
        return curve
    final = {"step": record.get("steps", 0)}
    for key, rec_key in FINAL_KEYS:
        if is_finite_number(record.get(rec_key)):
            final[key] = record[rec_key]
    return [final]


def judge_record(
    record: Mapping[str, Any],
    *,
    reference_rankme: float | None = None,
    fraction: float = WINDOW_FRACTION,
    points: Sequence[int] | None = None,
    on: str = "z",
    rankme_key: str | None = None,
) -> Verdict:
    """The verdict of an ablation record (its curve, random-init kNN and method);
    ``reference_rankme`` and ``rankme_key`` as in ``judge``; DINO's K from its config
    (``records.dino_modes.out_dim``; without it the output's mode is not named)."""
    from records.dino_modes import out_dim  # it imports this module's thresholds

    init = record.get("init_knn_h")
    k = out_dim(record)
    return judge(
        record_trace(record),
        fraction=fraction,
        points=points,
        init_knn_h=float(init) if is_finite_number(init) else None,
        loss_min=LOSS_MIN.get(str(record.get("method"))),
        reference_rankme=reference_rankme,
        on=on,
        rankme_key=rankme_key,
        log_k=math.log(k) if k is not None else None,
    )
