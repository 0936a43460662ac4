"""The healthy reference each ablation run's RankMe is compared with, and the judged records.

Dimensional collapse (``records.verdict``; Jing et al., ICLR 2022) is an effective rank far
below what the same configuration reaches when it works, not below a fixed number: a narrow
head on Fashion-MNIST reaches RankMe ≈ 28 (SimSiam, 1,500 steps), a long ImageNet run hundreds
(Garrido et al., ICML 2023, Fig. 1). The reference of a run is therefore the mean window RankMe
(``records.verdict.window_rankme``) of its method's reference variant (``REFERENCE_VARIANT``:
the recipe as the papers run it) over the records of the same method and the same length,
every seed. A reference run that is itself completely collapsed (or borderline on it) is left
out: it is not healthy.

**Like with like.** The run's RankMe and its reference's are read from the same key, over the
same window (the last fifth of the same number of steps): the eval bank's ``rankme_eval``
where the run has it on every window point and every (healthy) reference run has it on every
point of its window; otherwise the train batch's ``rankme`` on both sides. Train-mode BN
re-normalizes every batch, so the two modes read different numbers for the same z
(``records.verdict``, "Window"); a ratio across modes would measure the mode, not the run.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from records import verdict as V
from records.errors import RecordError

# The variant whose runs are a method's healthy reference (records/explanations.py's names):
# SimSiam §4 (the matrix's baseline), BYOL Table 5a's τ 0.99, MoCo v3 §3, DINO §3.
REFERENCE_VARIANT = {
    "simsiam": "simsiam",
    "byol": "byol_tau0.99",
    "mocov3": "mocov3",
    "dino": "dino",
}


def _ablation(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("task") == "ablation"]


def _is_reference(record: Mapping[str, Any], method: str, steps: int) -> bool:
    return (
        record.get("method") == method
        and record.get("variant") == REFERENCE_VARIANT.get(method)
        and record.get("steps") == steps
    )


def reference_rankme(
    records: Iterable[Mapping[str, Any]],
    method: str,
    steps: int,
    *,
    key: str | None = None,
    fraction: float = V.WINDOW_FRACTION,
    on: str = "z",
) -> float | None:
    """The mean window RankMe, read from ``key`` (``records.verdict.rank_keys``; default the
    train batch's, which every monitor point has), of ``method``'s reference runs of ``steps``
    steps that are not completely collapsed (nor borderline on it); None when there are none,
    or when one of them lacks ``key`` on a point of its window (a mean over the runs that have
    it would be another reference)."""
    key = key or V.rank_keys(on)[1]
    values = []
    for rec in _ablation(records):
        if not _is_reference(rec, method, steps):
            continue
        try:
            v = V.judge_record(rec, fraction=fraction, on=on)
            rank = V.window_rankme(V.record_trace(rec), fraction=fraction, on=on, key=key)
        except RecordError:  # no monitor points of `on` (p before it was monitored)
            continue
        if v.outcome == V.COMPLETE or V.COMPLETE in v.between:
            continue
        if rank is None:
            return None
        values.append(rank)
    return statistics.fmean(values) if values else None


def run_rank_key(record: Mapping[str, Any], *, fraction: float = V.WINDOW_FRACTION,
                 on: str = "z") -> str | None:  # fmt: skip
    """The RankMe key every point of the record's window has, eval-mode preferred."""
    rows, _ = V.window_rows(V.record_trace(record), fraction=fraction, on=on)
    return V.rank_key(rows, on)


def judged(
    records: Iterable[Mapping[str, Any]], *, fraction: float = V.WINDOW_FRACTION, on: str = "z"
) -> dict[str, V.Verdict]:
    """Every ablation record's verdict with its configuration's reference, by ``run_id``: the
    run's ``rankme_eval`` against the reference's where the run has it over its window and
    the reference does too, else the train-mode ``rankme`` of both."""
    recs = _ablation(records)
    eval_key, train_key = V.rank_keys(on)
    refs: dict[tuple[str, int, str], float | None] = {}

    def ref(method: str, steps: int, key: str) -> float | None:
        if (method, steps, key) not in refs:
            refs[method, steps, key] = reference_rankme(
                recs, method, steps, key=key, fraction=fraction, on=on
            )
        return refs[method, steps, key]

    out = {}
    for rec in recs:
        method, steps = str(rec.get("method")), rec.get("steps")
        reference, key = None, train_key
        if isinstance(steps, int):  # without a length there is no configuration to compare
            if run_rank_key(rec, fraction=fraction, on=on) == eval_key:
                reference = ref(method, steps, eval_key)
            if reference is not None:
                key = eval_key
            else:
                reference = ref(method, steps, train_key)
        out[str(rec.get("run_id"))] = V.judge_record(
            rec, reference_rankme=reference, fraction=fraction, on=on, rankme_key=key
        )
    return out
