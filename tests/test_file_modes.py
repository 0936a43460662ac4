"""Atomic writes: the file mode follows the umask (not mkstemp's 0600), a failed write keeps
the old file, and a killed write's temporary file is removed when the run starts again."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from common.files import atomic_write, remove_stale_temps
from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from hub.provenance import write_json_atomic
from pretrain.checkpoint import atomic_save
from pretrain.hooks import Checkpointer
from pretrain.train import Trainer
from tests.conftest import tiny_config


@pytest.fixture
def umask():
    """Set the process umask for one test; the previous one is restored."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoint_json_and_encoder_files_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_save({"step": 1, "w": torch.ones(2)}, tmp_path / "checkpoints" / "last.pt")
    write_json_atomic(tmp_path / "record.json", {"a": 1})
    spec = BackboneSpec(name="resnet18", width=8)
    Encoder.from_spec(spec, ssl={"method": "simsiam"}).save_pretrained(tmp_path / "encoder")
    written = [
        tmp_path / "checkpoints" / "last.pt",
        tmp_path / "record.json",
        *(tmp_path / "encoder" / name for name in ("model.safetensors", "config.json")),
    ]
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in written} == {
        str(p.relative_to(tmp_path)): oct(expected) for p in written
    }
    assert Encoder.from_pretrained(tmp_path / "encoder").num_features == 64  # still loads


def test_a_run_writes_its_files_readable_by_the_group(tiny_fmnist, tmp_path, umask):
    umask(0o022)
    run = tmp_path / "run"
    cfg = tiny_config(tiny_fmnist, "train.max_steps=1", "monitor.knn_every_epochs=0")
    Trainer(cfg, run, [Checkpointer()]).fit()
    assert mode(run / "checkpoints" / "last.pt") == 0o644
    assert mode(run / "config.json") == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "data.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def fail_midway(f) -> None:
        f.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, fail_midway)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_the_trainer_removes_temp_files_of_a_killed_checkpoint_write(tiny_fmnist, tmp_path):
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    stale = [ckpts / ".last.pt.k3j_9x2a.tmp", ckpts / ".last.pt.0123456789abcdef.tmp"]
    kept = [ckpts / "notes.txt", ckpts / ".keep", ckpts / "last.pt.tmp"]
    stale_json = tmp_path / "run" / ".config.json.0123456789abcdef.tmp"
    for p in [*stale, *kept, stale_json]:
        p.write_bytes(b"half a checkpoint")
    Trainer(tiny_config(tiny_fmnist), tmp_path / "run", [])
    assert sorted(p.name for p in ckpts.iterdir()) == sorted(p.name for p in kept)
    assert not stale_json.exists()
    assert remove_stale_temps(ckpts) == []  # nothing left to remove
