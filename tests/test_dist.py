"""torch.distributed on CPU with gloo: two processes behave as one process on the whole batch.

- SimSiam with SyncBN, 2 ranks × batch B/2, matches 1 rank × batch B
  after a real Trainer step (within 1e-5); without SyncBN it does not (each rank normalises its
  half on its own).
- An InfoNCE loss over keys gathered with ``slurm.dist.all_gather`` (MoCo v3 §3, Alg. 1), averaged
  over 2 ranks, equals the single-process loss over the concatenated batch; the gradients too.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from pretrain.train import Trainer
from slurm import dist as sdist
from tests.conftest import tiny_config

# One step, channels_last off on both sides: the tiny model amplifies rounding, so that other
# kernels for the same math (oneDNN on vs off, or the kernels a CPU picks for a half batch)
# differ by 5e-7 after one step but by 8e-5 after two and 1e-2 after four (tests/test_slurm.py)
CASE = ("train.max_steps=1", "train.threads=1", "train.channels_last=false")
T = 0.2  # MoCo v3's temperature


def info_nce(q: torch.Tensor, k_all: torch.Tensor, rank: int) -> torch.Tensor:
    """MoCo v3's contrastive loss of local queries against all keys: 2T · CE (MoCo v3 Alg. 1)."""
    q, k_all = F.normalize(q, dim=1), F.normalize(k_all, dim=1)
    logits = q @ k_all.T / T  # (n, world × n)
    labels = torch.arange(len(q)) + rank * len(q)  # the positive is this rank's own key
    return F.cross_entropy(logits, labels) * 2 * T


def _worker(rank: int, world: int, port: int, data: str, out: str, extra: tuple = ()) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    env = sdist.init_distributed("cpu")
    assert (env.rank, env.world_size, env.launcher) == (rank, world, "torchrun")
    results = {}
    for sync in (True, False):
        cfg = tiny_config(Path(data), *CASE, f"train.sync_bn={str(sync).lower()}", *extra)
        trainer = Trainer(cfg, Path(out) / f"run-{sync}-{rank}")
        trainer.fit()
        results[f"sync_bn={sync}"] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    # InfoNCE over gathered keys: the same global batch of 8 queries / keys on every rank.
    gen = torch.Generator().manual_seed(7)
    q_all, k_all = torch.randn(8, 16, generator=gen), torch.randn(8, 16, generator=gen)
    n = 8 // world
    q = q_all[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    k = k_all[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    loss = info_nce(q, sdist.all_gather(k, grad=False), rank)
    loss.backward()
    results["nce_loss_mean"] = sdist.all_reduce_mean(loss)
    results["nce_k_grad_nograd"] = k.grad  # None: the gathered keys carry no gradient
    results["nce_q_grad"] = q.grad
    q.grad = None
    loss = info_nce(q, sdist.all_gather(k, grad=True), rank)
    loss.backward()
    results["nce_k_grad"] = k.grad
    results["nce_q_grad_2"] = q.grad
    torch.save(results, Path(out) / f"rank{rank}.pt")
    sdist.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_equal_one_process_on_the_whole_batch(tiny_fmnist, tmp_path):
    torch.set_num_threads(1)
    single = {}
    for sync in (True, False):
        cfg = tiny_config(tiny_fmnist, *CASE, f"train.sync_bn={str(sync).lower()}")
        single[sync] = Trainer(cfg, tmp_path / f"single-{sync}").fit().model.state_dict()
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_fmnist), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    def max_diff(a: dict, b: dict) -> float:
        return max((a[k].double() - b[k].double()).abs().max().item() for k in a)

    # the ranks agree with each other (DDP) and, with SyncBN, with the single process
    assert max_diff(ranks[0]["sync_bn=True"], ranks[1]["sync_bn=True"]) == 0.0
    assert max_diff(ranks[0]["sync_bn=True"], single[True]) < 1e-5
    moved = max_diff(
        single[True], Trainer(tiny_config(tiny_fmnist), tmp_path / "i").model.state_dict()
    )
    assert moved > 1e-3  # the steps did change the parameters
    # per-rank BN statistics give another update: the comparison can tell them apart
    assert max_diff(ranks[0]["sync_bn=False"], single[False]) > 1e-3

    gen = torch.Generator().manual_seed(7)
    q_all = torch.randn(8, 16, generator=gen).requires_grad_(True)
    k_all = torch.randn(8, 16, generator=gen).requires_grad_(True)
    loss = info_nce(q_all, k_all.detach(), rank=0)  # the single process: all 8 queries at once
    loss.backward()
    assert torch.allclose(ranks[0]["nce_loss_mean"], loss.detach(), atol=1e-6)
    assert ranks[0]["nce_k_grad_nograd"] is None
    # DDP averages gradients over ranks: rank r's gradient / world = the single-process one
    q_grad = torch.cat([ranks[r]["nce_q_grad"] for r in range(2)]) / 2
    assert torch.allclose(q_grad, q_all.grad, atol=1e-6)
    q_all.grad = None
    info_nce(q_all, k_all, rank=0).backward()  # keys with gradient
    k_grad = torch.cat([ranks[r]["nce_k_grad"] for r in range(2)]) / 2
    assert torch.allclose(k_grad, k_all.grad, atol=1e-6)
    assert torch.allclose(
        torch.cat([ranks[r]["nce_q_grad_2"] for r in range(2)]) / 2, q_all.grad, atol=1e-6
    )
