"""Training-step throughput: this project's SimSiam, BYOL and MoCo v3 against lightly's.

Method
------
Both sides train the same backbone architecture (a fresh ``hub.backbones.create_backbone`` of
the recipe's ``[model]`` spec) on the same pre-generated inputs: one pair of random normalized
tensors ``(B, C, S, S)``, generated once before anything is timed. One *step* is what a
training iteration does: forward both views, the loss, ``zero_grad``, ``backward``, SGD step.

- **ours**: ``pretrain.methods.build_method(cfg)`` and ``pretrain.optim.build_optimizer`` on
  the recipe's config; the step is ``pretrain.train.Trainer.train_step`` itself (called on a
  small holder of model/optimizer/device/precision), so the timed code is the trainer's own,
  with the recipe's precision (autocast) and memory format unless the flags override them.
- **lightly**: lightly's SimSiam as its documentation writes it, ``SimSiamProjectionHead``,
  ``SimSiamPredictionHead`` and ``NegativeCosineSimilarity``, with head sizes adapted to the
  same dimensions (projection features → proj_hidden → proj_dim, predictor proj_dim →
  pred_hidden → proj_dim), plain eager fp32 in the contiguous memory format, and the same SGD
  hyper-parameters (lr = base_lr × B/256, momentum, weight decay).

``--method byol``: lightly's ``BYOLProjectionHead``, ``BYOLPredictionHead``,
``NegativeCosineSimilarity`` (as 2 + 2·D, summed over both view orders, the same objective),
``update_momentum`` on deep-copied target backbone and projector, and lightly's ``LARS`` with the
recipe's lr, momentum, weight decay and trust coefficient (weight decay 0, and with it no
adaptation, for 1-D parameters, as the recipe). ``--method mocov3``: lightly's
``MoCoProjectionHead(num_layers=2, batch_norm=True)`` as projector, ``BYOLPredictionHead`` as
the predictor (MoCo v3's ResNet predictor has no output BN), ``update_momentum``, lightly's
``LARS``; lightly ships no MoCo v3 loss, so that side computes the same InfoNCE × 2τ inline.
Both sides of BYOL and MoCo v3 do the target forward and the EMA update inside the step.

Both are warmed up, then timed alternately: each round times ``--steps-per-round`` steps of
each (which one goes first alternates between rounds), and the report gives every round, the
median images/s of each side and the median of the per-round ratios ours/lightly, which is
robust to the machine's speed drifting during the run. Images/s = batch / step time: a
two-view pair counts as one image (views/s is twice that).

Efficiency: ``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of one training step
(forward + backward; the SGD update's element-wise work is not counted), and achieved GFLOP/s =
FLOPs / median step time. The ceiling is measured in the same run: a large matmul and a
3×3 conv2d in channels_last, in fp32 and, when the run uses bf16, in bf16 too; the best
GFLOP/s of these is the ceiling, and the report gives achieved as a percentage of it.

Examples::

    python benchmarks/pretrain_throughput.py                      # fmnist recipe, CPU
    python benchmarks/pretrain_throughput.py --precision bf16 --threads 2 --json out.json
    python benchmarks/pretrain_throughput.py --model resnet50 --img-size 224 --device cuda
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hub.backbones import create_backbone
from pretrain.config import Config, load_config
from pretrain.methods import build_method
from pretrain.optim import build_optimizer
from pretrain.train import Trainer, autocast_dtype

try:
    import lightly
    from lightly.loss import NegativeCosineSimilarity
    from lightly.models.modules import (
        BYOLPredictionHead,
        BYOLProjectionHead,
        MoCoProjectionHead,
        SimSiamPredictionHead,
        SimSiamProjectionHead,
    )
    from lightly.models.utils import update_momentum
    from lightly.utils.lars import LARS as LightlyLARS

    LIGHTLY_MISSING = None
except ImportError as e:  # the project's `bench` extra; our side runs without it
    LIGHTLY_MISSING = e

RECIPES = {
    ("simsiam", "resnet18"): "simsiam_resnet18_fmnist",
    ("simsiam", "resnet50"): "simsiam_resnet50_in1k",
    ("byol", "resnet18"): "byol_resnet18_fmnist",
    ("byol", "resnet50"): "byol_resnet50_in1k_100ep",
    ("mocov3", "resnet18"): "mocov3_resnet18_fmnist",
    ("mocov3", "resnet50"): "mocov3_resnet50_in1k_100ep",
}
MOMENTUM = 0.99  # a fixed EMA momentum for the timed steps of both sides

Step = Callable[[], Any]


# ---------------------------------------------------------------------------- the two sides


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


class LightlySimSiam(nn.Module):
    """lightly's SimSiam model (its docs' example) on a given backbone."""

    def __init__(self, backbone: nn.Module, proj_hidden: int, proj_dim: int, pred_hidden: int):
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimSiamProjectionHead(backbone.num_features, proj_hidden, proj_dim)
        self.prediction_head = SimSiamPredictionHead(proj_dim, pred_hidden, proj_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(f)
        p = self.prediction_head(z)
        return z.detach(), p


def lightly_step(
    cfg: Config,
    device: torch.device,
    x1: torch.Tensor,
    x2: torch.Tensor,
    amp_dtype: torch.dtype | None,
) -> tuple[Step, nn.Module]:
    """lightly's SimSiam on a fresh backbone of the same spec, contiguous memory format."""
    m = cfg.method
    model = LightlySimSiam(
        create_backbone(cfg.model), m.proj_hidden_dim, m.proj_dim, m.pred_hidden_dim
    ).to(device)
    model.train()
    criterion = NegativeCosineSimilarity()
    o = cfg.optim
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.init_lr, momentum=o.momentum, weight_decay=o.weight_decay
    )

    def step() -> torch.Tensor:
        amp = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
        with amp:
            z1, p1 = model(x1)
            z2, p2 = model(x2)
            loss = 0.5 * (criterion(z1, p2) + criterion(z2, p1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step, model


class LightlyEMA(nn.Module):
    """lightly's BYOL or MoCo v3 model (heads from lightly) with deep-copied target networks."""

    def __init__(self, backbone: nn.Module, method: str, cfg: Config) -> None:
        super().__init__()
        m = cfg.method
        feats = backbone.num_features
        self.backbone = backbone
        if method == "byol":
            self.projection_head = BYOLProjectionHead(feats, m.proj_hidden_dim, m.proj_dim)
        else:
            self.projection_head = MoCoProjectionHead(
                feats, m.proj_hidden_dim, m.proj_dim, num_layers=m.proj_layers, batch_norm=True
            )
        self.prediction_head = BYOLPredictionHead(m.proj_dim, m.pred_hidden_dim, m.proj_dim)
        self.backbone_momentum = copy.deepcopy(backbone).requires_grad_(False)
        self.projection_head_momentum = copy.deepcopy(self.projection_head).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1))


def lightly_ema_step(
    cfg: Config,
    device: torch.device,
    x1: torch.Tensor,
    x2: torch.Tensor,
    amp_dtype: torch.dtype | None,
    method: str,
) -> tuple[Step, nn.Module]:
    """lightly's BYOL / MoCo v3 pieces on a fresh backbone of the same spec, LARS, EMA update."""
    model = LightlyEMA(create_backbone(cfg.model), method, cfg).to(device)
    model.train()
    o = cfg.optim
    online = [p for n, p in model.named_parameters() if "momentum" not in n]
    groups = [
        {"params": [p for p in online if p.ndim > 1], "weight_decay": o.weight_decay},
        {"params": [p for p in online if p.ndim <= 1], "weight_decay": 0.0},
    ]
    optimizer = LightlyLARS(
        groups, lr=cfg.init_lr, momentum=o.momentum, trust_coefficient=o.lars_eta
    )
    criterion = NegativeCosineSimilarity()
    tau = cfg.method.temperature

    def moco_loss(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        labels = torch.arange(q.shape[0], device=q.device)
        return F.cross_entropy(q @ k.T / tau, labels) * (2 * tau)

    def step() -> torch.Tensor:
        amp = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
        with amp:
            p1, p2 = model(x1), model(x2)
            with torch.no_grad():
                t1, t2 = model.forward_momentum(x1), model.forward_momentum(x2)
            if method == "byol":  # 2 − 2cos = 2 + 2·D, summed over both view orders
                loss = 4.0 + 2.0 * (criterion(p1, t2) + criterion(p2, t1))
            else:
                loss = moco_loss(p1.float(), t2.float()) + moco_loss(p2.float(), t1.float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        update_momentum(model.backbone, model.backbone_momentum, MOMENTUM)
        update_momentum(model.projection_head, model.projection_head_momentum, MOMENTUM)
        return loss

    return step, model


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


# ---------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Step, n: int, device: torch.device) -> float:
    """Seconds per step over ``n`` consecutive steps."""
    sync(device)
    started = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return (time.perf_counter() - started) / n


def count_flops(step: Step) -> int:
    """FLOPs of one training step (forward + backward) as FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def best_seconds(fn: Callable[[], Any], device: torch.device, reps: int) -> float:
    """The fastest of ``reps`` timed calls, after two untimed ones."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return min(times)


def measure_ceiling(
    device: torch.device, dtypes: list[torch.dtype], reps: int = 5
) -> list[dict[str, Any]]:
    """GFLOP/s of a large matmul and a channels_last 3×3 conv2d in each dtype."""
    cuda = device.type == "cuda"
    n = 8192 if cuda else 2048
    conv_shape = (128, 256, 56, 56) if cuda else (32, 128, 28, 28)  # N, C (= C_out), H, W
    results = []
    for dtype in dtypes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        secs = best_seconds(lambda a=a, b=b: a @ b, device, reps)
        results.append(
            {"kernel": f"matmul {n}x{n}x{n}", "dtype": str(dtype), "gflops": 2 * n**3 / secs / 1e9}
        )
        bs, c, h, w = conv_shape
        x = torch.randn(conv_shape, device=device, dtype=dtype).to(
            memory_format=torch.channels_last
        )
        weight = torch.randn(c, c, 3, 3, device=device, dtype=dtype).to(
            memory_format=torch.channels_last
        )
        secs = best_seconds(lambda x=x, weight=weight: F.conv2d(x, weight, padding=1), device, reps)
        flops = 2 * bs * c * c * 9 * h * w
        results.append(
            {
                "kernel": f"conv3x3 {c}->{c} on {bs}x{h}x{w} channels_last",
                "dtype": str(dtype),
                "gflops": flops / secs / 1e9,
            }
        )
        del a, b, x, weight
    return results


# ---------------------------------------------------------------------------- main


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} CPUs)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)"


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=["simsiam", "byol", "mocov3"], default="simsiam")
    p.add_argument(
        "--model",
        choices=["resnet18", "resnet50"],
        default="resnet18",
        help="resnet18: the Fashion-MNIST recipe; resnet50: the ImageNet recipe",
    )
    p.add_argument("--batch", type=int, default=256)
    add_backbone_args(p)
    p.add_argument("--img-size", type=int, default=None, help="default: the recipe's")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps-per-round", type=int, default=4)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps of each side first")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps the default")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default=None,
        help="ours: default the recipe's (fmnist: fp32; resnet50: bf16 on CUDA)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ours: default the recipe's (train.channels_last)",
    )
    p.add_argument(
        "--lightly-precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="lightly side (default fp32, plain eager)",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if LIGHTLY_MISSING is not None:
        raise SystemExit("lightly is not installed: pip install -e '.[bench]'") from LIGHTLY_MISSING
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but no CUDA device is visible")

    cfg = benchmark_config(
        args.method,
        args.model,
        batch=args.batch,
        device=args.device,
        img_size=args.img_size,
        width=args.width,
        stem_stride=args.stem_stride,
        precision=args.precision,
        channels_last=args.channels_last,
    )
    ours_amp = autocast_dtype(cfg.train.precision, device)
    lightly_amp = torch.bfloat16 if args.lightly_precision == "bf16" else None
    size, chans, batch = cfg.data.img_size, cfg.model.in_chans, cfg.train.batch_size
    x1, x2 = random_views(cfg, device, args.seed)

    torch.manual_seed(args.seed)
    ours, ours_model = ours_step(cfg, device, x1, x2)
    torch.manual_seed(args.seed)
    if args.method == "simsiam":
        theirs, lightly_model = lightly_step(cfg, device, x1, x2, lightly_amp)
    else:
        theirs, lightly_model = lightly_ema_step(cfg, device, x1, x2, lightly_amp, args.method)
    sides = {"ours": ours, "lightly": theirs}
    params = {"ours": num_params(ours_model), "lightly": num_params(lightly_model)}

    spec = cfg.model
    print(
        f"{args.method} training-step throughput (images/s = batch / step time; a pair = 1 image)"
    )
    print(
        f"  device   {device_name(device)}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"  backbone {spec.name} width {spec.width} stem {spec.stem}/{spec.stem_stride} "
        f"in_chans {chans}, {size}px, batch {batch}; projector "
        f"{cfg.method.proj_hidden_dim}/{cfg.method.proj_dim}, "
        f"predictor {cfg.method.pred_hidden_dim}"
    )
    print(
        f"  ours     precision {'bf16' if ours_amp else 'fp32'}, "
        f"{'channels_last' if cfg.train.channels_last else 'contiguous'}, "
        f"{params['ours'] / 1e6:.3f}M params"
    )
    print(
        f"  lightly  precision {args.lightly_precision}, contiguous, "
        f"{params['lightly'] / 1e6:.3f}M params"
    )

    for step in sides.values():  # warm-up; the FLOP count is one more warm-up step
        for _ in range(args.warmup):
            step()
    flops = {name: count_flops(step) for name, step in sides.items()}
    sync(device)

    rounds = []
    print(f"\n{'round':>5} {'first':>8} {'ours img/s':>12} {'lightly img/s':>14} {'ratio':>7}")
    for r in range(args.rounds):
        order = ["ours", "lightly"] if r % 2 == 0 else ["lightly", "ours"]
        secs = {name: time_steps(sides[name], args.steps_per_round, device) for name in order}
        row = {
            "round": r + 1,
            "first": order[0],
            "ours_s_per_step": secs["ours"],
            "lightly_s_per_step": secs["lightly"],
            "ours_img_s": batch / secs["ours"],
            "lightly_img_s": batch / secs["lightly"],
        }
        row["ratio"] = row["ours_img_s"] / row["lightly_img_s"]
        rounds.append(row)
        print(
            f"{r + 1:>5} {order[0]:>8} {row['ours_img_s']:>12.1f} "
            f"{row['lightly_img_s']:>14.1f} {row['ratio']:>7.3f}"
        )

    med = {
        "ours_img_s": statistics.median(r["ours_img_s"] for r in rounds),
        "lightly_img_s": statistics.median(r["lightly_img_s"] for r in rounds),
        "ratio": statistics.median(r["ratio"] for r in rounds),
    }
    print(
        f"{'median':>14} {med['ours_img_s']:>12.1f} {med['lightly_img_s']:>14.1f} "
        f"{med['ratio']:>7.3f}   (ratio: median of per-round ours/lightly)"
    )

    dtypes = [torch.float32] + (
        [torch.bfloat16] if torch.bfloat16 in (ours_amp, lightly_amp) else []
    )
    ceiling = measure_ceiling(device, dtypes)
    best = max(ceiling, key=lambda c: c["gflops"])
    print("\nCeiling (same run, best of 5):")
    for c in ceiling:
        print(f"  {c['kernel']:<44} {c['dtype']:<15} {c['gflops']:>9.1f} GFLOP/s")

    efficiency = {}
    print("\nEfficiency (FLOPs: FlopCounterMode, forward + backward of one step):")
    print(f"  {'':<8} {'GFLOP/step':>11} {'MFLOP/img':>10} {'GFLOP/s':>9} {'% of ceiling':>13}")
    for name in sides:
        step_s = batch / med[f"{name}_img_s"]
        achieved = flops[name] / step_s / 1e9
        efficiency[name] = {
            "flops_per_step": flops[name],
            "median_s_per_step": step_s,
            "achieved_gflops": achieved,
            "pct_of_ceiling": 100 * achieved / best["gflops"],
        }
        print(
            f"  {name:<8} {flops[name] / 1e9:>11.2f} {flops[name] / batch / 1e6:>10.1f} "
            f"{achieved:>9.1f} {efficiency[name]['pct_of_ceiling']:>12.1f}%"
        )
    print(f"  ceiling: {best['gflops']:.1f} GFLOP/s ({best['kernel']}, {best['dtype']})")

    result = {
        "config": {
            "method_name": args.method,
            "model": args.model,
            "recipe": cfg.recipe,
            "backbone": cfg.to_dict()["model"],
            "method": cfg.to_dict()["method"],
            "batch": batch,
            "img_size": size,
            "in_chans": chans,
            "rounds": args.rounds,
            "steps_per_round": args.steps_per_round,
            "warmup": args.warmup,
            "ours_precision": "bf16" if ours_amp else "fp32",
            "ours_channels_last": cfg.train.channels_last,
            "lightly_precision": args.lightly_precision,
            "params": params,
        },
        "env": {
            "device": device_name(device),
            "torch": torch.__version__,
            "lightly": lightly.__version__,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "rounds": rounds,
        "median": med,
        "ceiling": ceiling,
        "ceiling_best": best,
        "efficiency": efficiency,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return result


if __name__ == "__main__":
    main()
