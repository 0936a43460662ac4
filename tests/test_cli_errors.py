"""The command-line tools of transfer, hub, sweeps, ablation and leaderboards: whole --help,
options anywhere, known errors as one line (exit 2), Ctrl-C as where it stopped (exit 130),
DataLoader workers capped at the CPUs, progress without carriage returns in a log."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from common.cli import clear_position, run_cli
from common.errors import UserError
from tests import signal_child
from tests.hub_servers import client_env, free_port

ROOT = Path(__file__).resolve().parents[1]
CLIS = {
    "transfer.run": "transfer/run.py",
    "experiments.sweep": "experiments/sweep.py",
    "experiments.ablate": "experiments/ablate.py",
    "leaderboards.build": "leaderboards/build.py",
    "hub.publish": "hub/publish.py",
    "hub.export": "hub/export.py",
}


@pytest.fixture(autouse=True)
def _no_position_left_behind():
    """The in-process Ctrl-C tests note positions in common.cli; other tests start without."""
    yield
    clear_position()


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("module", sorted(CLIS))
def test_help_is_the_whole_docstring_and_every_option_says_what_it_does(module: str) -> None:
    mod = importlib.import_module(module)
    parser = mod.build_parser()
    text = parser.format_help()
    last_line = [line for line in mod.__doc__.strip().splitlines() if line.strip()][-1]
    assert _words(last_line) in _words(text)  # not cut after the first line
    undocumented = [a.dest for a in parser._actions if not a.help]
    assert not undocumented


def test_help_lists_the_choices() -> None:
    from experiments import ablate, sweep
    from experiments.ablation_matrix import MATRIX
    from pretrain.config import available_recipes
    from transfer import run, tasks

    assert all(t in run.build_parser().format_help() for t in tasks.MODULES)
    sweep_help = _words(sweep.build_parser().format_help())
    assert all(r in sweep_help for r in available_recipes())
    ablate_help = ablate.build_parser().format_help()
    assert all(v.name in ablate_help for v in MATRIX)


def test_sweep_takes_options_after_overrides() -> None:
    from experiments import sweep

    args = sweep.parse_args(
        ["--recipe", "simsiam_resnet18_fmnist", "train.epochs=1", "--batch-sizes", "32,64",
         "model.width=8", "--transfer", "knn"]
    )  # fmt: skip
    assert args.overrides == ["train.epochs=1", "model.width=8"]
    assert (args.batch_sizes, args.transfer) == ("32,64", "knn")


def test_error_classes_are_user_errors_and_keep_their_base() -> None:
    from experiments.sweep_plan import SweepError
    from hub.encoder import EncoderLoadError
    from hub.zoo import ZooError
    from leaderboards.record_set import RecordError
    from transfer.detection.coco import COCOError
    from transfer.detection.engine_detectron2 import Detectron2Missing
    from transfer.detection.voc import VOCError
    from transfer.models import ModelError
    from transfer.tasks import OptionError

    for cls, base in [
        (OptionError, ValueError), (ModelError, RuntimeError), (SweepError, ValueError),
        (RecordError, ValueError), (COCOError, RuntimeError), (VOCError, RuntimeError),
        (ZooError, RuntimeError), (EncoderLoadError, RuntimeError),
        (Detectron2Missing, RuntimeError),
    ]:  # fmt: skip
        assert issubclass(cls, UserError) and issubclass(cls, base), cls


# ------------------------------------------------------------------ one line, exit 2


def test_known_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    env = client_env(f"http://127.0.0.1:{free_port()}", tmp_path / "hf")
    commands = {
        "transfer/run.py": (["--task", "segmentation"], "unknown task 'segmentation'"),
        "experiments/sweep.py": (["--recipe", "simsiam_resnet18_fmnist"], "nothing to sweep"),
        "experiments/ablate.py": (["--variants", "no_such"], "unknown variant(s) ['no_such']"),
        "leaderboards/build.py": (["--results", "missing"], "results folder missing"),
        "hub/publish.py": (["runs/gone", "--repo-id", "a/b"], "runs/gone is neither"),
        "hub/export.py": (["runs/gone", "out.pkl"], "no such file or folder: runs/gone"),
    }
    procs = {
        script: subprocess.Popen(
            [sys.executable, str(ROOT / script), *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for script, (args, _) in commands.items()
    }
    for script, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 2, (script, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (script, err)
        assert commands[script][1] in lines[0], (script, err)


# ------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_in_ablation_says_which_run_and_exits_130(tmp_path: Path, monkeypatch, capsys):
    from experiments import ablate

    done = {"z_std_sqrt_d": 1.0, "knn_z": 50.0, "knn_h": 60.0, "init_knn_h": 40.0}
    calls = []

    def fake_run(variant, seed, *args):
        calls.append(variant.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {**done, "reproduced": True, "wall_seconds": 1.0}

    monkeypatch.setattr(ablate, "run_variant", fake_run)
    argv = ["--variants", "simsiam,mocov3", "--seeds", "0", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda: ablate.main([*argv, "--work", str(tmp_path / "work")]))
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted at run 2/2 (mocov3 seed 0); 1 finished" in err
    assert "Traceback" not in err


def test_ctrl_c_in_the_embedded_transfer_run_says_which_task(monkeypatch, capsys) -> None:
    from transfer import run

    calls = []

    def fake_task(name, model, overrides, ctx, *args, **kwargs):
        calls.append(name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {"metrics": {}, "wall_seconds": 0.0}, Path("record.json")

    monkeypatch.setattr(run, "load_model", lambda *a, **k: object())
    monkeypatch.setattr(run, "run_task", fake_task)
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda: run.main([]))
    assert exit_.value.code == 130
    assert (
        f"interrupted at task 3/{2 * len(run.EMBEDDED)} (knn, trained)" in capsys.readouterr().err
    )


SWEEP = [
    "model.width=8", "method.proj_dim=32", "method.proj_hidden_dim=32",
    "method.pred_hidden_dim=8", "train.epochs=50", "train.precision='fp32'", "train.threads=1",
    "train.log_every=2", "train.ckpt_every=2", "monitor.every=2", "monitor.knn_every_epochs=0",
    "data.num_workers=0", "eval.final_knn=false",
]  # fmt: skip


def test_ctrl_c_in_a_sweep_says_which_point_and_that_rerunning_resumes(tiny_fmnist, tmp_path):
    """Once, in a shuffled run, a SIGINT reached this sweep before the test sent one. The
    child then shared pytest's process group and session: any signal sent to the group (a
    terminal's or a runner's Ctrl-C, a killpg) reached it, where a pytest started with SIGINT
    ignored, and the suite's other children, ignored it. It now runs in its own session
    (tests.signal_child), and the test checks that the one SIGINT it got is the test's own."""
    folder = tmp_path / "sweep"
    args = [
        "--recipe", "simsiam_resnet18_fmnist", "--batch-sizes", "32,64", "--sweep-dir",
        str(folder), "--results-dir", str(tmp_path / "results"), *SWEEP,
        f"data.root={tiny_fmnist}",
    ]  # fmt: skip
    proc = signal_child.start("experiments/sweep.py", *args, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not (folder / "batch_size-32" / "checkpoints").is_dir():  # training has begun
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert signal_child.senders(err) == [os.getpid()], err  # this test's SIGINT, and only it
    assert proc.returncode == 130, err
    assert "interrupted at point 1/2 (batch_size-32); re-run the same command to resume" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------ workers and progress


def test_dataloader_workers_are_capped_at_the_available_cpus(monkeypatch) -> None:
    from common import workers
    from transfer.detection import engine_torchvision as tv
    from transfer.detection.schedules import PRESETS
    from transfer.probe_loop import epoch_loader

    data = torch.utils.data.TensorDataset(torch.zeros(8, 1), torch.zeros(8))
    real = workers.available_cpus()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "suggested max number of worker" is a warning
        loader = epoch_loader(data, batch=4, seed=0, epoch=0, workers=real + 3)
        assert loader.num_workers == real
        assert len(list(loader)) == 2
    monkeypatch.setattr(workers, "available_cpus", lambda: 2)
    assert [workers.loader_workers(n) for n in (0, 1, 2, 4)] == [0, 1, 2, 2]
    assert epoch_loader(data, 4, 0, 0, workers=4).num_workers == 2
    detection = tv.DetectionData([], 1, False, False, flip=True, seed=0)
    assert tv.train_loader(detection, [0], PRESETS["fmnist"], 0, workers=4).num_workers == 2


def test_progress_in_a_log_file_is_a_few_whole_lines(tiny_fmnist, tmp_path) -> None:
    """Not a TTY: a line at the start and one at the end of a short loop, never one per
    fraction of a second (the linear grid's 6000 steps take about a second here)."""
    from hub.backbones import BackboneSpec
    from hub.encoder import Encoder

    spec = BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2)
    ssl = {"method": "simsiam", "dataset": "fashion_mnist"}
    Encoder.from_spec(spec, ssl=ssl).save_pretrained(tmp_path / "encoder")
    env = client_env(f"http://127.0.0.1:{free_port()}", tmp_path / "hf")
    env.pop("SIAMHUB_PROGRESS_SECONDS", None)  # the default: a line every 30 s at most
    proc = subprocess.run(
        [sys.executable, str(ROOT / "transfer" / "run.py"), "--task", "linear", "--model",
         str(tmp_path / "encoder"), f"data_root={tiny_fmnist}", "epochs=3000", "lrs=(0.1,)",
         "bn=(False,)", "--results-dir", str(tmp_path / "results"), "--threads", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    grid = [line for line in proc.stderr.splitlines() if line.startswith("linear grid")]
    assert 1 <= len(grid) <= 2 and "6000/6000" in grid[-1], proc.stderr
    assert "\r" not in proc.stderr
