"""Shared fixtures: tiny Fashion-MNIST-format data and tiny configs for fast CPU tests."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pretrain.config import Config, load_config

FMNIST = Path(os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist"))
ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "slurm" / "dev-cluster"


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_tiny_fmnist(root: Path, n_train: int = 512, n_test: int = 128, seed: int = 0) -> Path:
    """IDX files of class-dependent synthetic 28×28 images (bars at a class-specific row)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for n, prefix in ((n_train, "train"), (n_test, "t10k")):
        labels = rng.integers(0, 10, size=n)
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c : 5 + 2 * c, 4:24] = 255
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture
def tiny_fmnist(tmp_path: Path) -> Path:
    return make_tiny_fmnist(tmp_path / "fmnist")


TINY = [
    "model.width=8",
    "method.proj_dim=32",
    "method.proj_hidden_dim=32",
    "method.pred_hidden_dim=8",
    "train.batch_size=64",
    "train.epochs=2",
    "train.precision='fp32'",
    "train.log_every=2",
    "train.ckpt_every=4",
    "monitor.every=2",
    "monitor.knn_every_epochs=1",
    "monitor.knn_bank=256",
    "monitor.knn_queries=64",
    "data.num_workers=0",
]


def tiny_config(root: Path, *extra: str) -> Config:
    return load_config("simsiam_resnet18_fmnist", [*TINY, f"data.root={root}", *extra])


@pytest.fixture(scope="module")
def tiny_imagefolder(tmp_path_factory) -> Path:
    """An ImageFolder tree (train/ and val/, 2 classes × 8 RGB 40 px PNGs) for ImageNet recipes."""
    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(8):
                pixels = rng.integers(0, 255, size=(40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture
def real_fmnist() -> Path:
    if not (FMNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(
            f"Fashion-MNIST missing in {FMNIST}: run 'make data' (apt dataset-fashion-mnist)"
        )
    return FMNIST


@pytest.fixture(autouse=True)
def _seeded_and_nondeterministic_after():
    torch.manual_seed(0)
    yield
    torch.use_deterministic_algorithms(False)  # a Trainer with train.deterministic sets it


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node Slurm on 127.0.0.1 for the session, stopped afterwards (by pid)."""
    run = Path(tempfile.mkdtemp(prefix="siamhub-slurm-"))
    os.chmod(run, 0o755)  # munged runs as the munge user and must reach its socket folder
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PYTHONPATH")}
    try:
        proc = subprocess.run(
            ["bash", str(DEV / "start.sh"), str(run)], capture_output=True, text=True, timeout=900
        )
        if proc.returncode != 0:
            pytest.fail(f"the dev Slurm cluster did not start:\n{proc.stdout}\n{proc.stderr}")
        os.environ["SLURM_CONF"] = str(run / "etc" / "slurm.conf")
        # jobs import this checkout (they inherit the environment of sbatch)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
        yield run
    finally:
        subprocess.run(["bash", str(DEV / "stop.sh"), str(run)], capture_output=True, timeout=120)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(run, ignore_errors=True)
