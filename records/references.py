"""The healthy reference each ablation run's RankMe is compared with, and the judged records.

Dimensional collapse (``records.verdict``; Jing et al., ICLR 2022) is an effective rank far
below what the same configuration reaches when it works, not below a fixed number: a narrow
head on Fashion-MNIST reaches RankMe ≈ 28 (SimSiam, 1,500 steps), a long ImageNet run hundreds
(Garrido et al., ICML 2023, Fig. 1). The reference of a run is therefore the mean window RankMe
(``records.verdict.window_rankme``) of its method's reference variant (``REFERENCE_VARIANT``:
the recipe as the papers run it) over the records of the same method and the same length,
every seed. A reference run that is itself completely collapsed (or borderline on it) is left
out: it is not healthy.
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
    fraction: float = V.WINDOW_FRACTION,
    on: str = "z",
) -> float | None:
    """The mean window RankMe of ``method``'s reference runs of ``steps`` steps that are not
    completely collapsed (nor borderline on it); None when there are none."""
    values = []
    for rec in _ablation(records):
        if not _is_reference(rec, method, steps):
            continue
        try:
            v = V.judge_record(rec, fraction=fraction, on=on)
            rank = V.window_rankme(V.record_trace(rec), fraction=fraction, on=on)
        except RecordError:  # no monitor points of `on` (p before it was monitored)
            continue
        if v.outcome == V.COMPLETE or V.COMPLETE in v.between or rank is None:
            continue
        values.append(rank)
    return statistics.fmean(values) if values else None


def judged(
    records: Iterable[Mapping[str, Any]], *, fraction: float = V.WINDOW_FRACTION, on: str = "z"
) -> dict[str, V.Verdict]:
    """Every ablation record's verdict with its configuration's reference, by ``run_id``."""
    recs = _ablation(records)
    refs: dict[tuple[str, int], float | None] = {}
    out = {}
    for rec in recs:
        config = (str(rec.get("method")), int(rec.get("steps", 0)))
        if config not in refs:
            refs[config] = reference_rankme(recs, *config, fraction=fraction, on=on)
        out[str(rec["run_id"])] = V.judge_record(
            rec, reference_rankme=refs[config], fraction=fraction, on=on
        )
    return out
