"""One torchvision-engine detection iteration on the CPU: where its time goes, and seconds per
iteration before and after, side by side in one run.

Setting (issue: "VOC at batch 16, short side 128, with the 0.7M-parameter backbone took
55–105 s per iteration"): ``voc_det``'s defaults (the MoCo protocol: Faster R-CNN C4, 512
RoIs per image, RPN 12000 / 2000 proposals before / after NMS, RoIAlign 14×14), batch 16,
``--short-side 128``, on the Fashion-MNIST recipe's encoder (ResNet-18 width 16, 1-channel
3×3 stride-2 stem; ``pretrain/recipes/simsiam_resnet18_fmnist.toml``'s ``[model]``, at a
seeded random init: speed does not depend on the weights). The batch is VOC-shaped: 16
random 500×375 images with 1–3 boxes each, 20 classes, built in memory (loading 16 JPEGs is
not what is measured).

Sides, alternating ``--rounds`` times on the same batch from the same initial weights (the
engine's own ``train_step``: forward, backward, SGD step):

- ``before``: the detector as the engine ran it at d805989 (default NCHW layout);
- ``now``: the layout the engine uses now (``engine_torchvision.memory_format``);
- with ``--rois N``, a third side: ``now`` with ``box_batch_size_per_image=N`` — a protocol
  change (recorded in a run's protocol), shown for scale, not a speed-up of the same thing.

Printed: each round's wall seconds per iteration, the medians, the median per-round ratio
before / now, one iteration's FLOPs by part (``FlopCounterMode``) and, for ``now``, where the
time goes (forward time of each part by module hooks, backward by operator from
``torch.profiler``).

    python benchmarks/detection_step.py [--rounds 3] [--threads N] [--rois 64] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tomllib
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from transfer import tasks
from transfer.detection import engine_torchvision as tv
from transfer.detection.task import build, schedule_of
from transfer.models import LoadedModel
from transfer.run_records import hardware

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "pretrain" / "recipes" / "simsiam_resnet18_fmnist.toml"
PARTS = ("backbone", "rpn", "roi_heads.box_roi_pool", "roi_heads.box_head")


def recipe_model() -> LoadedModel:
    """The Fashion-MNIST recipe's encoder at a seeded random init, frozen, as transfer loads."""
    spec = BackboneSpec(**tomllib.loads(RECIPE.read_text())["model"])
    torch.manual_seed(0)
    encoder = Encoder.from_spec(spec, ssl={"method": "simsiam"}).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return LoadedModel(encoder, "fmnist-recipe-random", None, "benchmark", {})


def voc_batch(n: int, channels: int, seed: int = 0) -> tuple[list, list]:
    """``n`` 500×375 images in [0, 1] and their targets (1–3 boxes, labels 1..20)."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(n):
        images.append(torch.rand(channels, 375, 500, generator=g))
        k = int(torch.randint(1, 4, (1,), generator=g))
        wh = torch.randint(40, 200, (k, 2), generator=g).float()
        xy = torch.rand(k, 2, generator=g) * (torch.tensor([500.0, 375.0]) - wh)
        boxes = torch.cat([xy, xy + wh], 1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, 21, (k,), generator=g)})
    return images, targets


def detector(model: LoadedModel, overrides: list[str], now: bool) -> Any:
    """A fresh detector (same seed, same initial weights) as the engine builds it; placed on
    the CPU as the engine places it now (``now``) or as it did at d805989 (default layout)."""
    module = tasks.get("voc_det")
    opts = tasks.parse_options(module.Options, overrides)
    sched = schedule_of(opts)
    torch.manual_seed(0)
    det = build(model, opts, 20, False, sched)
    det = (tv.place(det, torch.device("cpu")) if now else det).train()
    det.transform.min_size, det.transform.max_size = tuple(sched.train_sizes), sched.max_size
    params = [p for p in det.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=sched.base_lr, momentum=0.9, weight_decay=1e-4)
    return det, opt, sched


def step_seconds(side: tuple, images: list, targets: list) -> float:
    det, opt, sched = side
    started = time.perf_counter()
    tv.train_step(det, opt, images, targets, sched.lr_at(200))  # past warmup
    return time.perf_counter() - started


def flops_by_part(det: Any, images: list, targets: list) -> dict[str, float]:
    """GFLOP of one iteration (forward + backward), in all and per part."""
    with FlopCounterMode(display=False, depth=3) as counter:
        sum(det(images, targets).values()).backward()
    det.zero_grad(set_to_none=True)
    counts = counter.get_flop_counts()
    out = {"total": counter.get_total_flops() / 1e9}
    for part in PARTS:
        key = "FasterRCNN." + part
        out[part] = sum(counts.get(key, {}).values()) / 1e9
    return out


def _start(spent: dict[str, float], part: str) -> Any:
    def hook(module: Any, args: Any) -> None:
        spent[part] = -time.perf_counter()

    return hook


def _stop(spent: dict[str, float], part: str) -> Any:
    def hook(module: Any, args: Any, output: Any) -> None:
        spent[part] += time.perf_counter()

    return hook


def where_time_goes(det: Any, images: list, targets: list) -> dict[str, Any]:
    """Forward seconds per part (module hooks) and backward seconds per operator."""
    spent: dict[str, float] = {}
    handles = []
    for part in PARTS:
        module = det.get_submodule(part)
        handles.append(module.register_forward_pre_hook(_start(spent, part)))
        handles.append(module.register_forward_hook(_stop(spent, part)))
    started = time.perf_counter()
    loss = sum(det(images, targets).values())
    forward = time.perf_counter() - started
    for h in handles:
        h.remove()
    started = time.perf_counter()
    with torch.profiler.profile() as prof:
        loss.backward()
    backward = time.perf_counter() - started
    det.zero_grad(set_to_none=True)
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:6]
    return {
        "forward_s": forward,
        "forward_parts_s": spent,
        "backward_s": backward,
        "backward_ops_s": {e.key: e.self_cpu_time_total / 1e6 for e in ops},
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--short-side", type=int, default=128)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--rois", type=int, help="also time box_batch_size_per_image=N (protocol change)"
    )
    p.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = recipe_model()
    channels = int(model.preprocess.get("input_size", [3])[0])
    base = [f"batch_size={args.batch}", f"short_side={args.short_side}"]
    sides = {"before": detector(model, base, False), "now": detector(model, base, True)}
    if args.rois:
        rois = [*base, f"box_batch_size_per_image={args.rois}"]
        sides[f"now, {args.rois} RoIs/image"] = detector(model, rois, True)
    images, targets = voc_batch(args.batch, channels)
    print(f"detection iteration: voc_det defaults, batch {args.batch}, short side "
          f"{args.short_side}, {torch.get_num_threads()} threads; {hardware()}")  # fmt: skip
    for side in sides.values():  # warm-up: oneDNN primitives, allocator
        step_seconds(side, images, targets)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.rounds):
        for name, side in sides.items():
            times[name].append(step_seconds(side, images, targets))
        line = "  ".join(f"{n} {t[-1]:.2f} s/it" for n, t in times.items())
        print(f"round {r + 1}: {line}", flush=True)
    ratios = [b / n for b, n in zip(times["before"], times["now"], strict=True)]
    figures: dict[str, Any] = {
        "median_s_per_it": {n: statistics.median(t) for n, t in times.items()},
        "median_ratio_before_over_now": statistics.median(ratios),
        "rounds": times,
        "gflop": flops_by_part(sides["now"][0], images, targets),
        "now_where_time_goes": where_time_goes(sides["now"][0], images, targets),
        "threads": torch.get_num_threads(),
    }
    medians = ", ".join(f"{n} {v:.2f}" for n, v in figures["median_s_per_it"].items())
    print(f"median s/it: {medians}")
    print(f"median ratio before/now: {figures['median_ratio_before_over_now']:.2f}")
    print("GFLOP per iteration: " + ", ".join(f"{k} {v:.1f}" for k, v in figures["gflop"].items()))
    w = figures["now_where_time_goes"]
    print(f"now, one iteration: forward {w['forward_s']:.2f} s ("
          + ", ".join(f"{k} {v:.2f}" for k, v in w["forward_parts_s"].items())
          + f"), backward {w['backward_s']:.2f} s (top operators: "
          + ", ".join(f"{k} {v:.2f}" for k, v in w["backward_ops_s"].items()) + ")")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
