"""Checkpoints: atomic under a full disk, strict about the architecture, exact on resume."""

from __future__ import annotations

import errno

import pytest
import torch

import pretrain.checkpoint as checkpoint
from pretrain.checkpoint import CheckpointError, atomic_save
from pretrain.hooks import Checkpointer
from pretrain.train import Trainer
from tests.conftest import tiny_config


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    atomic_save({"step": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def save_until_the_disk_is_full(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")  # the device fills up mid-write
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", save_until_the_disk_is_full)
    with pytest.raises(
        CheckpointError, match="no space left.*previous checkpoint .*last.pt is intact"
    ):
        atomic_save({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    kept = torch.load(path)
    assert kept["step"] == 1 and torch.equal(kept["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left behind


def test_checkpoint_of_another_architecture_is_refused(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    Checkpointer.save(Trainer(tiny_config(tiny_fmnist), run))
    with pytest.raises(CheckpointError) as e:
        Trainer(tiny_config(tiny_fmnist, "model.width=16"), run)
    assert "another architecture" in str(e.value)
    assert "model.width: checkpoint 8, config 16" in str(e.value)
    assert "new run directory" in str(e.value)


def test_a_file_that_is_not_a_checkpoint(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"weights": torch.ones(2)}, run / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        Trainer(tiny_config(tiny_fmnist), run)


def params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_resume_is_exact(tiny_fmnist, tmp_path):
    """k steps, stop, resume to 2k == 2k uninterrupted steps, bitwise on CPU."""
    k = 5
    cfg = tiny_config(
        tiny_fmnist, "train.epochs=3", "train.ckpt_every=0", "train.deterministic=true"
    )
    hooks = lambda: [Checkpointer()]  # noqa: E731
    straight = Trainer(cfg, tmp_path / "straight", hooks())
    straight.total_steps = 2 * k
    straight.fit()

    first = Trainer(cfg, tmp_path / "resumed", hooks())
    first.total_steps = k
    first.fit()
    second = Trainer(cfg, tmp_path / "resumed", hooks())
    assert second.resumed_from == k
    second.total_steps = 2 * k
    second.fit()

    a, b = params(straight), params(second)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    sa, sb = straight.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    for i in sa:
        assert torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"])


def test_older_config_without_the_new_switches_has_the_same_architecture(tiny_fmnist):
    from pretrain.checkpoint import architecture_of

    cfg = tiny_config(tiny_fmnist).to_dict()
    first_keys = ("name", "proj_dim", "proj_hidden_dim", "proj_layers", "pred_hidden_dim")
    older = {**cfg, "method": {k: v for k, v in cfg["method"].items() if k in first_keys}}
    assert architecture_of(older) == architecture_of(cfg)
    changed = {**cfg, "method": {**cfg["method"], "predictor": "linear"}}
    assert architecture_of(changed) != architecture_of(cfg)


class RunsCodeWhenUnpickled:
    """What a malicious checkpoint holds: unpickling it calls os.mkdir(marker)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (self.marker,))


def test_checkpoints_load_with_weights_only(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    path = Checkpointer.save(Trainer(tiny_config(tiny_fmnist), run))
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # no allowlist needed
    assert isinstance(ckpt["rng"]["numpy"]["keys"], torch.Tensor)
    assert Trainer(tiny_config(tiny_fmnist), run).resumed_from == 0


def test_an_older_checkpoint_with_numpy_rng_state_still_resumes(tiny_fmnist, tmp_path):
    import random

    import numpy as np

    run = tmp_path / "run"
    state = Trainer(tiny_config(tiny_fmnist), run).state_dict()
    np.random.seed(7)
    random.seed(7)
    state["rng"] = {  # the layout older versions wrote: NumPy's own tuple with its array
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    expected = np.random.random(), random.random()
    atomic_save(state, run / "checkpoints" / "last.pt")
    np.random.seed(0)
    random.seed(0)
    assert Trainer(tiny_config(tiny_fmnist), run).resumed_from == 0
    assert (np.random.random(), random.random()) == expected


def test_a_checkpoint_holding_code_is_refused_without_running_it(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    state = Trainer(tiny_config(tiny_fmnist), run).state_dict()
    marker = tmp_path / "the-code-ran"
    state["extra"] = RunsCodeWhenUnpickled(str(marker))
    atomic_save(state, run / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="holds pickled Python objects .*weights_only=True"):
        Trainer(tiny_config(tiny_fmnist), run)
    assert not marker.exists()
