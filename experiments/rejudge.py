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

``--pretrain DIR`` migrates the pretraining (sweep) records in ``DIR`` instead (the folder
``leaderboards/results/pretrain/``): a record from before the windowed verdict carries
``metrics.collapsed``, a single-point flag the schema refuses. Each such record loses the flag
and gets the windowed verdict of its monitor trace where it holds one (``curve``), else a
verdict "not judged" that says why: it keeps only the run's last monitor values, one point,
which is not a window over the run's last fifth. A record that already carries a verdict and
no flag is left as it is.

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
from records.verdict import COMPLETE, LOSS_MIN, NOT_JUDGED, Verdict, judge, not_judged
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
    records = _records(out, "ablation")
    verdicts = judged(records.values())
    changes = []
    for path, record in records.items():
        v = verdicts[str(record["run_id"])]
        changes.append(Change(record["run_id"], old_outcome(record), v.outcome, v.rank_ratio))
        write_record_at(path, rejudged(record, v), replace=True)
    return changes


def _records(out: Path, task: str) -> dict[Path, dict]:
    """The records of ``task`` in the folder ``out``, by path."""
    if not out.is_dir():
        raise RejudgeError(f"no folder {out}")
    records: dict[Path, dict] = {}
    for path in sorted(out.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RejudgeError(f"{path} is not JSON ({e}); nothing rewritten") from None
        if isinstance(data, dict) and data.get("task") == task:
            records[path] = data
    return records


def _flags(record: dict) -> list[tuple[dict, object]]:
    """The metric dicts of a record (its top level and each ``per_seed`` entry) that carry
    the single-point flag, with its value."""
    metrics = record.get("metrics") or {}
    found = [metrics, *(m for m in metrics.get("per_seed") or [] if isinstance(m, dict))]
    return [(m, m["collapsed"]) for m in found if "collapsed" in m]


def migrated_pretrain(record: dict) -> dict:
    """A pretraining record without the single-point ``metrics.collapsed`` flag, with a
    verdict: its monitor trace's (``curve``) where it holds one, else "not judged" and why."""
    flags = _flags(record)
    out = json.loads(json.dumps(record))  # a deep copy
    for metrics, _ in _flags(out):
        del metrics["collapsed"]
    if not flags and out.get("verdict") is not None:
        return out
    curve = out.get("curve")
    method = str((out.get("pretrain") or {}).get("method"))
    if isinstance(curve, list) and curve:
        out["verdict"] = judge(curve, loss_min=LOSS_MIN.get(method)).as_record()
        return out
    old = ", ".join(str(v).lower() for _, v in flags) or "none"
    out["verdict"] = not_judged(
        "a pretraining record from before the windowed verdict keeps only the run's last "
        "monitor values (one point, not a window over the run's last fifth) and no monitor "
        f"trace; its single-point collapsed flag ({old}) was dropped"
    )
    return out


def migrate_pretrain(out: Path) -> list[Change]:
    """Migrate every pretraining record in ``out`` that carries the flag (or no verdict);
    return each migrated one's flag → verdict."""
    changes = []
    for path, record in _records(out, "pretrain").items():
        if not _flags(record) and record.get("verdict") is not None:
            continue
        new = migrated_pretrain(record)
        flag = ", ".join(f"flag: {v}".lower() for _, v in _flags(record)) or "no verdict"
        changes.append(Change(str(record["run_id"]), flag, new["verdict"]["outcome"], ()))
        write_record_at(path, new, replace=True)
    return changes


def format_migrated(changes: list[Change]) -> str:
    """The migrated pretraining records, one line each."""
    lines = [f"{c.run_id}: {c.old} → {c.new}" for c in changes]
    judged_ = sum(c.new != NOT_JUDGED for c in changes)
    lines.append(
        f"{len(changes)} pretraining records migrated ({judged_} judged from their trace, "
        f"{len(changes) - judged_} {NOT_JUDGED})"
    )
    return "\n".join(lines)


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
    p.add_argument(
        "--pretrain",
        type=Path,
        metavar="DIR",
        help="migrate the pretraining (sweep) records in DIR off metrics.collapsed instead",
    )
    return p


def main(argv: list[str] | None = None) -> list[Change]:
    args = build_parser().parse_args(argv)
    if args.pretrain is not None:
        changes = migrate_pretrain(args.pretrain)
        print(format_migrated(changes))
        return changes
    changes = rejudge(args.out)
    print(format_changes(changes))
    return changes


def cli() -> None:
    """The command (``python experiments/rejudge.py``)."""
    run_cli(main, "re-run it: every record is rewritten whole, from its own curve")


if __name__ == "__main__":
    cli()
