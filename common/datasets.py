"""Labelled-data readers shared by pretraining and transfer.

Fashion-MNIST IDX files (Debian's ``dataset-fashion-mnist`` installs them in
``/usr/share/datasets/fashion-mnist``) and ImageFolder trees in the ImageNet layout
(``root/<class>/<image>``), each failing with one ``DataError`` line that names the file and
the fix.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from common.errors import UserError
from common.images import ImageError, open_image

FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FMNIST_HELP = (
    "install it with 'sudo apt-get install dataset-fashion-mnist' (files land in "
    "/usr/share/datasets/fashion-mnist), or point data.root=PATH at a folder holding the four "
    "IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)"
)


class DataError(UserError, RuntimeError):
    """Data that is missing or unreadable; the message names the file and the fix.

    Built from one string, so a DataLoader worker's re-raise keeps its type (and run_cli its
    one-line message)."""


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array, validating its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}; the file is corrupt or truncated") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(
            f"{path} is truncated: header says {shape} ({int(np.prod(shape))} bytes), "
            f"found {body.size} bytes"
        )
    return body.reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataError(f"Fashion-MNIST file {stem}[.gz] not found in {root}; {FMNIST_HELP}")


def load_fashion_mnist(root: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, 28, 28)`` uint8 and labels ``(N,)`` int64 of one split."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Fashion-MNIST folder {root} does not exist; {FMNIST_HELP}")
    images_file, labels_file = (_find(root, s) for s in FMNIST_FILES[split])
    images = read_idx(images_file)
    labels = read_idx(labels_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{images_file} and {labels_file} disagree: "
            f"images {images.shape}, labels {labels.shape}"
        )
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def load_image(path: str) -> Image.Image:
    """8-bit RGB; 16-bit and float images scaled, not clipped (``common.images``)."""
    try:
        return open_image(path, "RGB")
    except ImageError as e:
        raise DataError(str(e)) from e


def image_folder(root: str | Path, transform: Callable | None = None) -> ImageFolder:
    """An ImageNet-layout folder (``root/<class>/<image>``); unreadable files name themselves."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist; set data.root to a folder laid out as "
            "root/<class>/<image> (the ImageNet train/ layout)"
        )
    try:
        return ImageFolder(str(root), transform=transform, loader=load_image)
    except FileNotFoundError as e:
        raise DataError(f"no images found under {root} ({e}); expected root/<class>/<image>") from e
