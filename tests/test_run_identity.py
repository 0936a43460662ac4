"""Run identity: a run stopped early is shown with its trained length (steps and epochs),
not its recipe's, in summary.json, result records, the boards and the published name and card.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.card import model_card
from hub.publish import build_encoder
from leaderboards.build import build
from pretrain import run as pretrain_run
from records.length import length_of, trained_block, with_trained
from tests.conftest import TINY
from transfer import run as transfer_run

FAST = [*TINY, "eval.final_knn=false", "monitor.knn_every_epochs=0", "train.threads=1"]
STEPS_PER_EPOCH = 512 // 64  # the tiny set at batch 64


def test_trained_block_says_whether_the_run_stopped_early():
    """SimSiam fmnist at batch 256: 234 steps per epoch, 12 epochs = 2808 steps."""
    short = trained_block(20, 234, 12.0)
    assert short == {"steps": 20, "epochs": pytest.approx(20 / 234), "stopped_early": True}
    assert trained_block(2808, 234, 12.0)["stopped_early"] is False
    assert trained_block(2807, 234, 12.0)["stopped_early"] is True
    assert trained_block(3, 8, 0.375)["stopped_early"] is False  # a fraction of an epoch, all
    assert length_of({"epochs": 12.0, "trained": short}).label == "20 steps (0.09 ep)"
    assert length_of({"epochs": 12.0, "trained": short}).tag == "20steps"


def test_records_without_the_block_render_as_before():
    """Older records: trained_steps / trained_epochs, or the configured epochs alone."""
    assert length_of({"epochs": 12.0}).label == "12 ep" and length_of({"epochs": 3.0}).cell == "3"
    legacy = {"epochs": 3.0, "trained_steps": 702, "trained_epochs": 3.0}
    assert not length_of(legacy).stopped_early and length_of(legacy).cell == "3"
    early = {"epochs": 12.0, "trained_steps": 20, "trained_epochs": 20 / 234}
    assert length_of(early).label == "20 steps (0.09 ep)"
    assert with_trained(early)["trained"]["stopped_early"] is True
    assert with_trained({"epochs": 12.0}) == {"epochs": 12.0}  # unknown: nothing invented


@pytest.fixture
def short_run(tiny_fmnist: Path, tmp_path: Path) -> Path:
    """A run of the 2-epoch tiny recipe stopped by train.max_steps=3."""
    run = tmp_path / "runs" / "short"
    pretrain_run.main(["--run-dir", str(run), *FAST, f"data.root={tiny_fmnist}",
                       "train.max_steps=3"])  # fmt: skip
    return run


def test_a_run_stopped_early_is_named_and_shown_by_its_trained_length(
    short_run: Path, tiny_fmnist: Path, tmp_path: Path
):
    summary = json.loads((short_run / "summary.json").read_text())
    assert summary["configured_epochs"] == 2.0
    assert summary["trained"] == {
        "steps": 3, "epochs": pytest.approx(3 / STEPS_PER_EPOCH), "stopped_early": True
    }  # fmt: skip

    results = tmp_path / "results"
    (record,) = transfer_run.main([
        "--task", "knn", "--model", str(short_run), f"data_root={tiny_fmnist}",
        "--results-dir", str(results), "--work-dir", str(tmp_path / "w"),
    ])  # fmt: skip
    assert record["pretrain"]["epochs"] == 2.0  # configured, beside the trained length
    assert record["pretrain"]["trained"]["steps"] == 3
    assert record["pretrain"]["trained"]["stopped_early"] is True

    built = build(results, tmp_path / "boards")
    assert not built.flagged
    for page in ("knn.md", "methods.md"):
        text = (tmp_path / "boards" / page).read_text()
        row = next(line for line in text.splitlines() if line.startswith("| trained |"))
        assert "| 3 steps (0.38 ep) |" in row, page
        assert "| 2 |" not in row, page  # not the recipe's 2 epochs

    encoder, row = build_encoder(short_run, "acme/short", results)
    assert row.name == "resnet18.simsiam_3steps_fmnist"
    card = model_card(encoder.config)
    assert "# resnet18.simsiam_3steps_fmnist" in card
    assert "trained 3 steps (0.38 ep), stopped early" in card
    assert encoder.config["ssl"]["trained"]["stopped_early"] is True


def test_a_complete_run_keeps_its_epochs_in_the_name(tiny_fmnist: Path, tmp_path: Path):
    run = tmp_path / "runs" / "complete"
    pretrain_run.main(["--run-dir", str(run), *FAST, f"data.root={tiny_fmnist}",
                       "train.epochs=0.25"])  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert summary["trained"]["stopped_early"] is False and summary["trained"]["steps"] == 2
    encoder, row = build_encoder(run, "acme/complete", tmp_path / "results")
    assert row.name == "resnet18.simsiam_0.25ep_fmnist"
    assert "stopped early" not in model_card(encoder.config)
