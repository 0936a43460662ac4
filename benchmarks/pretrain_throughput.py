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
import json
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from benchmarks import lightly_steps as ls
from benchmarks.step_setup import (
    add_backbone_args,
    benchmark_config,
    num_params,
    ours_step,
    random_views,
)
from benchmarks.step_timing import count_flops, device_name, measure_ceiling, sync, time_steps
from pretrain.train import autocast_dtype


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
    if ls.LIGHTLY_MISSING is not None:
        raise SystemExit(
            "lightly is not installed: pip install -e '.[bench]'"
        ) from ls.LIGHTLY_MISSING
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
        theirs, lightly_model = ls.lightly_step(cfg, device, x1, x2, lightly_amp)
    else:
        theirs, lightly_model = ls.lightly_ema_step(cfg, device, x1, x2, lightly_amp, args.method)
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
            "lightly": ls.LIGHTLY_VERSION,
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
