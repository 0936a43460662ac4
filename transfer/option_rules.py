"""The valid range of every transfer task option and ``transfer/run.py`` flag, in one table.

``RULES[task]`` maps each option of the task's ``Options`` dataclass (``transfer/tasks/``) to
a :class:`common.ranges.Rule` (the mechanism of the pretraining config's
``pretrain/config_rules.py``); an option that holds a tuple has its rule applied to every
element and may not be empty. ``FREE_TEXT[task]`` lists the options that are names or paths,
checked where they are used. Booleans need no rule (their type is checked when parsed). A
new numeric or named option needs a row here: a test checks that every option has one and
that every default passes it.

``CROSS_CHECKS[task]`` holds what one option alone cannot say (kNN's ``ks`` must hold the k
its board ranks by). ``FLAGS`` are the command line's own numbers (``--seeds``, ``--iters``).
``check(task, opts)`` raises one :class:`OptionError` line naming the option, the value and
the valid range, before any model is loaded or any feature extracted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from common.errors import UserError
from common.ranges import Rule, above, at_least, between, one_of


class OptionError(UserError, ValueError):
    """A ``key=value`` override (or flag) that the task does not have, cannot parse or cannot
    run with."""


# seeds: numpy's and detectron2's seeds are 32-bit, and the fast probe seeds each epoch's
# shuffle with seed * 1000 + epoch
MAX_SEED = 2**31 - 1


def _datasets() -> tuple[str, ...]:
    from transfer.features import DATASETS

    return DATASETS


def _paper_protocols() -> tuple[str, ...]:
    from transfer.probe_loop import PRESETS

    return ("fast", *PRESETS)


def _schedules() -> tuple[str, ...]:
    from transfer.detection.schedules import PRESETS

    return tuple(PRESETS)


def _engines() -> tuple[str, ...]:
    from transfer.detection.task import ENGINES

    return ENGINES


def _voc_sets() -> tuple[str, ...]:
    from transfer.detection.voc import VOC_SPLITS

    return tuple(VOC_SPLITS)


PRECISION = one_of("auto", "fp32", "bf16", note="the grid's matmuls; auto: bf16 where native")
LR = above(0, note="a learning rate")
FRACTION = between(0, 1, lo_open=True, hi_open=True, note="a share of the training set")
CLASSIFICATION = {
    "dataset": Rule(choices=_datasets),
}
# every detection task (transfer/detection/task.py DetOptions); a task's own rows follow
DETECTION = {
    "engine": Rule(choices=_engines),
    "variant": one_of("c4", "fpn"),
    "schedule": Rule(choices=_schedules),
    "batch_size": at_least(0, "images per iteration; 0: the schedule's 16, linearly scaled"),
    "iters": at_least(0, "0: the (scaled) schedule's"),
    "short_side": at_least(0, "train and test short side in px; 0: the schedule's sizes"),
    "anchor_sizes": at_least(1, "anchor sides in px"),
    "roi_resolution": at_least(1, "RoIAlign output side"),
    "fpn_channels": at_least(1),
    "rpn_batch_size_per_image": at_least(1),
    "box_batch_size_per_image": at_least(1),
    "rpn_pre_nms_top_n_train": at_least(1),
    "rpn_post_nms_top_n_train": at_least(1),
    "rpn_pre_nms_top_n_test": at_least(1),
    "rpn_post_nms_top_n_test": at_least(1),
    "workers": at_least(0, "0 loads in the main process"),
}
RULES: dict[str, dict[str, Rule]] = {
    "knn": {
        **CLASSIFICATION,
        "ks": at_least(1, "neighbours that vote"),
        "t": above(0, note="the vote divides by it"),
    },
    "linear": {
        **CLASSIFICATION,
        "protocol": Rule(choices=_paper_protocols),
        "lrs": LR,
        "epochs": at_least(1, "the fast protocol's epochs"),
        "paper_epochs": at_least(0, "0 keeps the paper preset's"),
        "batch_size": at_least(1),
        "momentum": between(0, 1),
        "weight_decay": at_least(0),
        "val_fraction": FRACTION,
        "precision": PRECISION,
    },
    "lowshot": {
        **CLASSIFICATION,
        "percents": between(1, 100, note="a whole percent of the labels"),
        "lrs": LR,
        "steps": at_least(1, "SGD steps per subset"),
        "batch_size": at_least(1),
        "val_fraction": FRACTION,
        "precision": PRECISION,
    },
    "fmnist_det": {
        **DETECTION,
        "format": one_of("coco", "voc", note="which real reader and evaluator"),
        # annotation ids of the test split start at 10**7; a canvas holds up to 3 items
        "n_train": between(1, 3_000_000, note="generated training canvases"),
        "n_test": between(1, 3_000_000, note="generated test canvases"),
        "data_seed": between(0, MAX_SEED),
    },
    "voc_det": {
        **DETECTION,
        "train_sets": Rule(choices=_voc_sets),
        "test_set": Rule(choices=_voc_sets),
    },
    "coco_det": {**DETECTION},
}
FREE_TEXT: dict[str, tuple[str, ...]] = {
    "knn": ("data_root",),
    "linear": ("data_root",),
    "lowshot": ("data_root",),
    "fmnist_det": ("fmnist_root", "data_dir"),
    "voc_det": ("data_root",),
    "coco_det": ("data_root", "train_split", "test_split"),  # any split with annotations
}


def _knn_ranks_by_k20(opts: Any) -> str | None:
    if 20 not in opts.ks:
        return (
            f"ks={tuple(opts.ks)!r} lacks 20: the kNN board ranks by top1_k20 "
            "(records/tasks.py), add it, e.g. ks=(20,200)"
        )
    return None


def _lowshot_ranks_by_1_or_10(opts: Any) -> str | None:
    if not {1, 10} & set(opts.percents):
        return (
            f"percents={tuple(opts.percents)!r} holds neither 1 nor 10: the low-shot board "
            "ranks by top1_1pct or top1_10pct (records/tasks.py)"
        )
    return None


def _fmnist_det_engine(opts: Any) -> str | None:
    if opts.engine != "torchvision":
        return "fmnist_det runs on the torchvision engine (engine=torchvision)"
    if opts.masks and opts.format != "coco":
        return "masks=true needs format=coco (VOC XML has no instance masks)"
    return None


CROSS_CHECKS: dict[str, tuple[Callable[[Any], str | None], ...]] = {
    "knn": (_knn_ranks_by_k20,),
    "lowshot": (_lowshot_ranks_by_1_or_10,),
    "fmnist_det": (_fmnist_det_engine,),
}

# the command line's numbers (transfer/run.py); a flag left out is not checked
FLAGS: dict[str, Rule] = {
    "--seed": between(0, MAX_SEED, note="numpy's and detectron2's seeds are 32-bit"),
    "--seeds": at_least(1, "how many seeds to run, from --seed on"),
    "--iters": at_least(1, "detection training iterations; leave it out for the schedule's"),
    "--short-side": at_least(1, "detection's train and test short side in px"),
    "--threads": at_least(1, "torch CPU threads; leave it out for torch's choice"),
}


def task_of(options_cls: type) -> str:
    """The task an ``Options`` class belongs to (the name of its module in transfer/tasks/)."""
    return options_cls.__module__.rsplit(".", 1)[-1]


def option_problem(task: str, key: str, rule: Rule | None, value: Any) -> str | None:
    """The reason option ``key=value`` of ``task`` does not fit ``rule`` (a tuple: not empty,
    and each element), or None."""
    if isinstance(value, tuple | list):
        if not value:
            return f"{task} option {key}=() is empty: give at least one value"
        for i, item in enumerate(value if rule else ()):
            problem = rule.problem(f"{key}[{i}]", item)
            if problem:
                return f"{task} option {problem}"
        return None
    problem = rule.problem(key, value) if rule else None
    return f"{task} option {problem}" if problem else None


def check(task: str, opts: Any) -> None:
    """Raise one OptionError line for the first option of ``opts`` outside its rule."""
    rules = RULES[task]
    for f in fields(opts):
        problem = option_problem(task, f.name, rules.get(f.name), getattr(opts, f.name))
        if problem:
            raise OptionError(problem)
    for cross in CROSS_CHECKS.get(task, ()):
        problem = cross(opts)
        if problem:
            raise OptionError(f"{task} option {problem}")


def check_flags(values: dict[str, Any]) -> None:
    """Raise one OptionError line for the first command-line flag outside its rule."""
    for flag, value in values.items():
        problem = FLAGS[flag].problem(flag, value)
        if problem:
            raise OptionError(problem)


def needs_rule(default: Any) -> bool:
    """Whether an option with this default must have a row in RULES or FREE_TEXT: every
    option but a boolean or a tuple of booleans (their type is checked when parsed)."""
    if isinstance(default, tuple) and default:
        return not all(isinstance(x, bool) for x in default)
    return not isinstance(default, bool)
