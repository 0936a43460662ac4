"""The pretraining methods' display names, one table for every page, card and report.

Keys are the ``method`` of a record and of ``pretrain/methods`` (``config.method.name``), plus
the earlier MoCo versions whose released checkpoints the hub's zoo and importer know. A name
not listed is shown as it is.
"""

from __future__ import annotations

DISPLAY: dict[str, str] = {
    "simsiam": "SimSiam",
    "byol": "BYOL",
    "mocov3": "MoCo v3",
    "dino": "DINO",
    "mocov2": "MoCo v2",
    "mocov1": "MoCo v1",
}


def display_name(method: str) -> str:
    """``"mocov3"`` -> ``"MoCo v3"``; an unknown name unchanged."""
    return DISPLAY.get(method, method)
