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
- **the same bound from the kernels alone**, without the profiler: every convolution the step
  runs (its input, weight, stride and padding, caught by forward hooks) is timed by itself on
  random tensors of its shapes, in the step's dtype and memory format, forward and backward
  (input gradient where the input needs one, weight gradient). A per-shape table shows which
  convolutions cost the most and how fast each runs.

The step is ``step_setup.ours_step``: ``Trainer.train_step`` on the recipe's model, with
the recipe's precision and memory format unless overridden. The ceiling is the throughput
benchmark's ``step_timing.measure_ceiling`` (a large matmul and a 3×3 channels_last conv, best
of 5).

Example::

    python benchmarks/conv_bound.py --img-size 32 --width 32
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.step_setup import add_backbone_args, benchmark_config, ours_step, random_views
from benchmarks.step_timing import Step, measure_ceiling, time_steps
from pretrain.train import autocast_dtype

CONV_OPS = {"forward": "convolution", "backward": "convolution_backward"}


def conv_flops(step: Step) -> dict[str, int]:
    """FLOPs of one step: conv forward, conv backward, and the total."""
    with FlopCounterMode(display=False) as counter:
        step()
    per_op = {
        str(op).removeprefix("aten."): n for op, n in counter.get_flop_counts()["Global"].items()
    }
    out = {part: per_op.get(name, 0) for part, name in CONV_OPS.items()}
    out["total"] = counter.get_total_flops()
    return out


def conv_seconds(step: Step, steps: int) -> dict[str, float]:
    """Profiled seconds per step spent in conv forward and conv backward (CPU totals)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals = {e.key: e.cpu_time_total for e in prof.key_averages()}  # µs over all steps
    return {part: totals.get(f"aten::{name}", 0.0) / 1e6 / steps for part, name in CONV_OPS.items()}


@dataclass(frozen=True)
class ConvCall:
    """One convolution the step runs: its shapes, stride, padding, and whether its input
    needs a gradient (the first conv's input, the image, does not)."""

    x: tuple[int, ...]
    w: tuple[int, ...]
    stride: tuple[int, int]
    padding: tuple[int, int]
    input_grad: bool


def conv_calls(model: nn.Module, step: Step) -> Counter[ConvCall]:
    """The convolutions one step runs, with how many times each runs, via forward hooks."""
    calls: Counter[ConvCall] = Counter()

    def record(conv: nn.Conv2d, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        if conv.groups != 1 or not isinstance(conv.padding, tuple):
            raise ValueError(f"conv_bound times plain convolutions only, not {conv}")
        x = inputs[0]
        calls[
            ConvCall(
                tuple(x.shape),
                tuple(conv.weight.shape),
                tuple(conv.stride),
                tuple(conv.padding),
                x.requires_grad,
            )
        ] += 1

    handles = [m.register_forward_hook(record) for m in model.modules() if type(m) is nn.Conv2d]
    try:
        step()
    finally:
        for h in handles:
            h.remove()
    return calls


def isolated_conv_seconds(
    call: ConvCall, dtype: torch.dtype, memory_format: torch.memory_format, reps: int = 10
) -> tuple[float, float]:
    """Median seconds of one forward and one backward of ``call`` alone, on random tensors."""

    def rand(*shape: int) -> torch.Tensor:
        t = torch.randn(shape, dtype=dtype)
        return t.contiguous(memory_format=memory_format) if t.dim() == 4 else t

    cpu = torch.device("cpu")
    x, w = rand(*call.x), rand(*call.w)
    y = F.conv2d(x, w, stride=call.stride, padding=call.padding)
    grad_y = rand(*y.shape)

    def forward() -> torch.Tensor:
        return F.conv2d(x, w, stride=call.stride, padding=call.padding)

    def backward() -> tuple[torch.Tensor, ...]:
        return torch.ops.aten.convolution_backward(
            grad_y,
            x,
            w,
            None,
            list(call.stride),
            list(call.padding),
            [1, 1],
            False,
            [0, 0],
            1,
            [call.input_grad, True, False],
        )

    def median_seconds(fn: Step) -> float:
        time_steps(fn, 2, cpu)  # warm-up
        return statistics.median(time_steps(fn, 1, cpu) for _ in range(reps))

    return median_seconds(forward), median_seconds(backward)


def conv_call_flops(call: ConvCall) -> tuple[int, int]:
    """FLOPs of one forward and one backward of ``call`` (FlopCounterMode's convention)."""
    n, _, h, w = call.x
    c_out, c_in, kh, kw = call.w
    ho = (h + 2 * call.padding[0] - kh) // call.stride[0] + 1
    wo = (w + 2 * call.padding[1] - kw) // call.stride[1] + 1
    forward = 2 * n * c_out * ho * wo * c_in * kh * kw
    return forward, forward * (2 if call.input_grad else 1)


def kernels_alone(
    model: nn.Module, step: Step, dtype: torch.dtype, memory_format: torch.memory_format
) -> list[dict[str, float | str | int]]:
    """One row per distinct convolution of the step: count, FLOPs and time of its kernels."""
    rows = []
    for call, count in conv_calls(model, step).items():
        fwd_s, bwd_s = isolated_conv_seconds(call, dtype, memory_format)
        fwd_flops, bwd_flops = conv_call_flops(call)
        c_out, c_in, kh, _ = call.w
        rows.append(
            {
                "conv": f"{c_in}->{c_out} {kh}x{kh}/{call.stride[0]} on {call.x[2]}px",
                "count": count,
                "flops": count * (fwd_flops + bwd_flops),
                "forward_s": count * fwd_s,
                "backward_s": count * bwd_s,
                "forward_gflops": fwd_flops / fwd_s / 1e9,
                "backward_gflops": bwd_flops / bwd_s / 1e9,
            }
        )
    return sorted(rows, key=lambda r: -(r["forward_s"] + r["backward_s"]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=["simsiam", "byol", "mocov3"], default="simsiam")
    p.add_argument("--batch", type=int, default=256)
    add_backbone_args(p)
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps the default")
    p.add_argument("--steps", type=int, default=5, help="timed steps, and profiled steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument(
        "--no-kernels", action="store_true", help="skip timing each convolution by itself"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    cfg = benchmark_config(
        args.method,
        batch=args.batch,
        img_size=args.img_size,
        width=args.width,
        stem_stride=args.stem_stride,
        precision=args.precision,
    )
    amp = autocast_dtype(cfg.train.precision, device)
    size = cfg.data.img_size
    step, model = ours_step(cfg, device, *random_views(cfg, device, seed=0))
    for _ in range(args.warmup):
        step()

    flops = conv_flops(step)
    step_s = statistics.median(time_steps(step, 1, device) for _ in range(args.steps))
    conv_s = conv_seconds(step, args.steps)
    dtypes = [torch.float32] + ([torch.bfloat16] if amp == torch.bfloat16 else [])
    ceiling = max(c["gflops"] for c in measure_ceiling(device, dtypes))

    def pct(gflops: float) -> float:
        return 100 * gflops / ceiling

    rows = {}
    print(
        f"{args.method}, resnet18 width {cfg.model.width} stem stride {cfg.model.stem_stride}, "
        f"{size}px, batch {args.batch}, "
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
    if not args.no_kernels:
        memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        table = kernels_alone(model, step, amp or torch.float32, memory_format)
        print("\nEach convolution of the step timed by itself (random tensors, no profiler):")
        print(
            f"  {'convolution':<26} {'calls':>5} {'fwd ms':>7} {'bwd ms':>7} "
            f"{'fwd % ceil':>10} {'bwd % ceil':>10}"
        )
        for r in table:
            print(
                f"  {r['conv']:<26} {r['count']:>5} {r['forward_s'] * 1e3:>7.1f} "
                f"{r['backward_s'] * 1e3:>7.1f} {pct(r['forward_gflops']):>9.1f}% "
                f"{pct(r['backward_gflops']):>9.1f}%"
            )
        kernel_s = sum(r["forward_s"] + r["backward_s"] for r in table)
        kernel_flops = sum(r["flops"] for r in table)
        kernels_bound = pct(flops["total"] / kernel_s / 1e9)
        rows.update(kernels_alone_bound_pct=kernels_bound, kernels_alone_conv_flops=kernel_flops)
        print(
            f"  kernels alone: {kernel_s * 1e3:.1f} ms per step for {kernel_flops / 1e9:.2f} "
            f"conv GFLOP; conv-only bound {kernels_bound:.1f}% of ceiling"
        )
    return rows


if __name__ == "__main__":
    main()
