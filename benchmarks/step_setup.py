"""The throughput benchmarks' training step on this project's side, its config and its inputs.

``benchmark_config`` loads the recipe of (method, model) with the benchmark's overrides,
``random_views`` generates the one pair of inputs every timed step reuses, and ``ours_step``
builds the model and optimizer as the trainer does and returns ``Trainer.train_step`` on them.
``pretrain_throughput.py`` times it against lightly's; ``conv_bound.py`` splits its time.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.step_timing import Step
from pretrain.config import Config, load_config
from pretrain.methods import build_method
from pretrain.optim import build_optimizer
from pretrain.train import Trainer, autocast_dtype

RECIPES = {
    ("simsiam", "resnet18"): "simsiam_resnet18_fmnist",
    ("simsiam", "resnet50"): "simsiam_resnet50_in1k",
    ("byol", "resnet18"): "byol_resnet18_fmnist",
    ("byol", "resnet50"): "byol_resnet50_in1k_100ep",
    ("mocov3", "resnet18"): "mocov3_resnet18_fmnist",
    ("mocov3", "resnet50"): "mocov3_resnet50_in1k_100ep",
}
MOMENTUM = 0.99  # a fixed EMA momentum for the timed steps of both sides


@dataclass
class TrainerState:
    """What ``Trainer.train_step`` reads from ``self``; lets the benchmark call it unbound."""

    cfg: Config
    model: nn.Module
    forward_model: nn.Module  # the model itself: one process, no DDP wrapper
    optimizer: torch.optim.Optimizer
    device: torch.device
    memory_format: torch.memory_format
    amp_dtype: torch.dtype | None


def ours_step(
    cfg: Config, device: torch.device, x1: torch.Tensor, x2: torch.Tensor
) -> tuple[Step, nn.Module]:
    """This project's SimSiam, built and stepped exactly as the trainer does."""
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model = build_method(cfg).to(device, memory_format=memory_format)
    model.train()
    state = TrainerState(
        cfg=cfg,
        model=model,
        forward_model=model,
        optimizer=build_optimizer(model, cfg),
        device=device,
        memory_format=memory_format,
        amp_dtype=autocast_dtype(cfg.train.precision, device),
    )
    momentum = MOMENTUM if hasattr(model, "update_target") else None
    return (
        lambda: Trainer.train_step(state, x1, x2, momentum=momentum),  # type: ignore[arg-type]
        model,
    )


def benchmark_config(
    method: str,
    model: str = "resnet18",
    *,
    batch: int,
    device: str = "cpu",
    img_size: int | None = None,
    width: int | None = None,
    stem_stride: int | None = None,
    precision: str | None = None,
    channels_last: bool | None = None,
) -> Config:
    """The recipe of (method, model) with the benchmark's overrides; None keeps the recipe's."""
    overrides = [f"train.batch_size={batch}", f"train.device={device}"]
    optional = {
        "data.img_size": img_size,
        "model.width": width,
        "model.stem_stride": stem_stride,
        "train.precision": precision,
    }
    overrides += [f"{key}={value}" for key, value in optional.items() if value]
    if channels_last is not None:
        overrides.append(f"train.channels_last={str(channels_last).lower()}")
    return load_config(RECIPES[(method, model)], overrides)


def random_views(cfg: Config, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One pair of random normalized inputs (B, C, S, S), generated once, before any timing."""
    gen = torch.Generator().manual_seed(seed)
    shape = (cfg.train.batch_size, cfg.model.in_chans, cfg.data.img_size, cfg.data.img_size)
    x1, x2 = (torch.randn(shape, generator=gen).to(device) for _ in range(2))
    return x1, x2


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def add_backbone_args(p: argparse.ArgumentParser) -> None:
    """--width and --stem-stride: the ResNet's shape, shared with the conv-bound benchmark."""
    p.add_argument("--width", type=int, default=None, help="ResNet width; default: the recipe's")
    p.add_argument(
        "--stem-stride",
        type=int,
        choices=[1, 2],
        default=None,
        help="small-image stem stride; 1 is the CIFAR-style ResNet (default: the recipe's)",
    )
