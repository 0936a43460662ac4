"""``leaderboards/README.md``: the index of the boards, how to read them, what was not rendered."""

from __future__ import annotations

from dataclasses import dataclass

from leaderboards.markdown import Paths, marker
from leaderboards.record_set import KNOWN_TASKS, Flagged


@dataclass(frozen=True)
class PageInfo:
    """One board in the index: its page, title, measured and reported row counts."""

    page: str
    title: str
    measured: int
    reported: int


HOW_TO_READ = """\
## How to read the tables

- **Measured** rows come from the result records in `{results}/` (one JSON file per run,
  written by `transfer/run.py`, `experiments/sweep.py` and `experiments/ablate.py`). The
  seeds of one configuration form one row: the cell is `mean ± std` (sample standard
  deviation over the seeds) and `n seeds` says how many; with one seed the cell is the value
  and n is 1. A seed measured twice counts once (the later run; the older one is linked as
  superseded).
- A configuration is: the task, trained or random init, the pretraining without its seed
  (method, recipe, backbone and width, epochs, batch size, data, sweep point) and the
  protocol. Rows with different protocols are never merged.
- The **protocol** column says how the number was measured in a few words (e.g. `kNN k=20/200
  T=0.07, bank fashion_mnist train (60000 images)`, `fast linear: lr grid 8x2 (lr x BN), 10 ep,
  best on a val split`) followed by a protocol id: 8 hex digits of the SHA-1 of the record's
  full `protocol`, so two rows with the same id were measured the same way. The full protocol
  is in the linked record.
- **evaluated on** names the split the number was measured on, as the record's protocol
  states it (`records/splits.py`): `fashion_mnist test (10000 images)`, `coco val2017`. A
  training split (one the run fine-tuned on, or one named as such: COCO `train2017`, VOC
  `trainval`) is in bold with "a training split": not a held-out number. `not stated`: a
  record whose protocol does not say.
- On the transfer, methods and sweep boards a measured row is one line: its `runs` cell
  (`n runs`) links the row's detail page in `rows/`, which lists every record behind it
  (linked) with its seed, protocol id, evaluation split, full git sha, hardware
  (`hardware.device`), finish time and wall time, the metrics of each seed, the predictions
  saved beside the record (its `artifacts`: file, size, sha256) and the superseded runs;
  `date` is the day the latest of them finished. The collapse-ablation board links its
  records, git sha and date from the row itself.
- The kNN board ends with a **raw pixels** row: kNN on the normalized, flattened pixels with
  the same bank, queries, k and T (`metrics.raw_pixels_top1_k20` of the kNN records), the
  baseline an encoder's features are compared with.
- Plots: error bars (std over seeds) only where a point has more than one seed; AP bars start
  at 0 on one axis shared by the detection tasks, ending at the next multiple of 10 above the
  highest bar; at most 8 lines or bars per panel (more are split into panels, or the 8
  highest are kept and the title says so), each line in its own colour; legends beside or
  under the panels, never on the data; no text overlaps other text
  (`tests/test_plot_rules.py` checks every plot); the collapse curves draw the collapse
  threshold.
- **reported** rows are the papers' numbers (`leaderboards/reported.toml`, each with its
  paper and table). They are in tables of their own, never averaged with measured rows, and
  mostly measure something else (ImageNet, ResNet-50, hundreds of epochs) than the embedded
  Fashion-MNIST runs: compare trends, not values.
- Numbers are percentages (top-1, AP) unless the header says otherwise; `–` means not
  measured.
"""


def render_readme(pages: list[PageInfo], flagged: list[Flagged], paths: Paths) -> str:
    """The index page."""
    parts = [marker(paths), "", "# Leaderboards", ""]
    parts += [
        "Generated from the result records by `python leaderboards/build.py` (deterministic: "
        "the same records give the same pages and plots). Boards:",
        "",
    ]
    for p in pages:
        parts.append(
            f"- [{p.title}]({p.page}): {p.measured} measured row{'s' * (p.measured != 1)}, "
            f"{p.reported} reported row{'s' * (p.reported != 1)}"
        )
    parts += ["", HOW_TO_READ.format(results=paths.results_rel)]
    parts += ["## Records not rendered", ""]
    if flagged:
        parts += [
            f"{len(flagged)} record file(s) under `{paths.results_rel}/` could not be rendered; "
            "fix or regenerate them (known tasks: " + ", ".join(KNOWN_TASKS) + "):",
            "",
        ]
        parts += [f"- `{f.path}`: {' '.join(f.reason.split())}" for f in flagged]
    else:
        parts.append("None: every record was rendered.")
    return "\n".join(parts) + "\n"
