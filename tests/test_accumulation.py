"""Gradient accumulation (``train.accum_steps``): a batch split in micro-batches whose gradients
add up before the optimizer step."""

from __future__ import annotations

import pytest
import torch

from pretrain.config import ConfigError
from pretrain.train import Trainer
from tests.conftest import tiny_config

# A backbone without BatchNorm (ViT: LayerNorm is per sample) and heads without BN: the loss is
# then a mean over samples, so two half-batches accumulate to exactly the whole batch's gradient.
NO_BN = [
    "model.name='vit_small'",
    "model.img_size=28",
    "model.patch_size=7",
    "model.depth=1",
    "model.embed_dim=32",
    "model.num_heads=2",
    "method.bn='none'",
    "train.deterministic=true",
    "train.max_steps=3",
]


def params_after_three_steps(root, tmp_path, accum: int) -> dict[str, torch.Tensor]:
    cfg = tiny_config(root, *NO_BN, f"train.accum_steps={accum}")
    trainer = Trainer(cfg, tmp_path / f"accum{accum}", hooks=[]).fit()
    assert trainer.step == 3
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_two_micro_batches_give_the_whole_batch_step(tiny_fmnist, tmp_path):
    whole = params_after_three_steps(tiny_fmnist, tmp_path, 1)
    split = params_after_three_steps(tiny_fmnist, tmp_path, 2)
    assert whole.keys() == split.keys()
    moved = 0
    for key in whole:
        torch.testing.assert_close(split[key], whole[key], rtol=1e-5, atol=1e-6, msg=key)
    init = Trainer(tiny_config(tiny_fmnist, *NO_BN), tmp_path / "init", hooks=[]).model
    for key, value in init.state_dict().items():
        moved += not torch.equal(value, whole[key])
    assert moved > 10  # the steps did change the weights


def test_with_batchnorm_the_micro_batch_statistics_differ(tiny_fmnist, tmp_path):
    """With BN the two are different runs (BN normalizes over the chunk): why it is recorded."""
    runs = []
    for accum in (1, 2):
        cfg = tiny_config(tiny_fmnist, "train.max_steps=1", f"train.accum_steps={accum}")
        runs.append(Trainer(cfg, tmp_path / f"bn{accum}", hooks=[]).fit().model.state_dict())
    assert any(not torch.allclose(runs[0][k], runs[1][k]) for k in runs[0] if "weight" in k)


@pytest.mark.parametrize("accum", [0, 3])
def test_accum_steps_that_do_not_divide_the_batch_are_refused(tiny_fmnist, tmp_path, accum):
    with pytest.raises(ConfigError, match="train.accum_steps"):  # 0: the config's range check
        Trainer(tiny_config(tiny_fmnist, f"train.accum_steps={accum}"), tmp_path / "run", hooks=[])
