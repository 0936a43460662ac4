"""Progress in a log file (CI, Slurm, ``> log``): one line every SIAMHUB_PROGRESS_SECONDS with
the right counter, never a line per step. Detection once wrote a line per iteration with a
frozen counter (207 lines for 200 iterations, five at "89/200"): its ``set_postfix`` redrew
the bar, and an iterating tqdm updates its counter only when it prints."""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import pytest
import torch
import tqdm.std

from common.progress import progress
from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from tests.trees import write_voc_tree
from transfer import tasks
from transfer.models import load_model
from transfer.tasks import RunContext

COUNTER = re.compile(r"\| *(\d+)/(\d+) ")


@pytest.fixture
def clock(monkeypatch) -> None:
    """tqdm's clock: one second per reading, so that lines are due by the count of readings
    (bars made after this read it: tqdm binds ``tqdm.std.time`` per bar)."""
    ticks = itertools.count(0.0, 1.0)
    monkeypatch.setattr(tqdm.std, "time", lambda: next(ticks))


def counters(text: str, prefix: str) -> list[int]:
    return [
        int(COUNTER.search(line)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and COUNTER.search(line)
    ]


def test_a_postfix_per_step_does_not_write_a_line_per_step(clock, monkeypatch) -> None:
    monkeypatch.setenv("SIAMHUB_PROGRESS_SECONDS", "30")
    log = io.StringIO()  # not a terminal: the line mode
    bar = progress(range(200), total=200, file=log, desc="detection")
    for i in bar:
        bar.set_postfix(loss=f"{1 / (i + 1):.3f}")
        bar.set_description("detection")
    seen = counters(log.getvalue(), "detection")
    assert seen[0] == 0 and seen[-1] == 200
    assert seen == sorted(set(seen))  # a counter never repeats (never frozen)
    assert len(seen) <= 200 // 30 + 3  # one line per 30 s, plus the first and the last
    last = [ln for ln in log.getvalue().splitlines() if ln.strip()][-1]
    assert "loss=0.005" in last  # a postfix shows on the next line due


def test_torchvision_detection_writes_a_line_every_n_seconds(
    clock, monkeypatch, capsys, tmp_path: Path
) -> None:
    """The engine's own bar (``engine_torchvision.train``) on a tiny VOC tree."""
    monkeypatch.setenv("SIAMHUB_PROGRESS_SECONDS", "8")
    torch.manual_seed(0)
    spec = BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2, zero_init_residual=False)
    Encoder.from_spec(spec, ssl={"method": "simsiam"}).save_pretrained(tmp_path / "enc")
    model = load_model(str(tmp_path / "enc"))
    module = tasks.get("voc_det")
    iters = 12
    opts = tasks.parse_options(
        module.Options,
        [f"data_root={write_voc_tree(tmp_path / 'voc')}", f"iters={iters}", "batch_size=2",
         "short_side=64", "anchor_sizes=(16,32,64)", "roi_resolution=4",
         "box_batch_size_per_image=8", "rpn_post_nms_top_n_train=16",
         "rpn_post_nms_top_n_test=8", "workers=0"],
    )  # fmt: skip
    capsys.readouterr()
    module.run(model, opts, RunContext(work_dir=tmp_path / "work"))
    seen = counters(capsys.readouterr().err, "detection (")
    assert seen[0] == 0 and seen[-1] == iters, seen
    assert seen == sorted(set(seen)), seen  # the right counter on every line
    assert len(seen) < iters // 2, seen  # not a line per iteration
