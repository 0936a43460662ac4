"""Row detail pages and the kNN board's raw-pixels row (leaderboards/rows.py, raw_pixels.py),
on the fixture records of tests/data/leaderboard_records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from leaderboards.build import build
from tests.test_leaderboards import (
    FIXTURES,
    board_rows,
    build_copy,
    detail_link,
    detail_of,
    fixture_records,
    generated,
    section,
)


def test_row_detail_page_lists_records_and_their_predictions(tmp_path: Path) -> None:
    """A row's detail page links each artifact its records list (the file exists there) with
    its size and sha256; a record without artifacts says so."""
    out = build_copy(FIXTURES, tmp_path)
    rows = board_rows((out / "knn.md").read_text())
    byol = next(
        line for line in rows if line.startswith("| trained | byol (byol_resnet18_fmnist) |")
    )
    detail = detail_of(out, byol)
    record = json.loads((FIXTURES / "knn" / "20261120-100400-byol-s0.json").read_text())
    (entry,) = record["artifacts"]
    link = f"../results/knn/{entry['path']}"
    assert f"[{entry['path']}]({link})" in section(detail, "Predictions and other artifacts")
    assert (out / "rows" / link).resolve().is_file()
    assert f"| {entry['bytes']} | `{entry['sha256']}` |" in detail
    # the metrics of each seed, raw-pixels baseline included
    assert "| top1_k20 | top1_k200 | raw_pixels_top1_k20 | raw_pixels_top1_k200 |" in detail
    random = next(line for line in rows if line.startswith("| random init |"))
    assert "None of these records lists artifacts" in detail_of(out, random)


def test_knn_board_shows_the_raw_pixels_baseline(tmp_path: Path) -> None:
    out = build_copy(FIXTURES, tmp_path)
    raw = section((out / "knn.md").read_text(), "Measured").split("### Raw pixels (no network)")[1]
    carrying = [r for r in fixture_records() if "raw_pixels_top1_k20" in r.get("metrics", {})]
    assert len(carrying) == 2
    value = carrying[0]["metrics"]["raw_pixels_top1_k20"]
    (row,) = [line for line in raw.splitlines() if line.startswith("| raw pixels")]
    cells = row.split(" | ")
    assert cells[2] == f"{value:.1f}" and cells[4] == "2"  # the same value twice: no ± 0.0
    detail = detail_of(out, row)
    assert all(f"/{r['run_id']}.json)" in detail for r in carrying)
    # without such records the board says where the baseline comes from
    results = tmp_path / "none" / "results"
    shutil.copytree(FIXTURES / "linear", results / "linear")
    build(results, tmp_path / "none")
    assert (
        "No kNN record carries the raw-pixels baseline yet"
        in (tmp_path / "none" / "knn.md").read_text()
    )


def test_row_pages_of_rows_that_are_gone_are_removed(tmp_path: Path) -> None:
    out = build_copy(FIXTURES, tmp_path)
    before = generated(out)
    for path in (out / "results" / "knn").glob("*-mocov3-*.json"):
        path.unlink()
    build(out / "results", out)
    gone = sorted(set(before) - set(generated(out)))
    assert gone == [n for n in before if n.startswith("rows/knn-mocov3-")] and gone
    assert all(
        detail_link(line) in generated(out) for line in board_rows((out / "knn.md").read_text())
    )
