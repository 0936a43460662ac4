"""The benchmarks' own side runs the trainer's code: a change to the trainer must not break them.

``benchmarks/pretrain_throughput.py`` times ``Trainer.train_step`` called on a small holder of
what the step reads from the trainer (``ours_step`` in ``benchmarks/step_setup.py``); when the
step starts reading a new attribute, the benchmark breaks without any training test noticing.
These tests run our side of it (lightly, the other side, is the optional ``bench`` extra) for
each method on a tiny backbone.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["conv_bound", "data_pipeline", "gpu_check", "linear_probe", "pretrain_throughput"]


def load_benchmark(name: str):
    return importlib.import_module(f"benchmarks.{name}")


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_benchmark_runs_as_a_script_from_the_repository_root(name):
    """``python benchmarks/<name>.py`` imports the project and its sibling benchmarks through the
    installed packages (``benchmarks`` is one), never through a ``sys.path`` edit."""
    for module in (ROOT / "benchmarks").glob("*.py"):
        assert "sys.path" not in module.read_text(), module.name
    command = [sys.executable, f"benchmarks/{name}.py", "--help"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:")


@pytest.mark.parametrize("method", ["simsiam", "byol", "mocov3"])
def test_throughput_benchmark_steps_our_trainer(method):
    setup, timing = load_benchmark("step_setup"), load_benchmark("step_timing")
    cfg = setup.benchmark_config(method, batch=8, img_size=16, width=8, precision="fp32")
    x1, x2 = setup.random_views(cfg, torch.device("cpu"), seed=0)
    step, model = setup.ours_step(cfg, torch.device("cpu"), x1, x2)
    before = [p.detach().clone() for p in model.backbone.parameters()]
    out = step()
    assert torch.isfinite(out["loss"])
    after = list(model.backbone.parameters())
    moved = sum(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert moved > 0, "the step did not update the backbone"
    assert timing.count_flops(step) > 0


def test_throughput_benchmark_stem_stride_one_keeps_the_full_resolution():
    setup, timing = load_benchmark("step_setup"), load_benchmark("step_timing")
    bench = load_benchmark("pretrain_throughput")
    flops = {}
    for stride in (1, 2):
        cfg = setup.benchmark_config(
            "simsiam", batch=4, img_size=16, width=8, stem_stride=stride, precision="fp32"
        )
        assert cfg.model.stem_stride == stride
        step, model = setup.ours_step(
            cfg, torch.device("cpu"), *setup.random_views(cfg, torch.device("cpu"), seed=0)
        )
        assert model.backbone.conv1.stride == (stride, stride)
        flops[stride] = timing.count_flops(step)
    # every map after the stem is twice as wide and high: 4x the backbone's conv FLOPs, while
    # the heads' (512-wide MLPs on pooled features) stay the same
    assert 2.0 < flops[1] / flops[2] < 4.0
    assert bench.parse_args(["--stem-stride", "1"]).stem_stride == 1


def test_throughput_benchmark_without_lightly_says_how_to_install_it(monkeypatch):
    bench = load_benchmark("pretrain_throughput")
    monkeypatch.setattr(
        load_benchmark("lightly_steps"), "LIGHTLY_MISSING", ImportError("no lightly")
    )
    with pytest.raises(SystemExit, match=r"pip install -e '\.\[bench\]'"):
        bench.main(["--rounds", "1"])


def test_conv_bound_splits_a_step_into_conv_forward_backward_and_the_rest(capsys):
    bench = load_benchmark("conv_bound")
    rows = bench.main(
        ["--batch", "8", "--img-size", "16", "--width", "8", "--steps", "1", "--warmup", "1"]
    )
    assert rows["conv_forward_pct"] > 0 and rows["conv_backward_pct"] > 0
    assert 0.0 <= rows["other_share"] < 1.0
    assert "conv-only bound" in capsys.readouterr().out
    # every conv the step runs was timed by itself: together they are the step's conv FLOPs
    setup = load_benchmark("step_setup")
    cfg = setup.benchmark_config("simsiam", batch=8, img_size=16, width=8)
    step, _ = setup.ours_step(
        cfg, torch.device("cpu"), *setup.random_views(cfg, torch.device("cpu"), seed=0)
    )
    counted = bench.conv_flops(step)
    assert rows["kernels_alone_conv_flops"] == counted["forward"] + counted["backward"]
    assert rows["kernels_alone_bound_pct"] > 0


def test_conv_bound_counts_each_convolution_of_a_resnet_step():
    bench, setup = load_benchmark("conv_bound"), load_benchmark("step_setup")
    cfg = setup.benchmark_config("simsiam", batch=4, img_size=16, width=8, precision="fp32")
    step, model = setup.ours_step(
        cfg, torch.device("cpu"), *setup.random_views(cfg, torch.device("cpu"), seed=0)
    )
    calls = bench.conv_calls(model, step)
    assert sum(calls.values()) == 2 * 20  # ResNet-18: 17 convs + 3 downsamples, two views
    stem = [c for c in calls if c.w[1] == cfg.model.in_chans]
    assert len(stem) == 1 and not stem[0].input_grad  # the image needs no gradient
    assert all(c.input_grad for c in calls if c not in stem)
