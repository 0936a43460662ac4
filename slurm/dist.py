"""torch.distributed for pretraining: init, DDP, gathers, shutdown.

One process per GPU (or several CPU processes with gloo). The process group is initialised from
whichever launcher started the process:

- a submitit job with more than one task (``submitit.helpers.TorchDistributedEnvironment``
  exports MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK from Slurm's variables),
- torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT already set),
- nothing: a single process, no process group.

NCCL on CUDA, gloo on CPU. Only rank 0 logs, checkpoints and writes results
(``DistEnv.is_main``); the others train and return.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: its global rank, the world size and its rank on the node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "none"  # "submitit", "torchrun" or "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


_ENV = DistEnv()  # what init_distributed set up in this process


def current() -> DistEnv:
    """The environment of an initialised process group, or the single-process one."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistEnv()
    if _ENV.world_size == dist.get_world_size():
        return _ENV
    local = int(os.environ.get("LOCAL_RANK", 0))
    return DistEnv(dist.get_rank(), dist.get_world_size(), local, "external")


def _launcher() -> str:
    if os.environ.get("SUBMITIT_EXECUTOR") and os.environ.get("SUBMITIT_FOLDER"):
        import submitit

        if submitit.JobEnvironment().num_tasks > 1:
            return "submitit"
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return "torchrun"
    return "none"


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group the launcher set up (NCCL on CUDA, gloo on CPU); see the module doc.

    ``device`` is the config's ``train.device``: "cpu" forces gloo even where CUDA is visible.
    A single process (no launcher, or one task) gets ``DistEnv()`` and no process group.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    launcher = _launcher()
    if launcher == "none":
        return DistEnv()
    if launcher == "submitit":
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if world == 1:
        return DistEnv(launcher=launcher)
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    global _ENV
    _ENV = DistEnv(rank, world, local_rank, launcher)
    return _ENV


def shutdown() -> None:
    """Leave the process group cleanly (a barrier first, so no rank tears down a peer's step)."""
    global _ENV
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _ENV = DistEnv()


def all_gather(x: torch.Tensor, grad: bool = False) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0, in rank order: (N, ...) -> (world × N, ...).

    ``grad=False`` (MoCo v3's keys from the momentum encoder): a plain gather, no gradient.
    ``grad=True``: the gathered tensor is differentiable and each rank's gradient flows back to
    the rank that produced the slice, summed over the ranks that used it (so that, with DDP's
    gradient averaging, the update equals the single-process update on the whole batch).
    Without a process group both return ``x`` itself (``x.detach()`` for ``grad=False``).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x if grad else x.detach()
    if grad:
        return _AllGather.apply(x)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """The differentiable sum of ``x`` over ranks (SyncBN's statistics); ``x`` without a group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _AllReduceSum.apply(x)


class _AllReduceSum(torch.autograd.Function):
    """y = Σ_r x_r on every rank; the gradient of Σ_r L_r is Σ_r dL_r/dy on every rank."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(g)
        return g


class _AllGather(torch.autograd.Function):
    """(N, ...) -> (world × N, ...); backward: this rank's rows of Σ_r dL_r/dy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.rows = slice(rank * x.shape[0], (rank + 1) * x.shape[0])
        parts = [torch.empty_like(x, memory_format=torch.contiguous_format) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.contiguous()
        if dist.get_backend() == "nccl":
            out = torch.empty_like(g[ctx.rows])
            dist.reduce_scatter_tensor(out, g)  # sums each rank's rows onto it
            return out
        g = g.clone()
        dist.all_reduce(g)  # gloo has no reduce-scatter
        return g[ctx.rows].contiguous()


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over ranks (no gradient); ``x`` itself without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x.detach()
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()


def wrap_ddp(model: nn.Module, device: torch.device, ignore: Iterable[str] = ()) -> nn.Module:
    """DistributedDataParallel around the trainable part of ``model``.

    ``ignore`` names submodules DDP must leave alone — a method's EMA target (BYOL's target
    network, MoCo's momentum encoder): their parameters and buffers are neither broadcast nor
    all-reduced, each rank updates them itself from the (identical) online weights. Parameters
    with ``requires_grad=False`` are never reduced. Without a process group: ``model`` itself.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return model
    prefixes = tuple(f"{name}." for name in ignore)
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    skipped = [n for n in names if n.startswith(prefixes)]
    if prefixes:
        missing = [p[:-1] for p in prefixes if not any(n.startswith(p) for n in names)]
        if missing:
            raise ValueError(f"wrap_ddp: ignored submodules {missing} are not in the model")
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, skipped)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every rank (a run directory name, say); ``obj`` without a group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
