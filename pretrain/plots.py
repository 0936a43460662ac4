"""The collapse-curve plot of a run, drawn from its ``metrics.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (
    ("loss", "loss", None),
    ("z_std_sqrt_d", "z-std × √d  (1 healthy, 0 collapsed)", 0.2),
    ("knn", "kNN top-1 (%) on the monitor split", None),
    ("m_o", "center share m_o  (→1: collapse)", None),
)


def plot_collapse_curves(metrics_path: Path, out_path: Path, title: str = "") -> Path:
    """Four panels against training steps: loss, z-std × √d, kNN on h and z, m_o.

    z-std × √d and m_o are drawn for the training batch (solid) and, where the kNN monitor
    logged them, for its bank embedded in eval mode (dashed).
    """
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        pts = [(s, v) for s, v in pts if isinstance(v, int | float) and math.isfinite(v)]
        return [s for s, _ in pts], [v for _, v in pts]

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, (key, label, threshold) in zip(axes, PANELS, strict=True):
        if key == "knn":
            for sub, name in (("knn_h", "backbone h"), ("knn_z", "projector z")):
                ax.plot(*series(sub), marker="o", ms=3, label=name)
            ax.legend()
        else:
            ax.plot(*series(key), label="training batch")
            if any(f"{key}_eval" in r for r in rows):  # logged by the kNN monitor
                ax.plot(*series(f"{key}_eval"), ls="--", marker="o", ms=3, label="kNN bank, eval")
                ax.legend()
        if threshold is not None:
            ax.axhline(threshold, color="red", ls="--", lw=1, label="collapse threshold")
            ax.legend()
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
