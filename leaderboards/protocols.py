"""How a number was measured, in a few words, and a short stable id of the full protocol.

The label is what a table column shows ("kNN k=20/200 T=0.07, bank fashion_mnist train
(60000 images)"); the id (8 hex digits of the SHA-1 of the canonical JSON of the record's
``protocol``) tells apart two protocols whose labels look alike. The full protocol is in
the linked records.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def protocol_id(protocol: dict[str, Any]) -> str:
    """8 hex digits that change whenever anything in the protocol changes."""
    canonical = json.dumps(protocol, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:8]


def _split(text: Any) -> str:
    """A split description without the machine-specific path: "x train (60000 images)"."""
    return str(text).split(" from ")[0] if text else "?"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _knn(p: dict) -> str:
    ks = "/".join(_num(k) for k in p.get("ks", [])) or "?"
    return f"kNN k={ks} T={_num(p.get('t', '?'))}, bank {_split(p.get('bank'))}"


def _linear(p: dict) -> str:
    grid = p.get("grid", {})
    lrs, bns = grid.get("lrs", []), grid.get("bn", [])
    kind = p.get("protocol", "")
    parts = [f"{kind + ' ' if kind else ''}linear: lr grid {len(lrs)}x{len(bns) or 1} (lr x BN)"]
    if "epochs" in grid:
        parts.append(f"{_num(grid['epochs'])} ep")
    parts.append("best on a val split" if "held-out" in p.get("selection", "") else "")
    return ", ".join(x for x in parts if x)


def _lowshot(p: dict) -> str:
    subsets = p.get("subsets", {})
    sizes = "/".join(f"{name} ({_num(s.get('size', '?'))} img)" for name, s in subsets.items())
    return f"linear on {sizes or '?'} labels, lr grid, best on a held-out 10%"


def _detection(p: dict) -> str:
    sched = p.get("schedule", {})
    arch = p.get("architecture", "?")
    engine = p.get("engine", "?")
    iters = _num(sched.get("iters", "?"))
    size = f"{_num(p.get('train_images', '?'))} train / {_num(p.get('test_images', '?'))} test"
    return f"{arch} ({engine}), {sched.get('name', '?')} schedule {iters} it, {size} images"


def _pretrain(p: dict) -> str:
    parts = [f"{p.get('recipe', '?')}"]
    if "lr_scaling" in p:
        parts.append(f"lr {p['lr_scaling']} scaling")
    if "steps" in p:
        parts.append(f"{_num(p['steps'])} steps")
    return ", ".join(parts)


LABELS = {
    "knn": _knn,
    "linear": _linear,
    "lowshot": _lowshot,
    "fmnist_det": _detection,
    "voc_det": _detection,
    "coco_det": _detection,
    "pretrain": _pretrain,
}


def protocol_label(task: str, protocol: dict[str, Any]) -> str:
    """The protocol in words for ``task`` (never raises: unknown fields show as "?")."""
    try:
        return LABELS[task](protocol)
    except (AttributeError, TypeError, KeyError):
        return f"{task} (protocol fields not recognized: see the record)"
