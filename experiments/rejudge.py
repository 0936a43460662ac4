"""Re-judge the collapse-ablation records: ``python experiments/rejudge.py [--out DIR]``.

Every ablation record under ``--out`` (default ``leaderboards/results/ablation/``) gets its
``verdict`` rewritten from its own curve by ``records.verdict`` with the healthy reference of
its method and length taken from the whole set (``records.references.judged``), and with it
``expect_outcomes`` (the variant's current expected outcomes, ``records/explanations.py``),
``reproduced`` and ``not_reproduced_because``; the single-point ``collapsed`` flag of older
records is dropped. Nothing else in a record changes (the curve, the numbers, the date of the
run). Prints one line per record whose outcome changed (old → new, with the RankMe ratio to
the reference) and a count of the rest. Run it after new records land in the folder: a new
reference run changes its configuration's reference, so every verdict of that configuration.

Errors are one ``error:`` line (exit 2).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from common.cli import make_parser, run_cli
from common.errors import UserError
from experiments.ablation_matrix import BY_NAME
from experiments.ablation_run import DEFAULT_OUT, judge_verdict
from records.references import judged
from records.verdict import COMPLETE, Verdict
from records.write import write_record_at

OLD_COLLAPSED = "collapsed"  # the verdict's outcome before dimensional collapse was judged


class RejudgeError(UserError, ValueError):
    """A folder that cannot be re-judged (missing, or a record that is not JSON)."""


@dataclass(frozen=True)
class Change:
    """One record's outcome before and after."""

    run_id: str
    old: str  # the stored verdict's outcome, or "flag: collapsed" / "flag: not collapsed"
    new: str
    ratio: tuple[float, ...]  # RankMe / reference over the window

    @property
    def changed(self) -> bool:
        """A different outcome (the old "collapsed" outcome is the new complete collapse)."""
        return self.old != self.new and (self.old, self.new) != (OLD_COLLAPSED, COMPLETE)


def old_outcome(record: dict) -> str:
    """What the record said before: its verdict's outcome, else its single-point flag."""
    outcome = (record.get("verdict") or {}).get("outcome")
    if isinstance(outcome, str):
        return outcome
    if isinstance(record.get("collapsed"), bool):
        return "flag: collapsed" if record["collapsed"] else "flag: not collapsed"
    return "?"


def rejudged(record: dict, verdict: Verdict) -> dict:
    """``record`` with its verdict, expectations and reproduction rewritten, no flag."""
    out = {k: v for k, v in record.items() if k != "collapsed"}
    variant = BY_NAME.get(str(record.get("variant")))
    expect = variant.expect if variant else tuple(record.get("expect_outcomes") or ())
    out["expect_outcomes"] = list(expect)
    out["verdict"] = verdict.as_record()
    out["reproduced"], out["not_reproduced_because"] = judge_verdict(expect, out["verdict"])
    return out


def rejudge(out: Path) -> list[Change]:
    """Rewrite every ablation record in ``out``; return each one's outcome change."""
    if not out.is_dir():
        raise RejudgeError(f"no folder {out}")
    records: dict[Path, dict] = {}
    for path in sorted(out.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RejudgeError(f"{path} is not JSON ({e}); nothing rewritten") from None
        if isinstance(data, dict) and data.get("task") == "ablation":
            records[path] = data
    verdicts = judged(records.values())
    changes = []
    for path, record in records.items():
        v = verdicts[str(record["run_id"])]
        changes.append(Change(record["run_id"], old_outcome(record), v.outcome, v.rank_ratio))
        write_record_at(path, rejudged(record, v), replace=True)
    return changes


def format_changes(changes: list[Change]) -> str:
    """The changed outcomes, one line each, and how many stayed."""
    moved = [c for c in changes if c.changed]
    width = max((len(c.run_id) for c in moved), default=6)
    lines = [f"{'run':<{width}}  {'old':<20} {'new':<20} RankMe / reference"]
    for c in moved:
        ratio = f"{min(c.ratio):.2f}–{max(c.ratio):.2f}" if c.ratio else "–"
        lines.append(f"{c.run_id:<{width}}  {c.old:<20} {c.new:<20} {ratio}")
    lines.append(f"{len(moved)} of {len(changes)} records changed outcome")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"records folder (default {DEFAULT_OUT})"
    )
    return p


def main(argv: list[str] | None = None) -> list[Change]:
    args = build_parser().parse_args(argv)
    changes = rejudge(args.out)
    print(format_changes(changes))
    return changes


def cli() -> None:
    """The command (``python experiments/rejudge.py``)."""
    run_cli(main, "re-run it: every record is rewritten whole, from its own curve")


if __name__ == "__main__":
    cli()
