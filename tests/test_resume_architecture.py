"""What counts as another architecture on resume is what shapes the weights (the state dict the
config builds), not a hand-kept list of keys: DINO's temperature and clipping may change on
resume (logged, and listed in summary.json), its K or the backbone's width may not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pretrain.checkpoint import CheckpointError, architecture_of, read_events
from pretrain.config import ConfigError, load_config
from pretrain.hooks import Checkpointer, MetricsLog
from pretrain.summary import write_summary
from pretrain.train import Trainer
from tests.conftest import tiny_config

DINO_TINY = [
    "model.width=8", "method.proj_hidden_dim=32", "method.proj_dim=16", "method.out_dim=64",
    "data.local_crops=2", "train.batch_size=64", "train.precision='fp32'", "train.threads=1",
    "data.num_workers=0", "monitor.knn_every_epochs=0", "eval.final_knn=false",
    "train.log_every=1", "monitor.every=1",
]  # fmt: skip


def dino(data: Path, *extra: str):
    return load_config("dino_resnet18_fmnist", [f"data.root={data}", *DINO_TINY, *extra])


def checkpointed(cfg, run: Path) -> None:
    Checkpointer.save(Trainer(cfg, run, []))


def test_dino_resumes_with_another_temperature_and_clipping_logged(tiny_fmnist, tmp_path):
    """Was: "checkpoint ... was made for another architecture (method.clip_grad ...;
    method.teacher_temp ...)": NOT_ARCHITECTURE, a hand list older than DINO."""
    run = tmp_path / "run"
    checkpointed(dino(tiny_fmnist), run)
    changed = dino(
        tiny_fmnist, "method.teacher_temp=0.03", "method.clip_grad=1.0", "train.max_steps=1"
    )
    trainer = Trainer(changed, run, [MetricsLog(), Checkpointer()])
    assert trainer.resumed_from == 0
    trainer.fit()
    changes = [(e["step"], e["key"], e["old"], e["new"]) for e in read_events(run)]
    assert changes == [
        (0, "method.teacher_temp", 0.04, 0.03),
        (0, "method.clip_grad", 3.0, 1.0),
        (0, "train.max_steps", 0, 1),
    ]
    summary = write_summary(trainer, time.perf_counter())
    assert [(c["key"], c["new"]) for c in summary["config_changes"]] == [
        ("method.teacher_temp", 0.03), ("method.clip_grad", 1.0), ("train.max_steps", 1)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("method.out_dim=128", "method.out_dim: checkpoint 64, config 128"),
        ("model.width=16", "model.width: checkpoint 8, config 16"),
        ("method.head_bn=false", "method.head_bn: checkpoint True, config False"),
    ],
)
def test_dino_with_other_weight_shapes_is_another_architecture(
    tiny_fmnist, tmp_path, override, named
):
    run = tmp_path / "run"
    checkpointed(dino(tiny_fmnist), run)
    with pytest.raises(CheckpointError) as e:
        Trainer(dino(tiny_fmnist, override, "method.teacher_temp=0.03"), run, [])
    assert f"was made for another architecture ({named})" in str(e.value)  # only the key
    assert "teacher_temp" not in str(e.value)  # that shapes the weights


def test_a_key_that_shapes_nothing_is_refused_as_a_change_not_as_an_architecture(
    tiny_fmnist, tmp_path
):
    run = tmp_path / "run"
    checkpointed(dino(tiny_fmnist), run)
    with pytest.raises(ConfigError, match=r"cannot change method.student_temp \(run: 0.1"):
        Trainer(dino(tiny_fmnist, "method.student_temp=0.2"), run, [])


def test_simsiam_alternation_period_shapes_weights_only_when_it_adds_the_target(
    tiny_fmnist, tmp_path
):
    """target_refresh_steps 0 -> k adds the target copy (another architecture); k -> k' keeps
    the weights' layout, and is refused as a change of the run (an ablation's variable)."""
    live, alternating = tmp_path / "live", tmp_path / "alternating"
    checkpointed(tiny_config(tiny_fmnist), live)
    with pytest.raises(CheckpointError, match=r"\(method.target_refresh_steps: checkpoint 0, "):
        Trainer(tiny_config(tiny_fmnist, "method.target_refresh_steps=5"), live, [])
    checkpointed(tiny_config(tiny_fmnist, "method.target_refresh_steps=5"), alternating)
    with pytest.raises(ConfigError, match="cannot change method.target_refresh_steps"):
        Trainer(tiny_config(tiny_fmnist, "method.target_refresh_steps=10"), alternating, [])


def test_dino_takes_no_alternation_whatever_the_checkpoint(tiny_fmnist, tmp_path):
    run = tmp_path / "run"
    checkpointed(dino(tiny_fmnist), run)
    with pytest.raises(ConfigError, match="target_refresh_steps are SimSiam ablations"):
        Trainer(dino(tiny_fmnist, "method.target_refresh_steps=5"), run, [])


def test_architecture_is_the_state_dict_the_config_builds():
    base = load_config("dino_vit_small_in1k").to_dict()
    shapes = architecture_of(base)
    assert shapes["target_projector.center"] == (65536,)
    assert shapes["backbone.pos_embed"][-1] == 384
    for key, value in [("teacher_temp", 0.06), ("clip_grad", 0.3), ("student_temp", 0.2)]:
        assert architecture_of({**base, "method": {**base["method"], key: value}}) == shapes
    assert architecture_of({**base, "method": {**base["method"], "out_dim": 4096}}) != shapes
