"""Readers, determinism of the two-view loader, and clear errors on bad data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from common.datasets import DataError, image_folder, load_fashion_mnist, read_idx
from pretrain.config import ConfigError
from pretrain.data import EpochBatchSampler, pretrain_dataset, pretrain_loader
from tests.conftest import tiny_config, write_idx


def test_reads_idx_gz_and_raw(tmp_path):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    write_idx(tmp_path / "a.gz", arr, gz=True)
    write_idx(tmp_path / "a", arr, gz=False)
    assert (read_idx(tmp_path / "a.gz") == arr).all() and (read_idx(tmp_path / "a") == arr).all()


def test_truncated_idx_names_the_file(tmp_path):
    arr = np.zeros((10, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "imgs", arr, gz=False)
    data = (tmp_path / "imgs").read_bytes()
    (tmp_path / "imgs").write_bytes(data[:-100])
    with pytest.raises(DataError, match=r"imgs is truncated"):
        read_idx(tmp_path / "imgs")


def test_fashion_mnist_shapes(tiny_fmnist):
    x, y = load_fashion_mnist(tiny_fmnist, "train")
    assert x.shape == (512, 1, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (512,) and y.dtype == torch.int64


def test_missing_data_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as e:
        load_fashion_mnist(tmp_path / "nowhere")
    assert "does not exist" in str(e.value) and "apt-get install dataset-fashion-mnist" in str(
        e.value
    )
    assert "data.root" in str(e.value)


def test_missing_file_in_data_folder(tiny_fmnist):
    (tiny_fmnist / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_fashion_mnist(tiny_fmnist, "test")


def _tree(root, n=3):
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((40, 40, 3), 30 * i, np.uint8)).save(root / cls / f"{i}.jpg")
    return root


def test_image_folder_names_a_corrupt_file(tmp_path):
    root = _tree(tmp_path / "imgs")
    bad = root / "dog" / "1.jpg"
    bad.write_bytes(b"this is not a jpeg")
    folder = image_folder(root)
    assert len(folder) == 6
    with pytest.raises(DataError, match=r"corrupt or truncated image .*dog/1\.jpg"):
        folder[4]


def test_image_folder_names_a_truncated_file(tmp_path):
    root = _tree(tmp_path / "imgs")
    bad = root / "cat" / "2.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cat/2\.jpg"):
        image_folder(root)[2]


def test_missing_image_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        image_folder(tmp_path / "imagenet" / "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        image_folder(tmp_path / "empty")


def test_sampler_is_seeded_resumable_and_splits_the_global_batch():
    full = list(EpochBatchSampler(100, 20, seed=3, total_steps=12))
    assert len(full) == 12 and all(len(k.indices) == 20 for k in full)
    assert sorted(i for k in full[:5] for i in k.indices) == list(range(100))  # one epoch
    assert full[5].indices != full[0].indices  # a new permutation each epoch
    assert list(EpochBatchSampler(100, 20, seed=3, start_step=7, total_steps=12)) == full[7:]
    ranks = [
        list(EpochBatchSampler(100, 20, 3, total_steps=12, rank=r, world_size=2)) for r in (0, 1)
    ]
    for step in range(12):
        assert ranks[0][step].indices + ranks[1][step].indices == full[step].indices
    with pytest.raises(ConfigError, match="divide evenly"):
        EpochBatchSampler(100, 21, 3, world_size=2)


def test_batches_do_not_depend_on_the_number_of_workers(tiny_fmnist):
    cfg = tiny_config(tiny_fmnist)
    ds = pretrain_dataset(cfg)
    batches = {}
    for workers in (0, 2):
        cfg.data.num_workers = workers
        batches[workers] = list(pretrain_loader(cfg, ds, 0, 4))
    for (a1, a2), (b1, b2) in zip(batches[0], batches[2], strict=True):
        assert torch.equal(a1, b1) and torch.equal(a2, b2)
    a1, a2 = batches[0][0]
    assert a1.shape == (64, 1, 28, 28) and not torch.equal(a1, a2)  # two different views


def test_grayscale_is_repeated_for_three_channel_backbones(tiny_fmnist):
    cfg = tiny_config(tiny_fmnist, "model.in_chans=3")
    x1, _ = next(iter(pretrain_loader(cfg, pretrain_dataset(cfg), 0, 1)))
    assert x1.shape == (64, 3, 28, 28) and torch.equal(x1[:, 0], x1[:, 2])


def test_imagefolder_pretraining_with_the_knn_monitor(tmp_path):
    from pretrain.config import load_config
    from pretrain.hooks import KnnMonitor, MetricsLog
    from pretrain.train import Trainer
    from tests.conftest import TINY

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 4)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (40, 48, 3), np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    overrides = [o for o in TINY if not o.startswith("train.batch_size")]
    cfg = load_config(
        "simsiam_resnet50_in1k",
        [
            *overrides,
            "model.name='resnet18'",
            "model.in_chans=3",
            "train.batch_size=8",
            "data.img_size=32",
            f"data.root='{tmp_path / 'train'}'",
            f"data.val_root='{tmp_path / 'val'}'",
            "monitor.knn_bank=16",
            "monitor.knn_queries=8",
        ],
    )
    trainer = Trainer(cfg, tmp_path / "run", [KnnMonitor(), MetricsLog()]).fit()
    assert trainer.step == 6  # 2 epochs of 24 // 8
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert sum('"knn_h"' in r for r in rows) == 3  # at init and after each epoch


def test_loader_workers_are_capped_at_the_cpus_available(tiny_fmnist, monkeypatch):
    cfg = tiny_config(tiny_fmnist, "data.num_workers=8")
    dataset = pretrain_dataset(cfg)
    monkeypatch.setattr("pretrain.data.available_cpus", lambda: 2)
    assert pretrain_loader(cfg, dataset, 0, 4).num_workers == 2
    cfg.data.num_workers = 1
    assert pretrain_loader(cfg, dataset, 0, 4).num_workers == 1


def test_available_cpus_is_the_affinity_mask(monkeypatch):
    import os

    from common.system import available_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5, 7}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert available_cpus() == 3  # the CPUs granted, not the machine's 64

    def unsupported(pid):
        raise OSError("not here")

    monkeypatch.setattr(os, "sched_getaffinity", unsupported, raising=False)
    assert available_cpus() == 64
