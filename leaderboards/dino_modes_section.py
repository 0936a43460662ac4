"""The explanations board's DINO failure-mode table and teacher plot (``records.dino_modes``).

Under the DINO explanation's table (DINO §5.3, Fig. 7): one row per variant and seed of its
longest run whose curve logs ``teacher_entropy``: the teacher's entropy against log K, KL(teacher
‖ student) first → last, the mode it reads as, the paper's mode and whether they match; and
``explanations_dino_teacher.png``: the teacher's entropy and the KL against step. Nothing is
added when no record logs ``teacher_entropy``.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from leaderboards.markdown import table
from leaderboards.plots import MAX_LINES
from records import dino_modes as D
from records.tasks import is_number

EXPLANATION = "dino"  # the explanation whose section gets the table
PLOT = "explanations_dino_teacher.png"


def _yes_no(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "no")


def dino_modes_parts(
    curves: dict[str, list[dict]], out: Path
) -> tuple[list[str], list[str], list[str]]:
    """The table's markdown lines, the plot's markdown lines, and the PNGs written (into
    ``out``); ``curves``: variant -> the records of its longest run (as the section's curves
    plot). All empty when no record logs ``teacher_entropy``."""
    headers = ["variant", "seed", "steps", "teacher entropy (nats)", "log K", "entropy / log K"]
    headers += ["KL first → last (nats)", "mode", "expected (paper)", "matches?"]
    rows, readings = [], {}
    for name in sorted(curves):
        for rec in sorted(curves[name], key=lambda r: r.get("seed", 0)):
            reading = D.read_record(rec)
            if reading is None:
                continue
            readings.setdefault(name, []).append(reading)
            kl = "–" if reading.kl is None else f"{reading.kl:.3f}"
            if reading.kl_first is not None:
                kl = f"{reading.kl_first:.3f} → {kl}"
            mode = reading.mode + (", KL → 0" if reading.kl_to_zero else "")
            expected = reading.expected or "–"
            if reading.expected is not None:
                expected += ", KL → 0" if reading.expected != D.NEITHER else ", KL above 0"
            rows.append(
                [f"`{name}`", str(rec.get("seed", "?")), str(reading.steps[-1])]
                + [f"{reading.entropy:.3f}", f"{reading.log_k:.2f}", f"{reading.ratio:.0%}"]
                + [kl, mode, expected, _yes_no(reading.matches)]
            )
    if not rows:
        return [], [], []
    parts = [
        "### DINO's failure modes",
        "",
        "DINO §5.3 / Fig. 7: sharpening alone lets one dimension dominate (the teacher's "
        "entropy → 0), centering alone makes the output uniform (entropy → log K), and in both "
        "modes KL(teacher ‖ student) → 0. Read from the mean of the last "
        f"{D.WINDOW} points that log the teacher's entropy (`records/dino_modes.py`): entropy "
        f"below {D.SHARP_BELOW:.0%} of log K is one dimension dominating, above "
        f"{D.UNIFORM_ABOVE:.0%} uniform; KL → 0 below {D.KL_TO_ZERO_BELOW:g} nats.",
        "",
        *[f"- {line}" for line in summary_lines(readings)],
        "",
        table(headers, rows),
        "",
    ]
    log_ks = {r.log_k for rs in readings.values() for r in rs}
    teacher_plot(curves, out / PLOT, log_ks)
    return parts, [f"![DINO's teacher entropy and KL against step]({PLOT})", ""], [PLOT]


def summary_lines(readings: dict[str, list[D.ModeReading]]) -> list[str]:
    """One line per variant the paper predicts a collapse mode for: on how many seeds the
    mode and KL → 0 were seen, with the figures (the reason when they were not)."""
    lines = []
    for name, rs in readings.items():
        expected = rs[0].expected
        if expected is None or expected == D.NEITHER:
            continue
        n = len(rs)
        in_mode = sum(r.mode == expected for r in rs)
        kls = [r.kl for r in rs if r.kl is not None]
        kl_zero = sum(r.kl_to_zero for r in rs)
        ratios = ", ".join(f"{r.ratio:.0%}" for r in rs)
        line = (
            f"`{name}` ({rs[0].steps[-1]} steps): {expected} on {in_mode} of {n} seeds "
            f"(entropy / log K {ratios}); KL → 0 on {kl_zero} of {n}"
        )
        if kls:
            firsts = [r.kl_first for r in rs if r.kl_first is not None]
            line += f" (last {min(kls):.2f}–{max(kls):.2f} nats"
            line += f", from {min(firsts):.2f}–{max(firsts):.2f})" if firsts else ")"
        if kl_zero < n:
            falling = sum(bool(r.kl_falling) for r in rs if not r.kl_to_zero)
            line += (
                f"; where it is not, it was still falling on {falling} of {n - kl_zero} seeds "
                f"(more than {D.STILL_FALLING:.0%} below the {D.WINDOW} points before)"
            )
        lines.append(line)
    return lines


def _seed_order(seed: object) -> tuple:
    """Integer seeds in numeric order, anything else after them by its text."""
    return (0, seed, "") if isinstance(seed, int) else (1, 0, str(seed))


def teacher_plot(curves: dict[str, list[dict]], path: Path, log_ks: set[float]) -> Path:
    """The teacher's entropy (dashed: 0 and log K) and KL(teacher ‖ student) (dashed: the
    KL → 0 line) against step (DINO §5.3, Fig. 7): one row of two panels per variant (name
    order), one line per seed (at most ``MAX_LINES``: the lowest seeds, the title says so), one
    colour per seed across the panels, the legend right of the panels; the entropy panels
    share one axis and the KL panels another, so the modes compare across rows; records
    without the teacher's entropy are skipped; ``log_ks``: the heads' log K (nats) to mark.
    Fixed size and dpi, no metadata: the same records give the same bytes."""
    rows: dict[str, list[tuple[object, list[dict]]]] = {}  # variant -> (seed, points)
    for name, records in sorted(curves.items()):
        for rec in sorted(records, key=lambda r: _seed_order(r.get("seed"))):
            points = D.teacher_points(rec.get("curve") or [])
            if points:
                rows.setdefault(name, []).append((rec.get("seed", "?"), points))
    seeds = sorted({s for runs in rows.values() for s, _ in runs[:MAX_LINES]}, key=_seed_order)
    colors = colormaps["tab10"]
    color = {seed: colors(i % 10) for i, seed in enumerate(seeds)}
    fig = Figure(figsize=(10, 0.7 + 2.3 * max(len(rows), 1)), layout="constrained")
    axes = fig.subplots(max(len(rows), 1), 2, squeeze=False, sharex="col", sharey="col")
    for (ax_h, ax_kl), (name, runs) in zip(axes, rows.items(), strict=False):
        for seed, points in runs[:MAX_LINES]:
            ax_h.plot([p.get("step", 0) for p in points], [p[D.ENTROPY_KEY] for p in points],
                      color=color[seed], lw=1, label=f"seed {seed}")  # fmt: skip
            kl = [p for p in points if is_number(p.get(D.KL_KEY))]
            ax_kl.plot([p.get("step", 0) for p in kl], [p[D.KL_KEY] for p in kl],
                       color=color[seed], lw=1)  # fmt: skip
        for y in (0.0, *sorted(log_ks)):
            ax_h.axhline(y, color="gray", ls="--", lw=0.8)
        ax_kl.axhline(D.KL_TO_ZERO_BELOW, color="gray", ls="--", lw=0.8)
        cut = f", seeds {len(runs[:MAX_LINES])} of {len(runs)}" if len(runs) > MAX_LINES else ""
        ax_h.set_title(f"{name}: teacher entropy (nats{cut})", fontsize=9)
        ax_kl.set_title(f"{name}: KL(teacher ‖ student) (nats{cut})", fontsize=9)
        for ax in (ax_h, ax_kl):
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    handles = [Line2D([], [], color=color[s], lw=1, label=f"seed {s}") for s in seeds]
    if handles:
        fig.legend(handles=handles, fontsize=7, loc="outside right center")
    fig.suptitle(
        "DINO's failure modes (DINO §5.3, Fig. 7); dashed: entropy 0 and log K, KL → 0 line",
        fontsize=10,
    )
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, format="png", metadata={"Software": None})
    return path
