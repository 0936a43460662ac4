"""The possible values of a run record's numbers, in one table: what the contract refuses.

A record whose types are right can still state something that cannot have happened: a
schedule of -1 iterations, a batch of 0 images, a top-1 of 130 %, an AP of NaN. ``RULES``
gives, for every number under ``metrics`` (transfer tasks), ``protocol`` and ``pretrain``
and for ``wall_seconds``, the first rule whose pattern (``fnmatch``, over the dotted path;
list items are numbered: ``protocol.ks.0``) matches; a number no pattern names must still be
finite. ``check_values(record)`` raises one :class:`RecordError` line naming the path, the
value and the valid range, so ``records.write`` refuses the record and ``leaderboards/build.py``
flags it (``--strict``: exit 1). Accuracies and APs are percentages (SimSiam / MoCo report
top-1 and COCO / VOC AP in %; ``transfer/detection/evaluate.py`` scales pycocotools' [0, 1]).
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

from common.ranges import Rule, above, at_least, between, finite
from records.errors import RecordError
from records.tasks import is_number

PERCENT = between(0, 100, note="a percentage")
COUNT = at_least(1)
# (pattern, rule): the first matching pattern decides; order matters
METRIC_RULES: tuple[tuple[str, Rule], ...] = (
    ("metrics.*_std", at_least(0, "a standard deviation")),
    ("metrics.*top1*", PERCENT),  # top1, val_top1, top1_k20, top1_1pct, raw_pixels_top1_k20
    ("metrics.*AP*", between(0, 100, note="COCO / VOC AP, in percent")),
    ("metrics.*lr*", above(0, note="a learning rate")),  # lr, best_lr, best_lr_1pct
    ("metrics.*seconds*", at_least(0)),
)
RUN_RULES: tuple[tuple[str, Rule], ...] = (
    ("wall_seconds", at_least(0)),
    # the pretraining the record measured (records.length: configured and trained length)
    ("pretrain.epochs", at_least(0)),
    ("pretrain.batch_size", COUNT),
    ("pretrain.trained_steps", at_least(0)),
    ("pretrain.trained_epochs", at_least(0)),
    ("pretrain.trained.steps", at_least(0)),
    ("pretrain.trained.epochs", at_least(0)),
    ("pretrain.backbone.width", COUNT),
    ("pretrain.backbone.in_chans", COUNT),
    # detection schedules (transfer/detection/schedules.py DetSchedule) and sizes
    ("protocol.schedule.iters", at_least(1, "training iterations")),
    ("protocol.schedule.batch_size", COUNT),
    ("protocol.schedule.base_lr", above(0, note="a learning rate")),
    ("protocol.schedule.warmup_iters", at_least(0)),
    ("protocol.schedule.steps.*", at_least(0)),
    ("protocol.schedule.train_sizes.*", COUNT),
    ("protocol.schedule.test_size", COUNT),
    ("protocol.schedule.max_size", COUNT),
    ("protocol.schedule.momentum", between(0, 1)),
    ("protocol.schedule.weight_decay", at_least(0)),
    ("protocol.train_images", COUNT),
    ("protocol.test_images", COUNT),
    # the linear probes (transfer/probe.py GridSpec, transfer/probe_loop.py PaperPreset)
    ("protocol.grid.epochs", COUNT),
    ("protocol.grid.batch_size", COUNT),
    ("protocol.grid.lrs.*", above(0, note="a learning rate")),
    ("protocol.grid.momentum", between(0, 1)),
    ("protocol.grid.weight_decay", at_least(0)),
    ("protocol.epochs_run", COUNT),
    ("protocol.preset.batch_size", COUNT),
    ("protocol.preset.epochs", COUNT),
    ("protocol.subsets.*.size", COUNT),
    ("protocol.subsets.*.epochs", COUNT),
    # kNN
    ("protocol.ks.*", COUNT),
    ("protocol.t", above(0, note="the vote divides by it")),
    # a pretraining record (experiments/sweep_job.py)
    ("protocol.steps", at_least(0)),
    ("protocol.batch_size", COUNT),
    ("protocol.micro_batch", COUNT),
    ("protocol.accum_steps", COUNT),
    ("protocol.world_size", COUNT),
)


# a collapse-ablation record (experiments/ablate.py): its length; its curve may hold NaN (a
# collapsed run's readings), recorded as measured
ABLATION_RULES: tuple[tuple[str, Rule], ...] = (
    ("steps", COUNT),
    ("batch_size", COUNT),
)


def leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every number under ``value`` with its dotted path (booleans are not numbers)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}.{i}")
    elif is_number(value):
        yield path, value


def rule_for(path: str, rules: tuple[tuple[str, Rule], ...]) -> Rule:
    """The first rule whose pattern matches ``path``; any finite number when none does."""
    for pattern, rule in rules:
        if fnmatchcase(path, pattern):
            return rule
    return finite()


def check_ablation_values(data: dict[str, Any]) -> None:
    """Raise RecordError for an impossible length of a collapse-ablation record."""
    for path, rule in ABLATION_RULES:
        value = data.get(path)
        problem = rule.problem(path, value) if is_number(value) else None
        if problem:
            raise RecordError(problem)


def check_values(data: dict[str, Any], transfer: bool) -> None:
    """Raise RecordError for the first impossible number of a run record (``transfer``: its
    metrics are checked too; a pretraining record's metrics are recorded as measured)."""
    blocks = ["wall_seconds", "pretrain", "protocol"] + (["metrics"] if transfer else [])
    for block in blocks:
        rules = METRIC_RULES if block == "metrics" else RUN_RULES
        for path, value in leaves(data.get(block), block):
            problem = rule_for(path, rules).problem(path, value)
            if problem:
                raise RecordError(problem)
