"""Fixed labelled subsets for low-shot evaluation (1% and 10% of the training set).

A subset is class-balanced (the same share of every class, as SimCLR's ImageNet 1%/10% lists)
and drawn once with a fixed seed; for Fashion-MNIST the index lists ship with the project
(``transfer/subsets/fashion_mnist_{1,10}pct.txt``) so every run uses the very same images.
Records carry the list's sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

SUBSET_DIR = Path(__file__).resolve().parent / "subsets"
FULL_SIZES = {"fashion_mnist": 60_000}  # the shipped lists index these training sets


def balanced_subset(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Sorted indices holding ``round(fraction × count)`` samples of every class."""
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c in labels.unique(sorted=True).tolist():
        idx = (labels == c).nonzero().squeeze(1)  # (n_c,)
        n = max(1, round(fraction * len(idx)))
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:n]])
    return torch.cat(picked).sort().values


def shipped_path(dataset: str, percent: int) -> Path:
    return SUBSET_DIR / f"{dataset}_{percent}pct.txt"


def load_subset(dataset: str, percent: int, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The shipped list when one exists for ``dataset`` and ``labels`` is the full training
    set; otherwise (another dataset, or a smaller stand-in) the balanced subset of ``seed``."""
    path = shipped_path(dataset, percent)
    if path.is_file() and len(labels) == FULL_SIZES.get(dataset):
        return torch.tensor([int(x) for x in path.read_text().split()])
    return balanced_subset(labels, percent / 100.0, seed)


def subset_sha256(indices: torch.Tensor) -> str:
    return hashlib.sha256("\n".join(map(str, indices.tolist())).encode()).hexdigest()


def write_subset(path: Path, indices: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(map(str, indices.tolist())) + "\n")
