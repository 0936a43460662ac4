"""The ``fast`` linear probe against separately trained heads of the same grid, in one run.

Method
------
One encoder (``--model``: a run directory, encoder folder or Hub id; default the embedded
default's latest run; ``--random-init`` for its architecture at random init) is frozen and its
Fashion-MNIST features (60,000 train, 10,000 test, whole 28 px image) are extracted once;
that time is reported but belongs to both sides. Then, on the same cached features:

1. **fast**: ``transfer.probe.train_grid``: every head of the grid (``--lrs`` × {no BN, BN},
   SGD momentum 0.9, cosine, ``--epochs`` epochs at batch 256) in one pass, two matmuls per
   BN setting and step (logits, closed-form weight gradient), in fp32, and again with bf16
   matmuls (``precision="bf16"``: what the ``linear`` and ``lowshot`` tasks use by default,
   ``precision=auto``, on hardware with native bf16);
2. **separate**: ``transfer.probe.train_separate``: the same heads, each trained on its own
   with ``torch.optim.SGD`` (same initial weights, batches and schedule).

Both pick the head with the best top-1 on the same held-out 10% of the training set and
report it on the test set. ``--rounds`` alternating rounds (default 3) time each side; printed:
the median wall time of each side, the median per-round ratio separate/fast (target
≥ 8×), the two picked heads' test top-1 and their difference (target: fast within 1 point of
the best separate head), and the largest per-head difference.

    python benchmarks/linear_probe.py [--model RUN_DIR] [--epochs 10] [--threads N] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from transfer.features import FMNIST_ROOT, DataSpec, FeatureCache
from transfer.models import ModelError, latest_run, load_model
from transfer.probe import (
    GridSpec,
    grid_accuracy,
    head_accuracy,
    held_out_split,
    train_grid,
    train_separate,
)
from transfer.run_records import hardware


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--data-root", default=FMNIST_ROOT)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lrs", default="0.001,0.003,0.01,0.03,0.1,0.3,1,3")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (median)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.model is None and not args.random_init:
        try:
            latest_run()
        except ModelError:
            args.random_init = True
            print("no pretraining run under runs/: the recipe's architecture at random init")
    model = load_model(args.model, random_init=args.random_init)
    cache = FeatureCache(torch.device("cpu"))
    spec = DataSpec("fashion_mnist", args.data_root)
    t0 = time.perf_counter()
    feats, labels = cache.get(model, spec, "train")
    test = cache.get(model, spec, "test")
    extract_s = time.perf_counter() - t0
    grid = GridSpec(lrs=tuple(float(x) for x in args.lrs.split(",")), epochs=args.epochs)
    fit, val = held_out_split(len(labels), 0.1, grid.seed)
    classes = int(labels.max()) + 1

    bf16 = replace(grid, precision="bf16")  # the same grid, matmuls in bf16
    x_fit, y_fit = feats[fit], labels[fit]
    times: dict[str, list[float]] = {"fast": [], "bf16": [], "separate": []}
    for r in range(args.rounds):  # alternating rounds; the ratios are per-round medians
        order = ["fast", "bf16", "separate"] if r % 2 == 0 else ["separate", "bf16", "fast"]
        for side in order:
            t0 = time.perf_counter()
            if side == "fast":
                heads = train_grid(x_fit, y_fit, grid, classes, progress=False)
            elif side == "bf16":
                heads16 = train_grid(x_fit, y_fit, bf16, classes, progress=False)
            else:
                separate = train_separate(x_fit, y_fit, grid, classes, progress=False)
            times[side].append(time.perf_counter() - t0)
    fast_s, bf16_s, separate_s = (statistics.median(times[k]) for k in times)
    sep = times["separate"]
    speedup = statistics.median(s / f for s, f in zip(sep, times["fast"], strict=True))
    speedup16 = statistics.median(s / f for s, f in zip(sep, times["bf16"], strict=True))
    fast_val = grid_accuracy(heads, feats[val], labels[val]).tolist()
    fast_test = grid_accuracy(heads, *test).tolist()
    bf16_val = grid_accuracy(heads16, feats[val], labels[val]).tolist()
    bf16_test = grid_accuracy(heads16, *test).tolist()
    sep_val = [head_accuracy(h, feats[val], labels[val]) for h in separate]
    sep_test = [head_accuracy(h, *test) for h in separate]

    best_fast = max(range(len(fast_val)), key=fast_val.__getitem__)
    best_bf16 = max(range(len(bf16_val)), key=bf16_val.__getitem__)
    best_sep = max(range(len(sep_val)), key=sep_val.__getitem__)
    result = {
        "model": model.model_id + (" (random init)" if args.random_init else ""),
        "heads": len(grid.heads()),
        "epochs": grid.epochs,
        "extract_seconds": extract_s,
        "fast_seconds": fast_s,
        "separate_seconds": separate_s,
        "rounds": args.rounds,
        "speedup": speedup,
        "fast_test_top1": fast_test[best_fast],
        "separate_test_top1": sep_test[best_sep],
        "fast_head": grid.heads()[best_fast],
        "separate_head": grid.heads()[best_sep],
        "max_per_head_diff": max(abs(a - b) for a, b in zip(fast_test, sep_test, strict=True)),
        "bf16_seconds": bf16_s,
        "bf16_speedup": speedup16,
        "bf16_test_top1": bf16_test[best_bf16],
        "bf16_head": grid.heads()[best_bf16],
        "bf16_max_per_head_diff": max(abs(a - b) for a, b in zip(bf16_test, sep_test, strict=True)),
        "hardware": hardware(),
    }
    print(
        f"{result['heads']} heads × {grid.epochs} epochs on {len(fit)} cached features "
        f"(extraction {extract_s:.1f} s, shared); median of {args.rounds} alternating rounds\n"
        f"  fast (one pass)      {fast_s:8.1f} s   picked {result['fast_head']}: "
        f"test top-1 {result['fast_test_top1']:.2f}\n"
        f"  fast, bf16 matmuls   {bf16_s:8.1f} s   picked {result['bf16_head']}: "
        f"test top-1 {result['bf16_test_top1']:.2f}\n"
        f"  separate heads       {separate_s:8.1f} s   picked {result['separate_head']}: "
        f"test top-1 {result['separate_test_top1']:.2f}\n"
        f"  speed-up {result['speedup']:.1f}× (target ≥ 8×); fast − best separate = "
        f"{result['fast_test_top1'] - result['separate_test_top1']:+.2f} points (target within 1);"
        f" largest per-head difference {result['max_per_head_diff']:.2f}\n"
        f"  bf16: speed-up {result['bf16_speedup']:.1f}×; fast − best separate = "
        f"{result['bf16_test_top1'] - result['separate_test_top1']:+.2f} points; largest "
        f"per-head difference {result['bf16_max_per_head_diff']:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
