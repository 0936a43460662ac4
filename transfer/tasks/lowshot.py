"""Low-shot linear classification: 1% and 10% labelled subsets of the training set (fixed,
class-balanced, recorded by sha256; ``transfer/subsets.py``), a linear grid trained on the
subset's cached features (the ``fast`` protocol, head picked on a held-out part of the
subset), evaluated on the full test set (SimCLR / BYOL semi-supervised protocol, with a frozen
backbone)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transfer.artifacts import prediction_table
from transfer.features import FMNIST_ROOT, DataSpec
from transfer.models import LoadedModel
from transfer.probe import GridSpec, fast_probe, resolve_precision
from transfer.probe_loop import check_unchanged, snapshot
from transfer.subsets import FULL_SIZES, load_subset, shipped_path, subset_sha256
from transfer.tasks import OptionError, RunContext, TaskOutput

NAME = "lowshot"


@dataclass
class Options:
    dataset: str = "fashion_mnist"
    data_root: str = FMNIST_ROOT
    percents: tuple = (1, 10)
    lrs: tuple = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    bn: tuple = (False, True)
    steps: int = 600  # SGD steps per subset (epochs = steps / steps per epoch)
    batch_size: int = 256
    val_fraction: float = 0.1
    precision: str = "auto"  # the grids' matmuls: bf16 where native (recorded), else fp32


def run(model: LoadedModel, opts: Options, ctx: RunContext) -> TaskOutput:
    spec = DataSpec(opts.dataset, opts.data_root)
    before = snapshot(model.encoder.backbone)
    feats, labels = ctx.cache.get(model, spec, "train")
    test = ctx.cache.get(model, spec, "test")
    metrics, subsets, grids, columns = {}, {}, {}, {}
    for pct in opts.percents:
        idx = load_subset(opts.dataset, int(pct), labels, ctx.seed)
        steps_per_epoch = -(-int(len(idx) * (1 - opts.val_fraction)) // opts.batch_size)
        if steps_per_epoch < 1:
            raise OptionError(
                f"lowshot option val_fraction={opts.val_fraction} leaves no training image of "
                f"the {pct}% subset ({len(idx)} images); lower it"
            )
        grid = GridSpec(
            lrs=tuple(float(x) for x in opts.lrs),
            bn=tuple(bool(b) for b in opts.bn),
            epochs=max(1, opts.steps // steps_per_epoch),
            batch_size=opts.batch_size,
            seed=ctx.seed,
            precision=resolve_precision(opts.precision, feats.device),
        )
        result = fast_probe((feats[idx], labels[idx]), test, grid, opts.val_fraction)
        best = result.best
        metrics[f"top1_{pct}pct"] = result.test_top1[best]  # = top1_percent of the column
        columns[f"pred_{pct}pct"] = result.test_predictions[best]
        metrics[f"best_lr_{pct}pct"], metrics[f"best_bn_{pct}pct"] = result.heads[best]
        shipped = shipped_path(opts.dataset, int(pct))
        subsets[f"{pct}pct"] = {
            "size": len(idx),
            "sha256": subset_sha256(idx),
            "list": shipped.name
            if shipped.is_file() and len(labels) == FULL_SIZES.get(opts.dataset)
            else f"balanced, seed {ctx.seed}",
            "epochs": grid.epochs,
        }
        grids[f"{pct}pct"] = result.table()
    check_unchanged(before, model.encoder.backbone)
    protocol = {
        **ctx.cache.protocol(model, spec),
        "subsets": subsets,
        "grid": {k: v for k, v in asdict(grid).items() if k not in ("seed", "epochs")},
        "selection": f"best top-1 on a held-out {opts.val_fraction:.0%} of the subset",
        "test_split": spec.describe("test", len(test[1])),
        "backbone_unchanged_check": "passed",
    }
    table = prediction_table(test[1].cpu(), columns)
    return TaskOutput(protocol, metrics, {"grids": grids}, artifacts={"predictions.csv": table})
