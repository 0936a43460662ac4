"""What a training run writes to a log file, and what Ctrl-C says."""

from __future__ import annotations

import pytest

from common.cli import EXIT_INTERRUPTED, run_cli
from pretrain.hooks import Hook, ProgressBar
from pretrain.train import Trainer
from tests.conftest import tiny_config


def test_progress_in_a_log_file_is_a_few_plain_lines(tiny_fmnist, tmp_path, capsys, monkeypatch):
    """Was: one carriage-return tqdm update per step in the log."""
    monkeypatch.setenv("SIAMHUB_PROGRESS_SECONDS", "3600")  # a line at start and at the end
    cfg = tiny_config(tiny_fmnist, "monitor.knn_every_epochs=0")
    trainer = Trainer(cfg, tmp_path / "run", [ProgressBar()]).fit()
    assert trainer.step == 16
    err = capsys.readouterr().err  # not a terminal
    assert "\r" not in err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 3, lines
    assert lines[-1].startswith("pretrain") and "16/16" in lines[-1]


class InterruptAt(Hook):
    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self, trainer, out) -> None:
        if trainer.step == self.step:
            raise KeyboardInterrupt


def test_ctrl_c_names_the_step_after_the_progress_line(tiny_fmnist, tmp_path, capsys):
    cfg = tiny_config(tiny_fmnist, "monitor.knn_every_epochs=0")
    trainer = Trainer(cfg, tmp_path / "run", [ProgressBar(), InterruptAt(3)])
    with pytest.raises(SystemExit) as e:
        run_cli(trainer.fit)
    assert e.value.code == EXIT_INTERRUPTED
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == "interrupted at step 3/16; re-run the same command to resume"
    assert any(line.startswith("pretrain") for line in lines[:-1])  # the bar closed first
