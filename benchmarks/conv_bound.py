"""Where a training step's time goes, and the efficiency it could reach if only convs cost time.

The throughput benchmark (``pretrain_throughput.py``) reports the step's achieved GFLOP/s as a
share of the machine's ceiling. This one splits that step, measured in one run:

- **conv forward** and **conv backward** (input and weight gradients): their FLOPs from
  ``torch.utils.flop_counter.FlopCounterMode`` (``aten.convolution`` and
  ``aten.convolution_backward``) and their time from ``torch.profiler`` (the CPU total of
  ``aten::convolution`` and ``aten::convolution_backward``), hence each one's GFLOP/s and share
  of the ceiling;
- **everything else** (BN, ReLU, the heads' matmuls, the loss, the optimizer): its share of the
  step time;
- **conv-only bound**: the step's % of ceiling if everything else took no time at all, i.e.
  all counted FLOPs over the conv time alone. No fusion of the non-conv work can lift the step
  above it; only faster conv kernels can.

The step is ``pretrain_throughput.ours_step``: ``Trainer.train_step`` on the recipe's model, with
the recipe's precision and memory format unless overridden. The ceiling is the same
``measure_ceiling`` as there (a large matmul and a 3×3 channels_last conv, best of 5).

Example::

    python benchmarks/conv_bound.py --img-size 32 --width 32
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pretrain_throughput as tp  # noqa: E402

from pretrain.train import autocast_dtype  # noqa: E402

CONV_OPS = {"forward": "convolution", "backward": "convolution_backward"}


def conv_flops(step: tp.Step) -> dict[str, int]:
    """FLOPs of one step: conv forward, conv backward, and the total."""
    with FlopCounterMode(display=False) as counter:
        step()
    per_op = {
        str(op).removeprefix("aten."): n for op, n in counter.get_flop_counts()["Global"].items()
    }
    out = {part: per_op.get(name, 0) for part, name in CONV_OPS.items()}
    out["total"] = counter.get_total_flops()
    return out


def conv_seconds(step: tp.Step, steps: int) -> dict[str, float]:
    """Profiled seconds per step spent in conv forward and conv backward (CPU totals)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals = {e.key: e.cpu_time_total for e in prof.key_averages()}  # µs over all steps
    return {part: totals.get(f"aten::{name}", 0.0) / 1e6 / steps for part, name in CONV_OPS.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=["simsiam", "byol", "mocov3"], default="simsiam")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--width", type=int, default=None, help="ResNet width; default: the recipe's")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps the default")
    p.add_argument("--steps", type=int, default=5, help="timed steps, and profiled steps")
    p.add_argument("--warmup", type=int, default=3)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    cfg = tp.benchmark_config(
        args.method,
        batch=args.batch,
        img_size=args.img_size,
        width=args.width,
        precision=args.precision,
    )
    amp = autocast_dtype(cfg.train.precision, device)
    size = cfg.data.img_size
    step, _ = tp.ours_step(cfg, device, *tp.random_views(cfg, device, seed=0))
    for _ in range(args.warmup):
        step()

    flops = conv_flops(step)
    step_s = statistics.median(tp.time_steps(step, 1, device) for _ in range(args.steps))
    conv_s = conv_seconds(step, args.steps)
    dtypes = [torch.float32] + ([torch.bfloat16] if amp == torch.bfloat16 else [])
    ceiling = max(c["gflops"] for c in tp.measure_ceiling(device, dtypes))

    def pct(gflops: float) -> float:
        return 100 * gflops / ceiling

    rows = {}
    print(
        f"{args.method}, resnet18 width {cfg.model.width}, {size}px, batch {args.batch}, "
        f"{'bf16' if amp else 'fp32'}, threads {torch.get_num_threads()}; "
        f"ceiling {ceiling:.1f} GFLOP/s"
    )
    print(f"  {'part':<14} {'GFLOP/step':>10} {'ms/step':>8} {'GFLOP/s':>8} {'% ceiling':>10}")
    for part in ("forward", "backward"):
        gf = flops[part] / conv_s[part] / 1e9
        rows[f"conv_{part}_pct"] = pct(gf)
        print(
            f"  {'conv ' + part:<14} {flops[part] / 1e9:>10.2f} {conv_s[part] * 1e3:>8.1f} "
            f"{gf:>8.1f} {pct(gf):>9.1f}%"
        )
    other_s = max(step_s - conv_s["forward"] - conv_s["backward"], 0.0)
    other_flops = flops["total"] - flops["forward"] - flops["backward"]
    print(f"  {'everything else':<14} {other_flops / 1e9:>10.2f} {other_s * 1e3:>8.1f}")
    achieved = pct(flops["total"] / step_s / 1e9)
    bound = pct(flops["total"] / (conv_s["forward"] + conv_s["backward"]) / 1e9)
    rows.update(step_pct=achieved, conv_only_bound_pct=bound, other_share=other_s / step_s)
    print(f"  whole step: {step_s * 1e3:.1f} ms, {achieved:.1f}% of ceiling")
    print(
        f"  non-conv work: {100 * other_s / step_s:.1f}% of the step; "
        f"conv-only bound: {bound:.1f}% of ceiling (bound / 75% target = {bound / 75:.2f})"
    )
    return rows


if __name__ == "__main__":
    main()
