"""DINO's failure modes from a run's monitor trace: which way the teacher's output went.

DINO (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
§5.3, Fig. 7) names two collapse modes and reads them from two monitors:

- **Sharpening alone** (no centering; here ``dino_no_centering``: ``center_momentum=1.0``, the
  center stays 0): one dimension dominates, the teacher's softmax turns one-hot, its entropy
  → 0.
- **Centering alone** (no sharpening; here ``dino_no_sharpening``: teacher temperature =
  student temperature = 0.1): the output collapses to uniform, the teacher's entropy → log K
  (K: the head's output dimension, ``config["method"]["out_dim"]``).
- In **both** modes KL(teacher ‖ student) → 0: the student matches a teacher that carries no
  information about the image. Full DINO (both together) keeps the entropy in between and the
  KL above 0.

The monitors are the trace's ``teacher_entropy`` (nats: the entropy of the centred and
sharpened teacher softmax, averaged over the batch) and ``teacher_student_kl`` (nats). The
reading here is their mean over the last ``WINDOW`` (3) points that log ``teacher_entropy``
(the verdict reads the same monitors over its own window, the run's last fifth); the entropy
is read as a fraction of log K:

- below ``SHARP_BELOW`` (0.1): "one dimension dominates (entropy → 0)": the teacher's mass
  sits on about K^0.1 of K dimensions or fewer (2 of 1024);
- above ``UNIFORM_ABOVE`` (0.9): "uniform (entropy → log K)": at least K^0.9 effective
  dimensions (512 of 1024);
- otherwise "neither".

KL → 0 when the window's mean KL is below ``records.verdict.KL_COLLAPSED_BELOW`` (0.05 nats,
the verdict's KL statistic; the Fashion-MNIST recipe's healthy run reads 0.49). A reading
*matches* the paper when its mode is the variant's expected one (``EXPECTED``) and, for a
collapse mode, the KL went to 0 (for the full ``dino``: neither mode, KL above 0).
Where the KL is not yet below the line, ``kl_falling`` says whether it was still falling (by
more than ``STILL_FALLING`` = 10% from the mean of the window's length of points before the
window) or had levelled off above 0.

This is the one place the rule lives; the explanations board (``leaderboards/
dino_modes_section.py``) renders it. The collapse verdict itself is ``records.verdict``'s: it
decides a DINO run's complete collapse from the KL over its window (the last fifth of the run)
and names the mode with ``mode_of`` and these thresholds (``SHORT``: the mode's name there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from records import verdict as V
from records.verdict import KL_COLLAPSED_BELOW, WINDOW, is_finite_number

SHARP_BELOW = 0.1  # entropy / log K below this: one dimension dominates
UNIFORM_ABOVE = 0.9  # entropy / log K above this: uniform output
KL_TO_ZERO_BELOW = KL_COLLAPSED_BELOW  # nats
STILL_FALLING = 0.1  # the KL fell by more than this share from the points before the window

SHARP = "one dimension dominates (entropy → 0)"
UNIFORM = "uniform (entropy → log K)"
NEITHER = "neither"
MODES = (SHARP, UNIFORM, NEITHER)
SHORT = {SHARP: "one dimension dominates", UNIFORM: "uniform", NEITHER: "neither mode"}

# variant -> the mode DINO §5.3 / Fig. 7 reports for it; variants not here have no prediction
EXPECTED: dict[str, str] = {
    "dino": NEITHER,  # centering + sharpening: no collapse, KL above 0
    "dino_no_centering": SHARP,
    "dino_no_sharpening": UNIFORM,
}

ENTROPY_KEY = V.ENTROPY_KEY
KL_KEY = "teacher_student_kl"


@dataclass(frozen=True)
class ModeReading:
    """The teacher's entropy and KL over the window, and the mode they read as."""

    entropy: float  # nats, mean over the window
    log_k: float  # nats, log of the head's output dimension
    kl: float | None  # KL(teacher ‖ student), nats, mean over the window (None: not logged)
    kl_first: float | None  # the first logged KL, nats
    steps: tuple[int, ...]  # the window's points
    expected: str | None = None  # the paper's mode for the variant (None: no prediction)
    kl_before: float | None = None  # mean KL of the window's length of points before it

    @property
    def kl_falling(self) -> bool | None:
        """Whether the KL still fell into the window: its mean more than ``STILL_FALLING``
        below the mean of the points before it; None without both."""
        if self.kl is None or self.kl_before is None:
            return None
        return self.kl < (1.0 - STILL_FALLING) * self.kl_before

    @property
    def ratio(self) -> float:
        """entropy / log K: 0 for a one-hot teacher, 1 for a uniform one."""
        return self.entropy / self.log_k

    @property
    def mode(self) -> str:
        return mode_of(self.ratio)

    @property
    def kl_to_zero(self) -> bool:
        return self.kl is not None and self.kl < KL_TO_ZERO_BELOW

    @property
    def matches(self) -> bool | None:
        """The paper's mode for the variant (a collapse mode with KL → 0; for the full DINO,
        neither with KL above 0); None when the variant has no prediction."""
        if self.expected is None:
            return None
        return self.mode == self.expected and self.kl_to_zero == (self.expected != NEITHER)

    def text(self) -> str:
        """One sentence: the figures, the mode, and whether it is the paper's."""
        figures = f"teacher entropy {self.entropy:.2f} of log K = {self.log_k:.2f} "
        figures += f"({self.ratio:.0%})"
        if self.kl is not None:
            first = f" (from {self.kl_first:.2f})" if self.kl_first is not None else ""
            figures += f", KL {self.kl:.2f}{first}"
        mode = self.mode if self.mode != NEITHER else f"neither mode at {self.steps[-1]} steps"
        if self.kl is not None:
            mode += ", KL → 0" if self.kl_to_zero else ", KL above 0"
        paper = "the paper's (no collapse)" if self.expected == NEITHER else "the paper's mode"
        if self.matches is None:
            verdict = ""
        elif self.matches:
            verdict = f" — {paper}"
        else:
            verdict = f" — not {paper} at this scale"
        return f"{figures}: {mode}{verdict}"


def mode_of(ratio: float) -> str:
    """The mode of a teacher entropy given as a fraction of log K."""
    if ratio < SHARP_BELOW:
        return SHARP
    if ratio > UNIFORM_ABOVE:
        return UNIFORM
    return NEITHER


def expected_mode(variant: str) -> str | None:
    """The mode DINO §5.3 / Fig. 7 reports for an ablation variant (None: no prediction)."""
    return EXPECTED.get(variant)


def teacher_points(trace: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The trace's points that log the teacher's entropy."""
    return [r for r in trace if is_finite_number(r.get(ENTROPY_KEY))]


def read_trace(
    trace: Sequence[Mapping[str, Any]],
    k: int,
    *,
    variant: str | None = None,
    window: int = WINDOW,
) -> ModeReading | None:
    """The reading of a trace whose head has ``k`` outputs; None when no point logs the
    teacher's entropy (not a DINO run, or one from before the monitor)."""
    if k < 2:
        raise ValueError(f"K = {k}: the teacher's softmax needs at least 2 outputs")
    points = teacher_points(trace)
    if not points:
        return None
    size = max(1, window)
    rows, before = points[-size:], points[-2 * size : -size]
    kls = [float(r[KL_KEY]) for r in rows if is_finite_number(r.get(KL_KEY))]
    kls_before = [float(r[KL_KEY]) for r in before if is_finite_number(r.get(KL_KEY))]
    first = next((float(r[KL_KEY]) for r in trace if is_finite_number(r.get(KL_KEY))), None)
    return ModeReading(
        entropy=sum(float(r[ENTROPY_KEY]) for r in rows) / len(rows),
        log_k=math.log(k),
        kl=sum(kls) / len(kls) if len(kls) == len(rows) else None,
        kl_first=first,
        steps=tuple(int(r.get("step", 0)) for r in rows),
        expected=expected_mode(variant) if variant is not None else None,
        kl_before=sum(kls_before) / len(kls_before) if kls_before else None,
    )


def out_dim(record: Mapping[str, Any]) -> int | None:
    """K: the record's DINO head output dimension (``config["method"]["out_dim"]``)."""
    method = (record.get("config") or {}).get("method") or {}
    k = method.get("out_dim") if isinstance(method, Mapping) else None
    return int(k) if is_finite_number(k) and k >= 2 else None


def read_record(record: Mapping[str, Any], *, window: int = WINDOW) -> ModeReading | None:
    """The reading of an ablation record (its curve, K from its config, its variant); None
    without ``teacher_entropy`` in the curve or without K in the config."""
    k = out_dim(record)
    if k is None:
        return None
    curve = record.get("curve")
    variant = record.get("variant")
    return read_trace(
        curve if isinstance(curve, list) else [],
        k,
        variant=str(variant) if variant else None,
        window=window,
    )
