"""Build the leaderboards from the result records: ``python leaderboards/build.py``.

Reads every ``*.json`` under ``--results`` (recursively; other files are ignored), validates
each record, and writes ``README.md`` (index, how to read, records not rendered) and one page
per board into ``--out``, with their PNG plots. The same records give byte-identical pages
and plots. A record that cannot be rendered is listed with its reason in README.md and on
stderr; ``--strict`` then exits 1. A missing results folder or a mistake in reported.toml is
one ``error:`` line (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import make_parser, run_cli
from common.errors import UserError
from leaderboards.ablation_board import render_ablation
from leaderboards.boards import TRANSFER_BOARDS, render_board
from leaderboards.explanations_board import render_explanations
from leaderboards.markdown import Paths
from leaderboards.methods import render_methods
from leaderboards.readme import PageInfo, render_readme
from leaderboards.record_set import Flagged, read_records
from leaderboards.reported import REPORTED_TOML, load_reported, rows_for
from leaderboards.selection import render_selection
from leaderboards.sweeps import render_sweeps

HERE = Path(__file__).resolve().parent
PLOTS = ("batch_size_sweep.png", "collapse_curves.png", "ap_by_method.png")


class BuildError(UserError, FileNotFoundError):
    """A build that cannot start: no results folder, or a malformed reported.toml."""


@dataclass(frozen=True)
class BuildResult:
    """What a build wrote and what it could not render."""

    pages: list[Path]
    plots: list[Path]
    flagged: list[Flagged]


def build(results: Path, out: Path, reported_toml: Path = REPORTED_TOML) -> BuildResult:
    """Render every board from the records under ``results`` into ``out``."""
    if not results.is_dir():
        raise BuildError(
            f"results folder {results} does not exist: pass --results <folder of result records>"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:  # a plot whose data is gone must not linger
        (out / name).unlink(missing_ok=True)
    records, flagged = read_records(results)
    try:
        papers, reported = load_reported(reported_toml)
    except ValueError as e:  # a mistake in reported.toml (the message names the row and key)
        raise BuildError(str(e)) from None
    paths = Paths(results=results.resolve(), out=out.resolve())

    pages: dict[str, str] = {}
    infos: list[PageInfo] = []
    plots: list[str] = []
    text, n_methods, written = render_methods(records, reported, papers, paths)
    pages["methods.md"], plots = text, plots + written
    text, n_sweep, written = render_sweeps(records, reported, papers, paths)
    pages["batch_size_sweep.md"], plots = text, plots + written
    text, n_ablation, written = render_ablation(records, reported, papers, paths)
    pages["collapse_ablation.md"], plots = text, plots + written
    text, n_experiments, written = render_explanations(records, paths)
    pages["explanations.md"], plots = text, plots + written
    for board in TRANSFER_BOARDS:
        text, n = render_board(board, records, reported, papers, paths, set(plots))
        pages[board.page] = text
        infos.append(PageInfo(board.page, board.title, n, len(rows_for(reported, board.name))))
    infos += [
        PageInfo(
            "methods.md", "Methods side by side", n_methods, len(rows_for(reported, "methods"))
        ),
        PageInfo(
            "batch_size_sweep.md",
            "Batch-size sweep (and other sweeps)",
            n_sweep,
            len(rows_for(reported, "batch_size_sweep")),
        ),
        PageInfo(
            "explanations.md",
            "Why Siamese methods do not collapse: the explanations and the experiments that "
            "tell them apart",
            n_experiments,
            0,
        ),
        PageInfo(
            "collapse_ablation.md",
            "Collapse ablations (the same records and verdicts, per variant and length)",
            n_ablation,
            len(rows_for(reported, "collapse_ablation")),
        ),
    ]
    text, info = render_selection(records, paths)
    pages[info.page], infos = text, [*infos, info]
    pages["README.md"] = render_readme(infos, flagged, paths)
    written_pages = []
    for name in sorted(pages):
        path = out / name
        path.write_text(pages[name], encoding="utf-8", newline="\n")
        written_pages.append(path)
    return BuildResult(written_pages, [out / p for p in sorted(set(plots))], flagged)


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument(
        "--results",
        type=Path,
        default=HERE / "results",
        help="result records folder, read recursively (default leaderboards/results)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="where the pages and plots go (default leaderboards/)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 if any record is not rendered")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = build(args.results, args.out)
    for f in result.flagged:
        print(f"not rendered: {f.path}: {f.reason}", file=sys.stderr)
    print(
        f"wrote {len(result.pages)} pages and {len(result.plots)} plots to {args.out} "
        f"({len(result.flagged)} record(s) not rendered)"
    )
    return 1 if args.strict and result.flagged else 0


def cli() -> int:
    """The command: ``main`` with the project's error path (console script siamhub-boards)."""
    return run_cli(main, "re-run the same command to build the pages again")


if __name__ == "__main__":
    sys.exit(cli())
