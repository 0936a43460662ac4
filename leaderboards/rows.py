"""Row detail pages: one page per measured row, linked from the row's single ``runs`` cell.

A board row stays one line; its detail page (``rows/<board>-<a few words>-<8 hex digits>.md``,
the digits from the SHA-1 of the row's identity, so a row keeps its page when seeds are added)
holds what used to crowd the row: every record (linked), its seed, protocol id, the split it
was evaluated on (``records.splits``; a training split in bold), full git sha, torch threads,
CPU model, precision and device (``common.hardware``: each moves the number; "not recorded"
where a record is from before they were kept), finish date and wall time, the metrics of each
seed, the predictions and other artifacts the record lists under ``artifacts`` (path relative
to the record's folder, size, sha256) and the superseded runs (same seed, older run; not in the
numbers). Above the records, "Ran with" gathers the row's threads, CPU models and precisions;
where its records ran with different thread counts it says so (``threads_note``, also in the
board's ``n seeds`` cell): on a CPU the thread count splits each float sum differently, which
moves the number.

Each board's renderer owns its ``rows/<board>-*.md`` files: :meth:`RowPages.write` removes the
board's stale pages and writes the current ones, so a row whose records are gone loses its page.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from leaderboards.eval_split import TRAINING_NOTE, on_training_split, split_cell
from leaderboards.markdown import Paths, marker, num, table, unique
from leaderboards.protocols import protocol_id
from leaderboards.record_set import Record, is_number

FOLDER = "rows"


def slugify(text: str) -> str:
    """Lower-case letters, digits and dots, ``-`` between words, at most 40 characters."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")[:40].strip("-.")


def page_name(board: str, key: str, slug: str = "") -> str:
    """``<board>-<slug>-<8 hex digits of sha1(key)>.md`` (the slug for a reader, the digits
    for uniqueness)."""
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    words = slugify(slug)
    return f"{board}-{words}-{digest}.md" if words else f"{board}-{digest}.md"


def finished(data: dict[str, Any]) -> str:
    """The finish date of a record, ``YYYY-MM-DD HH:MM``, or ``?``."""
    when = data.get("finished_at") or data.get("date")
    return str(when).replace("T", " ")[:16] if when else "?"


NOT_RECORDED = "not recorded"


def _hardware(data: dict[str, Any]) -> dict[str, Any]:
    hardware = data.get("hardware")
    return hardware if isinstance(hardware, dict) else {}


def device(data: dict[str, Any]) -> str:
    found = _hardware(data).get("device")
    return str(found or data.get("machine") or "?")


def threads(data: dict[str, Any]) -> int | None:
    """torch's intra-op threads of a record's run (``hardware.torch_threads``; an ablation
    record's top-level ``threads``), or None where the record does not say."""
    found = _hardware(data).get("torch_threads", data.get("threads"))
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def cpu_model(data: dict[str, Any]) -> str:
    return str(_hardware(data).get("cpu_model") or NOT_RECORDED)


def precision(data: dict[str, Any]) -> str:
    return str(_hardware(data).get("precision") or NOT_RECORDED)


def _threads_cell(data: dict[str, Any]) -> str:
    found = threads(data)
    return NOT_RECORDED if found is None else str(found)


def thread_counts(records: list[Record]) -> list[int]:
    """The distinct thread counts ``records`` state, smallest first."""
    return sorted({n for n in (threads(r.data) for r in records) if n is not None})


def threads_note(records: list[Record]) -> str:
    """``threads 1, 2`` where the records of one row ran with different thread counts (their
    numbers are not one measurement's), else ``""``."""
    counts = thread_counts(records)
    return f"threads {', '.join(map(str, counts))}" if len(counts) > 1 else ""


def _values(records: list[Record], read: Any) -> str:
    """The distinct values ``read`` gives over ``records`` (first seen first); where they
    differ, each with the seeds of the records that had it."""
    values = [read(r.data) for r in records]
    distinct = unique(values)
    if len(distinct) <= 1:
        return distinct[0] if distinct else "–"
    parts = []
    for value in distinct:
        mine = [r for r, v in zip(records, values, strict=True) if v == value]
        seeds = unique(s for r in mine for s, _ in r.samples)
        known = sorted(s for s in seeds if s is not None)
        label = ", ".join([*map(str, known), *(["–"] if None in seeds else [])])
        parts.append(f"{value} (seed{'s' * (len(seeds) != 1)} {label})")
    return "; ".join(parts)


def ran_with_table(records: list[Record]) -> str:
    """What a row's records ran with: threads, CPU model, precision, device."""
    threads_text = _values(records, _threads_cell)
    if threads_note(records):
        threads_text += (
            ": the seeds ran with different thread counts; on a CPU that splits each float "
            "sum differently and moves the number"
        )
    rows = [
        ["threads (torch)", threads_text],
        ["CPU model", _values(records, cpu_model)],
        ["precision", _values(records, precision)],
        ["device", _values(records, device)],
    ]
    return table(["", "value"], rows)


def _sha(data: dict[str, Any]) -> str:
    sha = data.get("git_sha")
    return f"`{sha}`" if isinstance(sha, str) and sha else "?"


def _seconds(data: dict[str, Any]) -> str:
    wall = data.get("wall_seconds")
    return f"{wall:.1f} s" if is_number(wall) else "–"


def _protocol(data: dict[str, Any]) -> str:
    proto = data.get("protocol")
    return f"`{protocol_id(proto)}`" if isinstance(proto, dict) else "–"


def _seed(seed: Any) -> str:
    return "–" if seed is None else num(seed)


@dataclass
class Row:
    """One detail page: the row's identity, its title, its cells as on the board, its records."""

    name: str
    title: str
    cells: list[tuple[str, str]]
    records: list[Record]
    superseded: list[Record]


@dataclass
class RowPages:
    """The detail pages of one board (``board`` names the files, ``page`` is the board's)."""

    paths: Paths
    board: str
    title: str
    page: str
    rows: dict[str, Row] = field(default_factory=dict)

    def link(
        self,
        key: str,
        title: str,
        cells: list[tuple[str, str]],
        records: list[Record],
        superseded: list[Record] = (),
        slug: str = "",
    ) -> str:
        """Register a row's page and return the board's cell: ``[n runs](rows/<page>)``."""
        name = page_name(self.board, key, slug)
        if name in self.rows:  # the same identity twice on one board: one page for both
            row = self.rows[name]
            row.records = _distinct([*row.records, *records])
            row.superseded = _distinct([*row.superseded, *superseded])
        else:
            self.rows[name] = Row(name, title, cells, list(records), list(superseded))
        n = len(records)
        return f"[{n} run{'s' * (n != 1)}]({FOLDER}/{name})"

    def write(self) -> list[Path]:
        """Remove this board's stale pages and write the current ones; return their paths."""
        folder = self.paths.out / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{self.board}-*.md"):
            if old.name not in self.rows:
                old.unlink()
        written = []
        for name in sorted(self.rows):
            path = folder / name
            path.write_text(self.render(self.rows[name]), encoding="utf-8", newline="\n")
            written.append(path)
        return written

    def render(self, row: Row) -> str:
        """The detail page of one row (links relative to ``rows/``)."""
        here = Paths(self.paths.results, self.paths.out / FOLDER)
        parts = [marker(here), "", f"# {row.title}", ""]
        parts += [
            f"One row of [{self.title}](../{self.page}): its cells as on the board, then every "
            "record behind it. [How to read the tables](../README.md#how-to-read-the-tables).",
            "",
            "## The row",
            "",
            table(["column", "value"], [[h, c] for h, c in row.cells]),
            "",
            "## Ran with",
            "",
            ran_with_table(row.records),
            "",
            f"## Records ({len(row.records)})",
            "",
            records_table(here, row.records),
            "",
        ]
        if any(on_training_split(r.data) for r in row.records):
            parts += [TRAINING_NOTE, ""]
        for task in unique(r.task for r in row.records):
            parts += [f"### Metrics per seed: {task}", ""]
            parts += [metrics_table([r for r in row.records if r.task == task]), ""]
        parts += ["## Predictions and other artifacts", ""]
        parts += [artifacts_section(here, row.records), ""]
        if row.superseded:
            parts += [
                f"## Superseded ({len(row.superseded)})",
                "",
                "A later run measured the same seed; these are not in the row's numbers.",
                "",
                records_table(here, row.superseded),
                "",
            ]
        return "\n".join(parts)


def _distinct(records: list[Record]) -> list[Record]:
    return list({r.path: r for r in records}.values())


def latest_date(records: list[Record]) -> str:
    """The day the latest of ``records`` finished (``YYYY-MM-DD``), for a board's date cell."""
    days = sorted(finished(r.data)[:10] for r in records if finished(r.data) != "?")
    return days[-1] if days else "?"


def records_table(paths: Paths, records: list[Record]) -> str:
    headers = ["run", "task", "seed", "protocol", "evaluated on", "git sha", "threads"]
    headers += ["CPU model", "precision", "device", "finished", "wall time"]
    rows = [
        [
            f"[{r.run_id}]({paths.link(r)})",
            r.task,
            ", ".join(_seed(s) for s, _ in r.samples),
            _protocol(r.data),
            split_cell(r.data),
            _sha(r.data),
            _threads_cell(r.data),
            cpu_model(r.data),
            precision(r.data),
            device(r.data),
            finished(r.data),
            _seconds(r.data),
        ]
        for r in records
    ]
    return table(headers, rows)


def metrics_table(records: list[Record]) -> str:
    """One line per seed of each record, one column per numeric metric (first seen first)."""
    samples = [(r, seed, m) for r in records for seed, m in r.samples]
    keys = unique(k for _, _, m in samples for k, v in m.items() if is_number(v))
    rows = [[r.run_id, _seed(seed), *(_metric(m.get(k)) for k in keys)] for r, seed, m in samples]
    return table(["run", "seed", *keys], rows)


def _metric(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if is_number(value) else "–"


def artifact_entries(record: Record) -> list[dict[str, Any]]:
    """The record's ``artifacts`` entries that name a file (anything else is skipped)."""
    entries = record.data.get("artifacts")
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)]


def _artifact_link(paths: Paths, record: Record, rel: str) -> str:
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        return f"`{rel}` (outside the record's folder: not linked)"
    target = paths.results / Path(record.path).parent / Path(*parts)
    link = Path(os.path.relpath(target, paths.out)).as_posix()
    return f"[{rel}]({link})"


def artifacts_section(paths: Paths, records: list[Record]) -> str:
    rows = []
    for r in records:
        for e in artifact_entries(r):
            size = e.get("bytes")
            sha = e.get("sha256")
            rows.append(
                [
                    r.run_id,
                    str(e.get("name") or e["path"]),
                    _artifact_link(paths, r, e["path"]),
                    f"{size:,}" if is_number(size) else "?",
                    f"`{sha}`" if isinstance(sha, str) else "?",
                ]
            )
    if not rows:
        return (
            "None of these records lists artifacts (runs written before the predictions "
            "were kept beside the record, or tasks that keep none)."
        )
    intro = (
        "The raw predictions behind the numbers, beside each record (`transfer/artifacts.py`: "
        "size and sha256 as the record lists them; `verify_artifacts` checks them).\n\n"
    )
    return intro + table(["run", "artifact", "file", "bytes", "sha256"], rows)
