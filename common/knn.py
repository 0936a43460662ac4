"""Weighted kNN classification on l2-normalized features (Wu et al. 2018, InstDisc protocol).

Each query's k nearest bank features by cosine similarity vote for their labels with weight
exp(sim / T); k 20 and T 0.07 are the common settings (DINO's ``eval_knn.py``).
Shared by the training monitors (``pretrain.hooks``) and the transfer kNN task.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from common.progress import progress


@torch.no_grad()
def knn_predict(
    query: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    t: float = 0.07,
    chunk: int = 2048,
) -> torch.Tensor:
    """Predicted labels ``(Q,)`` for l2-normalized ``query (Q, D)`` against ``bank (N, D)``."""
    k = min(k, bank.shape[0])
    preds = []
    for start in range(0, query.shape[0], chunk):
        sim = query[start : start + chunk] @ bank.T  # (q, N)
        top_sim, top_idx = sim.topk(k, dim=1)  # (q, k)
        weights = (top_sim / t).exp()
        votes = torch.zeros(sim.shape[0], num_classes, device=sim.device, dtype=weights.dtype)
        votes.scatter_add_(1, bank_labels[top_idx], weights)  # (q, C)
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_top1(
    query: torch.Tensor,
    query_labels: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    k: int = 20,
    t: float = 0.07,
) -> float:
    """Top-1 accuracy in percent; features are l2-normalized here."""
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    query, bank = F.normalize(query.float(), dim=1), F.normalize(bank.float(), dim=1)
    preds = knn_predict(query, bank, bank_labels, num_classes, k, t)
    return 100.0 * (preds == query_labels).float().mean().item()


@torch.no_grad()
def embed(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    preprocess: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 1024,
    desc: str | None = None,
) -> torch.Tensor:
    """``fn(preprocess(batch))`` over an in-memory image tensor, concatenated on the CPU."""
    out = []
    starts = range(0, len(images), batch_size)
    for start in progress(starts, desc=desc, leave=False, disable=desc is None, unit="batch"):
        out.append(fn(preprocess(images[start : start + batch_size])).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def embed_dataset(
    fn: Callable[[torch.Tensor], torch.Tensor],
    dataset: torch.utils.data.Dataset,
    to_device: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 256,
    num_workers: int = 0,
    desc: str | None = None,
) -> torch.Tensor:
    """``fn`` over a dataset of ``(image tensor, label)`` pairs (e.g. an ImageFolder)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    out = []
    for images, _ in progress(loader, desc=desc, leave=False, disable=desc is None, unit="batch"):
        out.append(fn(to_device(images)).float().cpu())
    return torch.cat(out)
