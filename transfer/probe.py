"""Linear heads on cached features: a whole grid trained in one pass (the ``fast`` protocol)
and, for comparison, the same heads trained one after another.

The ``fast`` protocol (the idea of DINOv2's linear evaluation): features are extracted once
(center crop, eval mode); every head of a grid of learning rates, with and without a
BatchNorm before the linear layer (BN without affine, MoCo v3 / MAE's probe), is trained in
the same pass over the cached features: one batched matmul (NB, B, D) x (NB, D, L·C) over the
NB BN settings forward and one for the weights' gradient (closed form, no autograd graph), and
an SGD update per head with its own learning rate. Each head sees exactly the batches,
initialization and update rule that it would see trained alone, so its accuracy is that of a
separately trained head (``train_separate`` is that baseline). The best head is picked on a
held-out split of the training set and reported on the test set.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from common.progress import progress as progress_bar
from transfer.option_rules import OptionError


@dataclass(frozen=True)
class GridSpec:
    """The heads and their shared schedule (SGD with momentum, cosine decay per step)."""

    lrs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    bn: tuple[bool, ...] = (False, True)
    epochs: int = 10
    batch_size: int = 256
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    init_std: float = 0.01  # SimSiam / MoCo v3 main_lincls: weight ~ N(0, 0.01), bias 0
    seed: int = 0
    # "bf16": the grid's two matmuls in bf16 (weights, softmax and updates stay fp32);
    # heads then agree with separately trained fp32 heads to bf16 rounding, not bit for bit.
    precision: str = "fp32"

    def heads(self) -> list[tuple[float, bool]]:
        return [(lr, bn) for bn in self.bn for lr in self.lrs]


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 matmuls where the hardware runs them natively (a CUDA GPU with bf16, or
    a CPU with AVX-512 BF16 / AMX), fp32 elsewhere; ``fp32`` and ``bf16`` as given."""
    if precision in ("fp32", "bf16"):
        return precision
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', not {precision!r}")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def held_out_split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (train indices, held-out indices) of ``n`` training samples."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(n * fraction)))
    return order[n_val:].sort().values, order[:n_val].sort().values


def check_batches(n_fit: int, n: int, val_fraction: float, spec: GridSpec) -> None:
    """Refuse a split or batch size the grid cannot train on (one OptionError line): no
    training sample left, or a batch of one sample where a head normalizes with BN (batch
    statistics of one sample are undefined; torch raises)."""
    if n_fit < 1:
        raise OptionError(
            f"val_fraction={val_fraction} holds out all {n} training samples; lower it"
        )
    if any(spec.bn) and (spec.batch_size == 1 or n_fit % spec.batch_size == 1):
        raise OptionError(
            f"batch_size={spec.batch_size} leaves a batch of 1 sample of the {n_fit} the heads "
            "train on, and a BN head cannot normalize one sample: pick another batch_size "
            "(or val_fraction), or bn=(False,)"
        )


def _initial_weights(spec: GridSpec, dim: int, classes: int) -> torch.Tensor:
    """``(H, D, C)``: head h's initial weight, the same for the grid and the separate heads."""
    gen = torch.Generator().manual_seed(spec.seed)
    return torch.randn(len(spec.heads()), dim, classes, generator=gen) * spec.init_std


def epoch_batches(
    feats: torch.Tensor, labels: torch.Tensor, spec: GridSpec, epoch: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's seeded shuffle as ``(x (B, D), y (B,))`` batches, each gathered when it is
    used (a batch stays in cache; gathering the whole shuffled set first costs a copy of it)."""
    gen = torch.Generator().manual_seed(spec.seed * 1000 + epoch)
    order = torch.randperm(len(feats), generator=gen).to(feats.device)
    for idx in order.split(spec.batch_size):
        yield feats.index_select(0, idx), labels.index_select(0, idx)


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * step / total))


class HeadGrid(nn.Module):
    """H = NB × L linear heads: NB BN settings (``spec.bn``) × L learning rates (``spec.lrs``).

    Weights are stored ``(NB, D, L, C)`` so that each BN block's L heads are one matmul
    ``(B, D) @ (D, L·C)``; head h = b·L + l, the order of ``spec.heads()``.
    """

    def __init__(self, spec: GridSpec, dim: int, classes: int) -> None:
        super().__init__()
        self.spec = spec
        nb, nl = len(spec.bn), len(spec.lrs)
        self.shape = (nb, nl, classes)
        init = _initial_weights(spec, dim, classes).view(nb, nl, dim, classes)
        self.weight = nn.Parameter(init.permute(0, 2, 1, 3).contiguous())  # (NB, D, L, C)
        self.bias = nn.Parameter(torch.zeros(nb, nl, classes))  # (NB, L, C)
        lrs = torch.tensor(spec.lrs, dtype=torch.float32)
        self.register_buffer("lr_weight", lrs.view(1, 1, nl, 1).expand(nb, 1, nl, 1).clone())
        self.register_buffer("lr_bias", lrs.view(1, nl, 1).expand(nb, nl, 1).clone())
        self.norm = nn.BatchNorm1d(dim, affine=False)  # shared: it has no parameters

    def head_weight(self, h: int) -> torch.Tensor:
        """Head h's weight ``(D, C)``."""
        b, lr_index = divmod(h, self.shape[1])
        return self.weight[b, :, lr_index, :]

    def head_bias(self, h: int) -> torch.Tensor:
        b, lr_index = divmod(h, self.shape[1])
        return self.bias[b, lr_index]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, C)`` logits of every head for features ``x (B, D)``."""
        nb, nl, c = self.shape
        out = []
        for b, bn in enumerate(self.spec.bn):
            inp = self.norm(x) if bn else x  # (B, D)
            w = self.weight[b].view(inp.shape[1], nl * c)  # (D, L*C)
            out.append((inp @ w).view(-1, nl, c) + self.bias[b])  # (B, L, C)
        return torch.cat(out, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(H, B, C)``."""
        return self.logits(x).transpose(0, 1)


@torch.no_grad()
def _sgd_step(grid: HeadGrid, bufs: list[torch.Tensor | None], scale: float) -> None:
    """torch.optim.SGD's update, with a learning rate per head (``lrs * scale``)."""
    spec = grid.spec
    for i, (p, lr) in enumerate(((grid.weight, grid.lr_weight), (grid.bias, grid.lr_bias))):
        d_p = p.grad
        if spec.weight_decay:
            d_p = d_p.add(p, alpha=spec.weight_decay)
        if spec.momentum:
            if bufs[i] is None:
                bufs[i] = d_p.clone()
            else:
                bufs[i].mul_(spec.momentum).add_(d_p)
            d_p = d_p.add(bufs[i], alpha=spec.momentum) if spec.nesterov else bufs[i]
        p.addcmul_(lr, d_p, value=-scale)


@torch.no_grad()
def grid_gradients(grid: HeadGrid, x: torch.Tensor, y: torch.Tensor) -> None:
    """Set ``grid``'s gradients to those of every head's mean cross-entropy on ``(x, y)``.

    Closed form instead of autograd (a linear head under softmax cross-entropy):
    dL/dlogits = (softmax(logits) − onehot(y)) / B, dL/dW = inputᵀ · dL/dlogits,
    dL/db = Σ_batch dL/dlogits. Head h's gradient is exactly its own (``test_transfer_probe``
    checks it against autograd). Both BN settings go through one batched matmul each way; with
    ``precision="bf16"`` the matmuls run in bf16.
    """
    nb, nl, c = grid.shape
    n = len(y)
    # every BN setting at once: (NB, B, D) inputs, BN updating its running statistics
    inp = torch.stack([grid.norm(x) if bn else x for bn in grid.spec.bn])
    w = grid.weight.view(nb, -1, nl * c)  # (NB, D, L*C)
    if grid.spec.precision == "bf16":
        inp, w = inp.to(torch.bfloat16), w.to(torch.bfloat16)
    logits = torch.bmm(inp, w).float().view(nb, n, nl, c) + grid.bias.unsqueeze(1)
    # softmax over the C classes, written out: torch.softmax over a last dim of ~10 runs
    # ~5x slower on the CPU than these element-wise calls
    d = (logits - logits.amax(-1, keepdim=True)).exp_()
    d /= d.sum(-1, keepdim=True)
    d -= F.one_hot(y, c).to(d.dtype).view(1, n, 1, c)
    d /= n  # dL/dlogits (NB, B, L, C)
    grad_w = torch.bmm(inp.transpose(1, 2), d.view(nb, n, nl * c).to(inp.dtype))  # (NB, D, L*C)
    grad_w = grad_w.float().view_as(grid.weight)
    grad_b = d.sum(1)  # (NB, L, C)
    grid.weight.grad, grid.bias.grad = grad_w, grad_b


def train_grid(
    feats: torch.Tensor, labels: torch.Tensor, spec: GridSpec, classes: int, progress: bool = True
) -> HeadGrid:
    """Every head of ``spec`` trained in one pass over ``feats (N, D)``."""
    grid = HeadGrid(spec, feats.shape[1], classes).to(feats.device)
    steps_per_epoch = math.ceil(len(feats) / spec.batch_size)
    total = spec.epochs * steps_per_epoch
    bufs: list[torch.Tensor | None] = [None, None]
    n_heads = len(spec.heads())
    step = 0
    bar = progress_bar(total=total, desc=f"linear grid ({n_heads} heads)", disable=not progress)
    if spec.precision not in ("fp32", "bf16"):
        raise ValueError(f"GridSpec.precision must be 'fp32' or 'bf16', not {spec.precision!r}")
    for epoch in range(spec.epochs):
        grid.train()
        for x, y in epoch_batches(feats, labels, spec, epoch):
            grid_gradients(grid, x, y)
            _sgd_step(grid, bufs, _cosine(step, total))
            step += 1
            bar.update()
    bar.close()
    return grid.eval()


@torch.no_grad()
def grid_accuracy(grid: HeadGrid, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Top-1 (%) of every head, ``(H,)`` float64: ``100 * correct / n`` exactly as
    ``transfer.artifacts.top1_percent`` recomputes it from saved predictions."""
    grid.eval()
    correct = torch.zeros(len(grid.spec.heads()), dtype=torch.float64)
    for x, y in zip(feats.split(4096), labels.split(4096), strict=True):
        correct += (grid(x).argmax(-1) == y).sum(1).double().cpu()  # (H,)
    return 100.0 * correct / len(labels)


@torch.no_grad()
def grid_predictions(grid: HeadGrid, feats: torch.Tensor) -> torch.Tensor:
    """The predicted class of every head for every sample, ``(H, N)`` int64 on the CPU."""
    grid.eval()
    return torch.cat([grid(x).argmax(-1).cpu() for x in feats.split(4096)], dim=1)


def separate_head(dim: int, classes: int, bn: bool, weight: torch.Tensor) -> nn.Module:
    """One probe head (optional BN without affine, then linear) with the given initial weight."""
    linear = nn.Linear(dim, classes)
    with torch.no_grad():
        linear.weight.copy_(weight.T)
        linear.bias.zero_()
    return nn.Sequential(nn.BatchNorm1d(dim, affine=False), linear) if bn else linear


def train_separate(
    feats: torch.Tensor, labels: torch.Tensor, spec: GridSpec, classes: int, progress: bool = True
) -> list[nn.Module]:
    """The baseline: each head of the grid trained on its own with torch.optim.SGD."""
    weights = _initial_weights(spec, feats.shape[1], classes)
    steps_per_epoch = math.ceil(len(feats) / spec.batch_size)
    total = spec.epochs * steps_per_epoch
    heads = []
    for h, (lr, bn) in enumerate(
        progress_bar(spec.heads(), desc="separate heads", disable=not progress)
    ):
        head = separate_head(feats.shape[1], classes, bn, weights[h]).to(feats.device)
        opt = torch.optim.SGD(
            head.parameters(),
            lr=lr,
            momentum=spec.momentum,
            nesterov=spec.nesterov,
            weight_decay=spec.weight_decay,
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, total))
        head.train()
        for epoch in range(spec.epochs):
            for x, y in epoch_batches(feats, labels, spec, epoch):
                loss = F.cross_entropy(head(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        heads.append(head.eval())
    return heads


@torch.no_grad()
def head_predictions(head: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    """The head's predicted class of every sample, ``(N,)`` int64 on the CPU."""
    head.eval()
    return torch.cat([head(x).argmax(-1).cpu() for x in feats.split(4096)])


@torch.no_grad()
def head_accuracy(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor) -> float:
    head.eval()
    correct = sum(
        (head(x).argmax(-1) == y).sum().item()
        for x, y in zip(feats.split(4096), labels.split(4096), strict=True)
    )
    return 100.0 * correct / len(labels)


@dataclass
class GridResult:
    """Per-head held-out and test accuracy, and the head picked on the held-out split."""

    heads: list[tuple[float, bool]]
    val_top1: list[float]
    test_top1: list[float]
    test_predictions: torch.Tensor | None = None  # (H, N): every head's class per test sample

    @property
    def best(self) -> int:
        return max(range(len(self.heads)), key=lambda h: self.val_top1[h])

    def table(self) -> list[dict]:
        return [
            {"lr": lr, "bn": bn, "val_top1": v, "test_top1": t}
            for (lr, bn), v, t in zip(self.heads, self.val_top1, self.test_top1, strict=True)
        ]


def fast_probe(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    spec: GridSpec,
    val_fraction: float = 0.1,
    progress: bool = True,
) -> GridResult:
    """Train the grid on train minus a held-out split; evaluate every head on both."""
    feats, labels = train
    classes = int(max(labels.max(), test[1].max())) + 1
    fit_idx, val_idx = held_out_split(len(labels), val_fraction, spec.seed)
    check_batches(len(fit_idx), len(labels), val_fraction, spec)
    grid = train_grid(feats[fit_idx], labels[fit_idx], spec, classes, progress)
    val = grid_accuracy(grid, feats[val_idx], labels[val_idx])
    preds = grid_predictions(grid, test[0])  # (H, N)
    tst = 100.0 * (preds == test[1].cpu()).sum(1).double() / len(test[1])
    return GridResult(spec.heads(), val.tolist(), tst.tolist(), preds)
