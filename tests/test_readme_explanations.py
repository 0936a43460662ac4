"""The README's table of the explanations' labels is what the committed records give.

The labels follow from the ablation records by ``records.explanations``' rules; the README
carries them so a reader sees them without opening the board, and this test keeps that copy
from going stale when a record, a prediction or a rule changes.
"""

from __future__ import annotations

from pathlib import Path

from leaderboards.explanations_board import summary_table
from leaderboards.record_set import read_records

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- explanations-labels:begin -->", "<!-- explanations-labels:end -->"


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"README.md lacks the {BEGIN} ... {END} block"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_the_readme_labels_are_the_ones_the_committed_records_give() -> None:
    records, _ = read_records(ROOT / "leaderboards" / "results")
    expected = summary_table(records).strip()
    assert readme_block() == expected, (
        "README.md's explanations table is stale; paste the output of "
        "`python -c 'from leaderboards.explanations_board import summary_table; "
        "from leaderboards.record_set import read_records; "
        'print(summary_table(read_records("leaderboards/results")[0]))\'`'
    )


def test_the_block_names_every_explanation() -> None:
    from records.explanations import EXPLANATIONS

    block = readme_block()
    assert all(ex.title in block for ex in EXPLANATIONS)
