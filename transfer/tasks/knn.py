"""kNN classification on frozen features: cosine similarity, the k nearest training features
vote with weight exp(sim / T) (Wu et al. 2018; k 20 and 200, T 0.07 as the common protocols,
docs/recipes.md, "Evaluation protocols"). Batched top-k on the device (``common/knn.py``).
Beside the encoder's features, the same vote on the normalized, flattened pixels
(``raw_pixels_top1_k<k>``, fashion_mnist: data held as image tensors) gives the model-free
baseline of the kNN board."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from common.knn import knn_predict
from common.transforms import normalize_small
from transfer.artifacts import prediction_table, top1_percent
from transfer.features import FMNIST_ROOT, DataSpec, load_split
from transfer.models import LoadedModel
from transfer.tasks import OptionError, RunContext, TaskOutput

NAME = "knn"


@dataclass
class Options:
    dataset: str = "fashion_mnist"
    data_root: str = FMNIST_ROOT
    ks: tuple = (20, 200)
    t: float = 0.07


def raw_pixels(spec: DataSpec, device: torch.device) -> tuple[torch.Tensor, ...] | None:
    """(bank, queries): normalized, flattened, l2-normalized pixels of data held as image
    tensors (fashion_mnist), in the splits' order; None for an image folder."""
    bank, _ = load_split(spec, "train", 0, 1)
    query, _ = load_split(spec, "test", 0, 1)
    if not isinstance(bank, torch.Tensor) or not isinstance(query, torch.Tensor):
        return None
    flat = [normalize_small(x, x.shape[-1], 1).flatten(1) for x in (bank, query)]
    return tuple(F.normalize(x.to(device), dim=1) for x in flat)


def run(model: LoadedModel, opts: Options, ctx: RunContext) -> TaskOutput:
    spec = DataSpec(opts.dataset, opts.data_root)
    bank, bank_labels = ctx.cache.get(model, spec, "train")
    query, query_labels = ctx.cache.get(model, spec, "test")
    device = ctx.device
    bank_n = F.normalize(bank.to(device), dim=1)  # (N, D)
    query_n = F.normalize(query.to(device), dim=1)  # (Q, D)
    too_many = [int(k) for k in opts.ks if int(k) > len(bank_labels)]
    if too_many:  # common.knn would vote with the whole bank: not the k the record states
        raise OptionError(
            f"knn option ks={tuple(opts.ks)!r}: k={too_many[0]} exceeds the bank's "
            f"{len(bank_labels)} training images; use k <= {len(bank_labels)}"
        )
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    metrics, columns = {}, {}
    for k in opts.ks:
        preds = knn_predict(query_n, bank_n, bank_labels.to(device), num_classes, int(k), opts.t)
        columns[f"pred_k{k}"] = preds.cpu()
        metrics[f"top1_k{k}"] = top1_percent(preds.cpu(), query_labels.cpu())
    raw = raw_pixels(spec, device)  # the model-free baseline, same bank, queries, k and T
    for k in opts.ks if raw else ():
        preds = knn_predict(raw[1], raw[0], bank_labels.to(device), num_classes, int(k), opts.t)
        columns[f"raw_pixels_pred_k{k}"] = preds.cpu()
        metrics[f"raw_pixels_top1_k{k}"] = top1_percent(preds.cpu(), query_labels.cpu())
    protocol = {
        **ctx.cache.protocol(model, spec),
        "bank": spec.describe("train", len(bank_labels)),
        "queries": spec.describe("test", len(query_labels)),
        "similarity": "cosine",
        "vote": "weighted, exp(sim / T)",
        "ks": list(opts.ks),
        "t": opts.t,
    }
    table = prediction_table(query_labels.cpu(), columns)
    return TaskOutput(protocol, metrics, artifacts={"predictions.csv": table})
