"""The raw-pixels row of the kNN board: kNN on the normalized, flattened pixels.

The kNN task (``transfer/tasks/knn.py``) measures this baseline beside the encoder's features
with the same bank, queries, k and T and records it as ``metrics.raw_pixels_top1_k<k>``. It
does not depend on the model, so every kNN record of the same data and vote carries the same
number: the rows here group the records by that part of the protocol (dataset, bank, queries,
similarity, ks, T) and show the mean over them (± std when they differ) and how many carry it.
"""

from __future__ import annotations

import statistics
from typing import Any

from leaderboards.aggregate import Stat
from leaderboards.markdown import table
from leaderboards.protocols import protocol_id, protocol_label
from leaderboards.record_set import Record, is_number
from leaderboards.rows import RowPages, latest_date

PREFIX = "raw_pixels_top1_k"
DATA_KEYS = ("dataset", "data_root", "bank", "queries", "similarity", "vote", "ks", "t")


def raw_protocol(data: dict[str, Any]) -> dict[str, Any]:
    """The part of a kNN protocol that the raw-pixels number depends on."""
    proto = data.get("protocol") or {}
    return {k: proto[k] for k in DATA_KEYS if k in proto}


def raw_values(record: Record) -> dict[str, float]:
    """``{"20": value, ...}``: the raw-pixels top-1 per k of a record (its first seed that has
    them: the baseline does not depend on the seed)."""
    for _, metrics in record.samples:
        found = {
            k.removeprefix(PREFIX): float(v)
            for k, v in metrics.items()
            if k.startswith(PREFIX) and is_number(v)
        }
        if found:
            return found
    return {}


def _stat(values: list[float]) -> Stat:
    """Mean over the records; a spread only when they disagree (they should not)."""
    std = statistics.stdev(values) if len(set(values)) > 1 else None
    return Stat(statistics.fmean(values), std, len(values))


def raw_pixels_section(records: list[Record], details: RowPages) -> list[str]:
    """The lines of the kNN board's raw-pixels section."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        if r.task == "knn" and raw_values(r):
            groups.setdefault(protocol_id(raw_protocol(r.data)), []).append(r)
    parts = ["### Raw pixels (no network)", ""]
    if not groups:
        return parts + [
            "No kNN record carries the raw-pixels baseline yet (`metrics.raw_pixels_top1_k20`: "
            "kNN on the normalized, flattened pixels with the same bank, queries, k and T, "
            "which `transfer/run.py --task knn` measures for data held as image tensors such "
            "as fashion_mnist). The main job's report (`summary.json`, "
            "`knn_top1.raw_pixels`) measures it too, but a run directory is not a record.",
            "",
        ]
    ks = sorted({k for rs in groups.values() for r in rs for k in raw_values(r)}, key=int)
    headers = ["features", "protocol", *(f"kNN top-1 k={k}" for k in ks), "n records"]
    rows = []
    for pid in sorted(groups):
        recs = sorted(groups[pid], key=lambda r: r.path)
        label = protocol_label("knn", recs[0].data.get("protocol") or {})
        cells = ["raw pixels (normalized, flattened)", f"{label} `{pid}`"]
        for k in ks:
            values = [raw_values(r)[k] for r in recs if k in raw_values(r)]
            cells.append(_stat(values).fmt() if values else "–")
        cells.append(str(len(recs)))
        title = f"raw pixels, {label}, {pid}"
        named = list(zip(headers, cells, strict=True))
        link = details.link(f"raw_pixels {pid}", title, named, recs, slug="raw pixels")
        rows.append([*cells, link, latest_date(recs)])
    return parts + [
        "kNN on the normalized, flattened pixels with the bank, queries, k and T of the rows "
        "above: the number any encoder's features are compared with. It does not depend on "
        "the model, so every kNN record of the same data carries it; `n records` counts them.",
        "",
        table([*headers, "runs", "date"], rows),
        "",
    ]
