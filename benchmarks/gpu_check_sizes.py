"""The sizes of each ``gpu_check.py`` path: ``GPU`` on the CUDA device, ``DRY`` in the CPU dry run.

``gpu_check_paths.context`` hands one of them to every path as ``Context.sizes``.
"""

from __future__ import annotations

# The dry run shrinks every network: tiny widths and heads, 28-64 px, 2 steps.
TINY_HEADS = ["method.proj_dim=64", "method.proj_hidden_dim=64", "method.pred_hidden_dim=16"]
GPU = {
    "train_steps": {"batch": 256, "warmup": 5, "steps": 20, "width": None},
    "ddp": {"batch": 256, "steps": 30, "ddp_steps": 10, "extra": []},
    "data_pipeline": {
        "images": 640, "sizes": ((500, 375), (375, 500), (500, 333), (640, 480)), "img": 224,
        "batch": 128, "workers": 10, "batches": 20, "steps": 12, "extra": [],
    },
    "detection": {"n_train": 1000, "n_test": 200, "iters": 0, "batch": 0},  # 0: the preset's
    "throughput": ["--model", "resnet50", "--img-size", "224", "--rounds", "3",
                   "--steps-per-round", "4", "--warmup", "2"],
}  # fmt: skip
DRY = {
    "train_steps": {"batch": 16, "warmup": 1, "steps": 2, "width": 8},
    "ddp": {"batch": 32, "steps": 2, "ddp_steps": 2, "extra": ["model.width=8", *TINY_HEADS]},
    "data_pipeline": {
        "images": 32, "sizes": ((80, 60), (60, 80), (64, 48)), "img": 32, "batch": 8,
        "workers": 1, "batches": 3, "steps": 2, "extra": ["model.width=8", *TINY_HEADS],
    },
    "detection": {"n_train": 8, "n_test": 4, "iters": 2, "batch": 2},
    "throughput": ["--model", "resnet50", "--img-size", "32", "--width", "8", "--batch", "8",
                   "--rounds", "2", "--steps-per-round", "1", "--warmup", "1", "--threads", "1"],
}  # fmt: skip
