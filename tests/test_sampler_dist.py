"""The step-keyed sampler across ranks: every sample once per epoch, exact mid-epoch resume."""

from __future__ import annotations

import pytest
import torch

from common.small_augment import SmallImageAugment
from pretrain.config import ConfigError
from pretrain.data import EpochBatchSampler


def batches(n: int, gb: int, world: int, start: int = 0, total: int | None = None):
    """Per step, the union of the ranks' slices, in rank order."""
    samplers = [
        EpochBatchSampler(
            n, gb, seed=3, start_step=start, total_steps=total, rank=r, world_size=world
        )
        for r in range(world)
    ]
    return [sum((k.indices for k in keys), ()) for keys in zip(*samplers, strict=True)]


@pytest.mark.parametrize("world", [1, 2, 4])
def test_every_sample_exactly_once_per_epoch_across_ranks(world):
    n, gb = 96, 24  # 4 steps per epoch, no tail
    steps = batches(n, gb, world, total=3 * 4)
    for epoch in range(3):
        seen = [i for b in steps[epoch * 4 : (epoch + 1) * 4] for i in b]
        assert sorted(seen) == list(range(n))  # once each, none missing
    assert steps[:4] != steps[4:8]  # a new order every epoch


def test_ranks_split_the_same_global_batch_as_one_process():
    assert batches(100, 20, 4, total=10) == batches(100, 20, 1, total=10)
    keys = list(EpochBatchSampler(100, 20, 3, total_steps=1, rank=2, world_size=4))
    assert (keys[0].offset, keys[0].total, len(keys[0].indices)) == (10, 20, 5)


def test_a_dropped_tail_is_never_seen_twice_in_an_epoch():
    n, gb = 100, 24  # 4 steps per epoch, 4 samples left out each epoch
    for epoch_batches in (batches(n, gb, 2, total=8)[:4], batches(n, gb, 2, total=8)[4:]):
        seen = [i for b in epoch_batches for i in b]
        assert len(seen) == len(set(seen)) == 96


@pytest.mark.parametrize("start", [1, 3, 5, 6])
def test_resuming_mid_epoch_neither_repeats_nor_skips(start):
    full = batches(96, 24, 2, total=8)
    resumed = batches(96, 24, 2, start=start, total=8)
    assert full[:start] + resumed == full
    second_epoch = (full[:start] + resumed)[4:8]
    assert sorted(i for b in second_epoch for i in b) == list(range(96))


def test_a_global_batch_that_does_not_split_is_a_clear_error():
    with pytest.raises(ConfigError, match="divide evenly over 3 processes"):
        EpochBatchSampler(96, 32, 0, world_size=3)


def test_an_image_gets_the_same_view_on_whichever_rank_augments_it():
    images = torch.randint(0, 255, (8, 1, 28, 28), dtype=torch.uint8)
    aug = SmallImageAugment()
    whole = aug(images, torch.Generator().manual_seed(5))
    halves = [aug(images[o : o + 4], torch.Generator().manual_seed(5), o, 8) for o in (0, 4)]
    assert torch.equal(torch.cat(halves), whole)
