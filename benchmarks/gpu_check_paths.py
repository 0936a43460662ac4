"""The paths of ``gpu_check.py``: each takes a ``Context`` and returns (figures, info).

Figures are finite numbers, info is what they were measured on. A path that cannot run here
raises ``Skip`` with the reason; any other exception fails it. ``gpu_check_sizes.GPU`` /
``DRY`` hold each path's sizes on the CUDA device and in the CPU dry run.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from benchmarks import data_pipeline as dp
from benchmarks.gpu_check_sizes import DRY, GPU
from benchmarks.step_setup import TrainerState, benchmark_config, ours_step, random_views
from benchmarks.step_timing import time_steps
from common.datasets import FMNIST_FILES, DataError, load_fashion_mnist
from pretrain.config import load_config
from pretrain.data import pretrain_loader
from pretrain.methods import build_method
from pretrain.optim import build_optimizer
from pretrain.train import Trainer, autocast_dtype
from slurm import dist as sdist
from slurm.syncbn import CpuSyncBatchNorm, convert_sync_batchnorm
from transfer.run_records import hardware

Figures = dict[str, float]
Info = dict[str, Any]
METHODS = ("simsiam", "byol", "mocov3")
SMALL = "simsiam_resnet18_fmnist"
SYNTHETIC = "fmnist-synthetic"  # the stand-in's folder name


class Skip(Exception):
    """The path cannot run on this machine; the message says why."""


@dataclass(frozen=True)
class Context:
    dry: bool
    device: torch.device
    work: Path  # this path's scratch folder
    fmnist: Path  # Fashion-MNIST IDX files (the real ones, or a synthetic stand-in)
    sizes: dict[str, Any]


def context(dry: bool, work: Path, fmnist: Path) -> Context:
    if not dry and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device is visible (use --dry-run for the CPU rehearsal)")
    work.mkdir(parents=True, exist_ok=True)
    if dry:  # a rehearsal, not a measurement: one thread keeps it fast on a busy small CPU
        torch.set_num_threads(1)
    device = torch.device("cpu") if dry else torch.device("cuda", 0)
    return Context(dry, device, work, fashion_mnist(fmnist, work.parent), DRY if dry else GPU)


def fashion_mnist(root: Path, scratch: Path) -> Path:
    """``root`` when it holds Fashion-MNIST, else synthetic IDX files of the same format (class-
    dependent bars on noise), written once under ``scratch``."""
    try:
        load_fashion_mnist(root, "test")
        return root
    except DataError:
        pass
    out = scratch / SYNTHETIC
    if (out / FMNIST_FILES["test"][1]).is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 4096), ("test", 1024)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 40, (n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 3 + 2 * c : 7 + 2 * c, 5:23] = 230
        for name, array in zip(FMNIST_FILES[split], (images, labels), strict=True):
            header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (out / name).write_bytes(header + array.astype(np.uint8).tobytes())
    return out


def finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise FloatingPointError(f"{name} is {value}")
    return value


def env_info(ctx: Context) -> Info:
    synthetic = ctx.fmnist.name == SYNTHETIC
    fmnist = "synthetic IDX stand-in (no Fashion-MNIST found)" if synthetic else str(ctx.fmnist)
    return {**hardware(), "ran_on": str(ctx.device), "fmnist": fmnist}


# ---------------------------------------------------------------------------- train_steps


def train_steps(ctx: Context) -> tuple[Figures, Info]:
    """Each method's recipe step, bf16 autocast + channels_last, on one pre-generated batch."""
    s = ctx.sizes["train_steps"]
    figures: Figures = {}
    info: Info = {**env_info(ctx), "batch": s["batch"], "timed_steps": s["steps"]}
    for method in METHODS:
        cfg = benchmark_config(
            method, batch=s["batch"], device=ctx.device.type, width=s["width"],
            precision="bf16", channels_last=True,
        )  # fmt: skip
        x1, x2 = random_views(cfg, ctx.device, seed=0)
        torch.manual_seed(0)
        step, model = ours_step(cfg, ctx.device, x1, x2)
        for _ in range(s["warmup"]):
            step()
        seconds = time_steps(step, s["steps"], ctx.device)
        out = step()
        if not model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            raise AssertionError(f"{method}: the backbone is not channels_last")
        info[method] = f"{cfg.recipe}, {cfg.model.name} width {cfg.model.width}, z {out['z'].dtype}"
        figures[f"{method}_ms_per_step"] = 1e3 * seconds
        figures[f"{method}_img_s"] = s["batch"] / seconds
        figures[f"{method}_loss"] = finite(f"{method} loss", out["loss"].item())
    return figures, info


# ---------------------------------------------------------------------------- ddp


def ddp(ctx: Context) -> tuple[Figures, Info]:
    """pretrain/run.py's main under torchrun, then NCCL (gloo in the dry run) + SyncBN + DDP."""
    if "LOCAL_RANK" not in os.environ:
        raise RuntimeError("the ddp path runs under torch.distributed.run (gpu_check.py does so)")
    from pretrain import run as pretrain_run

    s = ctx.sizes["ddp"]
    dev = ctx.device.type
    overrides = [
        f"data.root={ctx.fmnist}", f"train.device={dev}", "train.sync_bn=true",
        f"train.batch_size={s['batch']}", "train.precision=bf16", "eval.final_knn=false",
        "monitor.knn_every_epochs=0", "data.num_workers=1", *s["extra"],
    ]  # fmt: skip
    run_dir = ctx.work / "run"
    run_args = ["--recipe", SMALL, "--run-dir", str(run_dir), *overrides]
    try:
        summary = pretrain_run.main([*run_args, f"train.max_steps={s['steps']}"])
    except SystemExit as e:  # run.py's error path: one "error:" line (in the log), then exit
        raise RuntimeError(f"pretrain/run.py exited with status {e.code}; see the log") from e
    launched = sdist.init_distributed(dev)  # what run.py saw: torchrun's variables, one process
    if summary is None or summary["steps"] != s["steps"]:
        raise AssertionError(f"run.py did not finish its {s['steps']} steps: {summary}")
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise AssertionError("run.py wrote no checkpoints/last.pt")
    figures: Figures = {
        "run_steps": summary["steps"],
        "run_img_s": summary["steps"] * s["batch"] / summary["train_seconds"],
        "run_loss": finite("run.py loss", summary["final"]["loss"]),
    }
    info: Info = {
        **env_info(ctx),
        "run_py": f"launcher {launched.launcher}, world size {summary['world_size']}: one "
        "process, so the Trainer adds no process group, SyncBN or DDP (it does with > 1)",
    }

    backend = "nccl" if dev == "cuda" else "gloo"
    if dev == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend, rank=int(os.environ["RANK"]), world_size=1)
    try:
        figures.update(ddp_steps(ctx, load_config(SMALL, overrides), s["ddp_steps"], info))
        check_collectives(ctx.device)
        info["collectives"] = "the gradient all-gather (all_gather + reduce_scatter), all_reduce"
    finally:
        sdist.shutdown()
    info["process_group"] = f"{backend}, world size 1"
    return figures, info


def ddp_steps(ctx: Context, cfg: Any, steps: int, info: Info) -> Figures:
    """The method with every BatchNorm converted by slurm/syncbn.py, in DDP, stepped."""
    torch.manual_seed(0)
    model = convert_sync_batchnorm(build_method(cfg), ctx.device)
    synced = (nn.SyncBatchNorm, CpuSyncBatchNorm)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or not all(isinstance(m, synced) for m in bns):
        raise AssertionError("convert_sync_batchnorm left a plain BatchNorm in the model")
    memory_format = torch.channels_last
    model = model.to(ctx.device, memory_format=memory_format)
    wrapped = sdist.wrap_ddp(model, ctx.device)  # world size 1: the model itself
    if not isinstance(wrapped, DistributedDataParallel):
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=ids)
    state = TrainerState(
        cfg, model, wrapped, build_optimizer(model, cfg), ctx.device, memory_format,
        autocast_dtype("bf16", ctx.device),
    )  # fmt: skip
    x1, x2 = random_views(cfg, ctx.device, seed=0)

    def step() -> dict[str, torch.Tensor]:
        return Trainer.train_step(state, x1, x2)  # type: ignore[arg-type]

    step()
    seconds = time_steps(step, steps, ctx.device)
    loss = sdist.all_reduce_mean(step()["loss"]).item()
    info["syncbn"] = f"{len(bns)} x {type(bns[0]).__name__}, in {type(wrapped).__name__}"
    return {
        "syncbn_modules": len(bns),
        "ddp_ms_per_step": 1e3 * seconds,
        "ddp_img_s": cfg.train.batch_size / seconds,
        "ddp_loss": finite("DDP loss", loss),
    }


def check_collectives(device: torch.device) -> None:
    """The project's differentiable all-gather (NCCL: all_gather + reduce_scatter_tensor) and a
    plain all-reduce, in the process group: at world size 1 both give back their input."""
    x = torch.arange(6.0, device=device).reshape(3, 2).requires_grad_(True)
    y = sdist._AllGather.apply(x)  # what all_gather(grad=True) calls with > 1 process
    y.backward(torch.full_like(y, 2.0))
    total = torch.ones(4, device=device)
    dist.all_reduce(total)
    ok = torch.equal(y.detach(), x.detach()) and bool((x.grad == 2.0).all())
    if not (ok and bool((total == 1.0).all())):
        raise AssertionError(f"collectives gave {y}, grad {x.grad}, all_reduce {total}")


# ---------------------------------------------------------------------------- data_pipeline


class ReadyViews(Dataset):
    """The synthetic loader's dataset: the same ready views for every batch (no decode, no
    augmentation), through the same DataLoader and workers as the real pipeline."""

    def __init__(self, length: int, views: tuple[torch.Tensor, ...]) -> None:
        self.length, self.views = length, tuple(v.clone() for v in views)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: Any) -> tuple[torch.Tensor, ...]:
        return self.views


def write_jpeg_folder(root: Path, n: int, sizes: tuple, classes: int = 4, seed: int = 0) -> int:
    """``n`` JPEGs at the given (width, height) sizes in ``root/<class>/``: smooth random colour
    fields with fine noise, so they decode like photographs rather than flat images."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        coarse = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.int16)
        noisy = np.clip(field + rng.integers(-12, 13, field.shape), 0, 255).astype(np.uint8)
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy).save(folder / f"{i:05d}.jpg", quality=90)
    return n


def data_pipeline(ctx: Context) -> tuple[Figures, Info]:
    """The ImageNet recipe's JPEG two-view pipeline vs ready views, both feeding its step."""
    s = ctx.sizes["data_pipeline"]
    workers = min(s["workers"], max(1, (os.cpu_count() or 2) - 2))  # the recipe's 10 at most
    root = ctx.work / "imagefolder"
    write_jpeg_folder(root, s["images"], s["sizes"])
    cfg = load_config(
        "simsiam_resnet50_in1k",
        [
            f"data.root={root}", "data.val_root=''", f"data.img_size={s['img']}",
            f"data.num_workers={workers}", f"train.batch_size={s['batch']}",
            f"train.device={ctx.device.type}", "train.precision=bf16", *s["extra"],
        ],
    )  # fmt: skip
    trainer = Trainer(cfg, ctx.work / "trainer")  # model, optimizer, dataset; writes nothing
    trainer.model.train()
    views = next(iter(pretrain_loader(cfg, trainer.dataset, 0, 1)))
    for _ in range(2):
        trainer.train_step(*views)
    batch, batches, steps = s["batch"], s["batches"], s["steps"]
    pipe = batches * batch / dp.time_pipeline(trainer, 0, batches)
    step = steps * batch / dp.time_steps(trainer, views, steps)
    fed_s, waited = dp.time_fed(trainer, batches + 1, steps)
    jpeg = trainer.dataset
    trainer.dataset = ReadyViews(len(jpeg), views)
    ready_pipe = batches * batch / dp.time_pipeline(trainer, 0, batches)
    ready_fed_s, _ = dp.time_fed(trainer, batches + 1, steps)
    trainer.dataset = jpeg
    fed, ready_fed = steps * batch / fed_s, steps * batch / ready_fed_s
    info: Info = {
        **env_info(ctx),
        "data": f"{s['images']} JPEGs {sorted(set(s['sizes']))} in {root.name}/, "
        f"{cfg.data.augment} views at {s['img']} px, {workers} workers, batch {batch}",
        "step": f"{cfg.model.name} width {cfg.model.width}, bf16 autocast, channels_last",
    }
    figures: Figures = {
        "jpeg_pipeline_img_s": pipe,
        "ready_pipeline_img_s": ready_pipe,
        "step_img_s": step,
        "jpeg_fed_img_s": fed,
        "ready_fed_img_s": ready_fed,
        "fed_ratio": fed / ready_fed,
        "pipeline_over_step": pipe / step,
        "stall_share": waited / fed_s,
    }
    return figures, info


# ---------------------------------------------------------------------------- detection


def detection(ctx: Context) -> tuple[Figures, Info]:
    """The torchvision engine on the embedded fmnist_det set, from a random-init encoder."""
    from torchvision.ops import nms

    from transfer.models import DEFAULT_RECIPE, LoadedModel, default_architecture
    from transfer.tasks import RunContext, fmnist_det

    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], device=ctx.device)
    try:
        nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=ctx.device), 0.5)
    except Exception as e:  # the CPU-only wheel may lack torchvision's compiled ops
        if ctx.dry:
            raise Skip(f"torchvision.ops.nms does not run here: {type(e).__name__}: {e}") from e
        raise
    s = ctx.sizes["detection"]
    torch.manual_seed(0)
    encoder = default_architecture().eval().requires_grad_(False)
    model = LoadedModel(encoder, DEFAULT_RECIPE, None, "recipe+random_init", {})
    opts = fmnist_det.Options(
        iters=s["iters"], batch_size=s["batch"], n_train=s["n_train"], n_test=s["n_test"],
        fmnist_root=str(ctx.fmnist), data_dir=str(ctx.work / "fmnist_det"),
    )  # fmt: skip
    out = fmnist_det.run(model, opts, RunContext(seed=0, device=ctx.device, work_dir=ctx.work))
    m, schedule = out.metrics, out.protocol["schedule"]
    info: Info = {
        **env_info(ctx),
        "detector": out.protocol["architecture"],
        "encoder": f"{DEFAULT_RECIPE} architecture, random init",
        "data": f"fmnist_det {s['n_train']} train / {s['n_test']} test canvases",
        "schedule": f"{schedule['iters']} iterations at batch {schedule['batch_size']}",
    }
    figures: Figures = {
        "box_AP": m["box_AP"],
        "box_AP50": m["box_AP50"],
        "voc07_AP50": m["voc07_AP50"],
        "iters": schedule["iters"],
        "it_s": schedule["iters"] / m["train_seconds"],
    }
    return figures, info


# ---------------------------------------------------------------------------- throughput


def throughput(ctx: Context) -> tuple[Figures, Info]:
    """benchmarks/pretrain_throughput.py as a subprocess (ours vs lightly), figures from --json."""
    import importlib.util

    if importlib.util.find_spec("lightly") is None:
        raise Skip("lightly is not installed (the bench extra: pip install -e '.[bench]')")
    result = ctx.work / "throughput.json"
    script = Path(__file__).resolve().with_name("pretrain_throughput.py")
    args = [*ctx.sizes["throughput"], "--device", ctx.device.type, "--precision", "bf16"]
    subprocess.run([sys.executable, str(script), *args, "--json", str(result)], check=True)
    r = json.loads(result.read_text())
    info: Info = {
        **env_info(ctx),
        "command": " ".join(["python", f"benchmarks/{script.name}", *args]),
        "ceiling": f"{r['ceiling_best']['kernel']} {r['ceiling_best']['dtype']}",
    }
    figures: Figures = {
        "ours_img_s": r["median"]["ours_img_s"],
        "lightly_img_s": r["median"]["lightly_img_s"],
        "ratio": r["median"]["ratio"],
        "ours_gflops": r["efficiency"]["ours"]["achieved_gflops"],
        "pct_of_ceiling": r["efficiency"]["ours"]["pct_of_ceiling"],
    }
    return figures, info


PATH_FUNCTIONS: dict[str, Callable[[Context], tuple[Figures, Info]]] = {
    "train_steps": train_steps,
    "ddp": ddp,
    "data_pipeline": data_pipeline,
    "detection": detection,
    "throughput": throughput,
}
