"""The main job's report: full kNN of the trained encoder beside two same-run baselines.

Protocol: the 60,000 Fashion-MNIST training images are the bank, the 10,000 test images the
queries; backbone features, cosine similarity, k 20, weighted vote with T 0.07. Baselines:
the same architecture at its random initialization (the same seed, hence the very weights the
run started from) and raw pixels (normalized, flattened).
"""

from __future__ import annotations

import time

import torch

from common.knn import embed, knn_top1
from common.transforms import normalize_small
from pretrain.config import Config
from pretrain.data import labelled_split
from pretrain.methods import build_method
from records.methods import display_name

Split = tuple[torch.Tensor, torch.Tensor]  # uint8 images (N, 1, 28, 28), labels (N,)


@torch.no_grad()
def backbone_knn(
    backbone: torch.nn.Module,
    cfg: Config,
    train: Split,
    test: Split,
    name: str,
    device: torch.device,
) -> float:
    """kNN top-1 (%) of a backbone's features: ``train`` is the bank, ``test`` the queries."""
    backbone.eval()

    def prep(x: torch.Tensor) -> torch.Tensor:
        return normalize_small(x, cfg.data.img_size, cfg.model.in_chans).to(
            device, memory_format=torch.channels_last
        )

    bank = embed(backbone, train[0], prep, desc=f"{name}: bank")
    query = embed(backbone, test[0], prep, desc=f"{name}: queries")
    return knn_top1(query, test[1], bank, train[1], cfg.eval.knn_k, cfg.eval.knn_t)


def raw_pixel_knn(cfg: Config, train: Split, test: Split) -> float:
    """kNN top-1 (%) on normalized, flattened pixels."""

    def flat(x: torch.Tensor) -> torch.Tensor:
        return normalize_small(x, x.shape[-1], 1).flatten(1)  # (N, H*W)

    return knn_top1(
        flat(test[0]), test[1], flat(train[0]), train[1], cfg.eval.knn_k, cfg.eval.knn_t
    )


def final_knn_report(model: torch.nn.Module, cfg: Config, device: torch.device) -> dict:
    """kNN top-1 (%) of the trained backbone, the same backbone at init, and raw pixels."""
    started = time.perf_counter()
    train, test = labelled_split(cfg, "train"), labelled_split(cfg, "test")
    released = getattr(model, "released_backbone", model.backbone)  # DINO's: the teacher
    trained = backbone_knn(released, cfg, train, test, "trained", device)
    torch.manual_seed(cfg.train.seed)  # the Trainer seeds the same way before building
    init = build_method(cfg).backbone.to(device, memory_format=torch.channels_last)
    random_init = backbone_knn(init, cfg, train, test, "random init", device)
    pixels = raw_pixel_knn(cfg, train, test)
    return {
        "method": cfg.method.name,
        "protocol": {
            "bank": f"fashion_mnist train ({len(train[1])})",
            "queries": f"fashion_mnist test ({len(test[1])})",
            "features": f"{'teacher ' if released is not model.backbone else ''}backbone, "
            "l2-normalized",
            "k": cfg.eval.knn_k,
            "t": cfg.eval.knn_t,
        },
        "knn_top1": {"trained": trained, "random_init": random_init, "raw_pixels": pixels},
        "gain_over_random_init": trained - random_init,
        "seconds": time.perf_counter() - started,
    }


def format_report(report: dict) -> str:
    r = report["knn_top1"]
    p = report["protocol"]
    name = display_name(report.get("method", "simsiam"))
    lines = [
        f"kNN top-1, k={p['k']} T={p['t']}, bank {p['bank']}, queries {p['queries']}:",
        f"  {name + ' (trained)':<26}{r['trained']:6.2f}%",
        f"  same arch, random init    {r['random_init']:6.2f}%",
        f"  raw pixels                {r['raw_pixels']:6.2f}%",
        f"  gain over random init     {report['gain_over_random_init']:+6.2f} points",
    ]
    return "\n".join(lines)
