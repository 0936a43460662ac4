"""The collapse-ablation benchmark:
``python experiments/ablate.py [--matrix collapse|explanations] [--variants a,b] [--seeds 0,1,2]``.

Runs a named matrix of ablation variants of SimSiam, BYOL, MoCo v3 and DINO on the
embedded Fashion-MNIST default, several seeds each, and writes one JSON result record per run
under ``--out`` (default ``leaderboards/results/ablation/``), each with its collapse curve
(z-std × √d, rank, m_o, loss, and kNN every 100 steps), then prints a table and draws
``ablation.png`` (final z-std × √d against kNN on z, one point per run) under ``--work``
(default ``runs/ablation/``, beside the run directories). ``leaderboards/build.py`` renders the
records as the collapse-ablation board.

Every run is short so the whole matrix fits a CPU: the Fashion-MNIST recipe of its method with
a narrow backbone (ResNet-18 at width 16), small heads, batch 128 and ``--steps`` steps
(default 300) whose schedules span exactly those steps. kNN top-1 (k 20, T 0.07, cosine) is
measured on a fixed bank of 5,000 training images and 1,000 test queries, on the backbone
features h and on the projector output z, at step 0 (the random-init baseline: the very
weights the run starts from), every 100 steps, and at the end.

The variants live in one list, ``records/explanations.py`` (``experiments/ablation_matrix.py``
derives the matrices from it): ``--matrix collapse`` (default) runs the collapse-ablation
matrix whose records are committed (SimSiam Table 1 / §4.1, Zhang et al. ICLR 2022, BYOL
Table 5a, MoCo v3 §3); ``--matrix explanations`` every runnable variant of the explanations
board (the predictor's relative lr and freeze, Su 2020 / Tian et al. ICML 2021; DINO §5.2-5.3).
Each variant carries the claim it tests, its source and the ``records.verdict`` outcomes that
agree with it; the record holds the run's verdict (outcome, the statistics that agree,
borderline or not) and says whether the claim reproduced at this scale (the outcome is an
expected one), and why not.

The matrix resumes: a run whose record is already in ``--out`` (same variant, seed and steps)
is skipped, and said so; ``--rerun`` runs it again. A run that is not skipped starts afresh.
After the runs, every record in ``--out`` is re-judged with the references of the whole set
(``experiments/rejudge.py``: a new reference run changes the verdicts of its configuration),
and the changed outcomes are printed. Errors are one ``error:`` line (exit 2); Ctrl-C stops at
once (exit 130) and says which run was going; the records of the runs that finished are kept,
and the same command runs the rest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm.auto import tqdm

from common.cli import clear_position, make_parser, note_position, run_cli
from common.errors import UserError
from common.overrides import parse_int_list, split_list
from common.progress import progress
from experiments.ablation_matrix import BY_NAME, DEFAULT_MATRIX, MATRICES, Variant
from experiments.ablation_run import (
    DEFAULT_OUT,
    DEFAULT_STEPS,
    DEFAULT_WORK,
    format_table,
    plot,
    run_name,
    run_variant,
    summarize,
)
from experiments.rejudge import format_changes, rejudge


class AblationError(UserError, ValueError):
    """An ablation run asked for that the matrix does not have (names the valid ones)."""


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__, epilog=matrix_text())
    p.add_argument(
        "--variants", default="all", help="comma-separated variant names (below), or 'all'"
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"training steps per run (default {DEFAULT_STEPS}; other lengths name their "
        "records <method>-<variant>-seed<S>-<N>steps)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"result records folder (default {DEFAULT_OUT})",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=DEFAULT_WORK,
        help=f"run directories, table and plot (default {DEFAULT_WORK})",
    )
    p.add_argument("--data", help="Fashion-MNIST folder (default: the recipes' data.root)")
    p.add_argument(
        "--matrix",
        choices=sorted(MATRICES),
        default=DEFAULT_MATRIX,
        help=f"which variants 'all' means and --list prints (default {DEFAULT_MATRIX})",
    )
    p.add_argument(
        "--rerun",
        action="store_true",
        help="run again the runs whose record is already in --out (default: skip them)",
    )
    p.add_argument("--list", action="store_true", help="print the matrix and exit")
    return p


def matrix_lines(matrix: str = DEFAULT_MATRIX) -> list[str]:
    """The matrix's variants, one line each: name, method, expected outcomes, source,
    overrides."""
    return [
        f"{v.name:<24} {v.method:<8} {' or '.join(v.expect):<32} {v.source}: "
        f"{' '.join(v.overrides)}"
        for v in MATRICES[matrix]
    ]


def matrix_text() -> str:
    return "\n".join(
        f"variants (--matrix {name}):\n" + "\n".join(f"  {line}" for line in matrix_lines(name))
        for name in MATRICES
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def parse_seeds(text: str) -> list[int]:
    return parse_int_list(text, "--seeds")


def existing_record(variant: Variant, seed: int, steps: int, out: Path) -> dict | None:
    """The record of (variant, seed, steps) already in ``out``, if one is there and says so."""
    path = out / f"{run_name(variant, seed, steps)}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    same = (data.get("method"), data.get("variant"), data.get("seed"), data.get("steps"))
    return data if same == (variant.method, variant.name, seed, steps) else None


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.list:
        print("\n".join(matrix_lines(args.matrix)))
        return []
    chosen = MATRICES[args.matrix]
    names = [v.name for v in chosen] if args.variants == "all" else split_list(args.variants)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise AblationError(f"unknown variant(s) {unknown}; available: {', '.join(BY_NAME)}")
    seeds = parse_seeds(args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(BY_NAME[n], s) for n in names for s in seeds]
    records, todo = [], []  # the records already there (the matrix resumes), the runs to do
    for variant, seed in jobs:
        rec = None if args.rerun else existing_record(variant, seed, args.steps, args.out)
        if rec is None:
            todo.append((variant, seed))
            continue
        records.append(rec)
        print(f"{variant.name} seed {seed}: its record is in {args.out}, skipped (--rerun runs it)")
    jobs = todo
    bar = progress(jobs, desc="ablation", unit="run", position=0)
    for i, (variant, seed) in enumerate(bar, start=1):
        bar.set_postfix_str(f"{variant.name} seed {seed}")
        where = f"run {i}/{len(jobs)} ({variant.name} seed {seed})"
        note_position(where)
        try:
            rec = run_variant(variant, seed, args.steps, args.out, args.data, args.work)
        except KeyboardInterrupt:
            note_position(f"{where}; {i - 1} finished, their records in {args.out}")
            raise
        records.append(rec)
        verdict = "reproduced" if rec["reproduced"] else "NOT reproduced"
        tqdm.write(
            f"{variant.name} seed {seed}: z·√d {rec['z_std_sqrt_d']:.3f}, kNN z "
            f"{rec['knn_z']:.1f}%, kNN h {rec['knn_h']:.1f}% (init {rec['init_knn_h']:.1f}%), "
            f"{rec['wall_seconds']:.0f} s -> {rec.get('verdict', {}).get('outcome', '?')}; claim "
            f"'{' or '.join(variant.expect)}' {verdict}"
        )
    clear_position()
    print(format_changes(rejudge(args.out)))  # every record with the whole set's references
    ids = {r["run_id"] for r in records}
    records = [
        r
        for r in (json.loads(p.read_text()) for p in sorted(args.out.glob("*.json")))
        if r.get("run_id") in ids
    ]
    table = format_table(summarize(records))
    print(table)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "table.txt").write_text(table + "\n")
    png = plot(records, args.work / "ablation.png")
    print(f"records: {args.out}/*.json  table: {args.work}/table.txt  plot: {png}")
    print("leaderboard page: python leaderboards/build.py -> leaderboards/collapse_ablation.md")
    return records


def cli() -> None:
    """The command (``python experiments/ablate.py``, console script ``siamhub-ablate``)."""
    run_cli(main, "re-run the same command: the runs with a record in --out are skipped")


if __name__ == "__main__":
    cli()
