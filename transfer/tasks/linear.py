"""Linear probe on the frozen backbone.

``protocol=fast`` (default): features extracted once (eval crop), a grid of learning rates ×
{no BN, BN} before the linear layer trained in one pass over the cached features
(``transfer/probe.py``), the head picked on a held-out split of the training set, reported on
the test set. ``protocol=simsiam|mocov3|byol``: the papers' protocols with the backbone in the
loop (``transfer/probe_loop.py``; ``epochs=`` shortens them for small runs and is recorded).
Both check afterwards that no backbone weight or BN statistic changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from transfer.artifacts import prediction_table, top1_percent
from transfer.features import FMNIST_ROOT, DataSpec, load_split
from transfer.models import LoadedModel
from transfer.probe import (
    GridSpec,
    fast_probe,
    head_accuracy,
    head_predictions,
    held_out_split,
    resolve_precision,
)
from transfer.probe_loop import (
    PRESETS,
    check_unchanged,
    folder_batches,
    snapshot,
    tensor_batches,
    train_augment,
    train_in_loop,
)
from transfer.tasks import OptionError, RunContext, TaskOutput

NAME = "linear"
PROTOCOLS = ("fast", *PRESETS)


@dataclass
class Options:
    protocol: str = "fast"
    dataset: str = "fashion_mnist"
    data_root: str = FMNIST_ROOT
    lrs: tuple = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    bn: tuple = (False, True)
    epochs: int = 10  # fast protocol
    paper_epochs: int = 0  # a paper preset's epochs; 0 keeps the paper's (recorded either way)
    batch_size: int = 256  # fast protocol
    momentum: float = 0.9
    weight_decay: float = 0.0
    val_fraction: float = 0.1  # held-out share of the training set for picking the head
    precision: str = "auto"  # fast grid's matmuls: bf16 where native (recorded), else fp32


def run(model: LoadedModel, opts: Options, ctx: RunContext) -> TaskOutput:
    if opts.protocol not in PROTOCOLS:
        raise OptionError(f"unknown protocol {opts.protocol!r}; available: {PROTOCOLS}")
    spec = DataSpec(opts.dataset, opts.data_root)
    before = snapshot(model.encoder.backbone)
    if opts.protocol == "fast":
        out = _fast(model, opts, spec, ctx)
    else:
        out = _paper(model, opts, spec, ctx)
    check_unchanged(before, model.encoder.backbone)
    out.protocol["backbone_unchanged_check"] = "passed"
    return out


def _fast(model: LoadedModel, opts: Options, spec: DataSpec, ctx: RunContext) -> TaskOutput:
    train = ctx.cache.get(model, spec, "train")
    test = ctx.cache.get(model, spec, "test")
    grid = GridSpec(
        lrs=tuple(float(x) for x in opts.lrs),
        bn=tuple(bool(b) for b in opts.bn),
        epochs=opts.epochs,
        batch_size=opts.batch_size,
        momentum=opts.momentum,
        weight_decay=opts.weight_decay,
        seed=ctx.seed,
        precision=resolve_precision(opts.precision, train[0].device),
    )
    result = fast_probe(train, test, grid, opts.val_fraction)
    best = result.best
    lr, bn = result.heads[best]
    protocol = {
        **ctx.cache.protocol(model, spec),
        "protocol": "fast",
        "grid": {k: v for k, v in asdict(grid).items() if k != "seed"},
        "optimizer": "SGD, cosine per step",
        "selection": f"best top-1 on a held-out {opts.val_fraction:.0%} of the training set "
        f"(seed {ctx.seed})",
        "train_split": spec.describe("train", len(train[1])),
        "test_split": spec.describe("test", len(test[1])),
    }
    preds = result.test_predictions[best]
    metrics = {
        "top1": top1_percent(preds, test[1].cpu()),  # = result.test_top1[best]
        "val_top1": result.val_top1[best],
        "best_lr": lr,
        "best_bn": bn,
    }
    table = prediction_table(test[1].cpu(), {"pred": preds})
    return TaskOutput(
        protocol, metrics, {"grid": result.table()}, artifacts={"predictions.csv": table}
    )


def _paper(model: LoadedModel, opts: Options, spec: DataSpec, ctx: RunContext) -> TaskOutput:
    preset = PRESETS[opts.protocol]
    cfg = model.preprocess
    size, in_chans = int(cfg["input_size"][-1]), int(cfg["input_size"][0])
    backbone = model.encoder.backbone.to(ctx.device)
    test = ctx.cache.get(model, spec, "test")
    data, labels = load_split(spec, "train", size, in_chans)
    classes = int(max(labels.max(), test[1].max())) + 1
    epochs = opts.paper_epochs or preset.epochs
    augment = train_augment(spec.dataset, size, in_chans)

    def fit(indices: torch.Tensor | None, lr: float):
        if isinstance(data, torch.Tensor):
            images = data if indices is None else data[indices]
            lab = labels if indices is None else labels[indices]
            batches, steps = tensor_batches(images, lab, preset.batch_size, augment, ctx.seed)
        else:
            data.transform = augment
            subset = data if indices is None else torch.utils.data.Subset(data, indices.tolist())
            batches, steps = folder_batches(subset, preset.batch_size, ctx.seed)
        return train_in_loop(
            backbone, batches, steps, classes, preset, lr, ctx.device, epochs, ctx.seed
        )

    protocol = {
        **ctx.cache.protocol(model, spec),
        "protocol": preset.name,
        "preset": asdict(preset),
        "epochs_run": epochs,
        "train_split": spec.describe("train", len(labels)),
        "test_split": spec.describe("test", len(test[1])),
    }
    metrics: dict = {}
    if preset.lr_grid:  # BYOL: pick the lr on a held-out split, then train on all of train
        fit_idx, val_idx = held_out_split(len(labels), opts.val_fraction, ctx.seed)
        val_feats = ctx.cache.get(model, spec, "train")[0][val_idx]
        scores = {}
        for lr in preset.lr_grid:
            head = fit(fit_idx, lr)
            scores[lr] = head_accuracy(head.cpu(), val_feats, labels[val_idx])
        lr = max(scores, key=scores.get)
        metrics["val_top1_per_lr"] = {str(k): v for k, v in scores.items()}
    else:
        lr = preset.base_lr * preset.batch_size / 256
    head = fit(None, lr)
    preds = head_predictions(head.cpu(), test[0].cpu())
    metrics.update({"top1": top1_percent(preds, test[1].cpu()), "lr": lr})
    table = prediction_table(test[1].cpu(), {"pred": preds})
    return TaskOutput(protocol, metrics, artifacts={"predictions.csv": table})
