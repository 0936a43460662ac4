"""Every transfer task option and run.py flag is range-checked: one ``error:`` line naming the
option, the value and the valid range, before any model is loaded (transfer/option_rules.py)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch

from hub.backbones import BackboneSpec
from hub.encoder import Encoder
from transfer import run as transfer_run
from transfer import tasks
from transfer.models import load_model
from transfer.tasks import OptionError, RunContext

TINY_SPEC = BackboneSpec(in_chans=1, width=8, stem="small", stem_stride=2, zero_init_residual=False)


@pytest.fixture
def encoder_dir(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    ssl = {"method": "simsiam", "dataset": "fashion_mnist", "epochs": 3, "batch_size": 256}
    Encoder.from_spec(TINY_SPEC, ssl=ssl).save_pretrained(tmp_path / "encoder")
    return tmp_path / "encoder"


def cli(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """``python transfer/run.py <argv>`` in this process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["transfer/run.py", *argv])
    with pytest.raises(SystemExit) as done:
        transfer_run.cli()
    return done.value.code, capsys.readouterr().err


@pytest.mark.parametrize("task", tasks.MODULES)
def test_every_option_has_a_rule_and_every_default_passes_it(task: str) -> None:
    from transfer import option_rules
    from transfer.option_rules import FREE_TEXT, RULES, needs_rule

    options = tasks.get(task).Options
    fields = dataclasses.fields(options)
    known = set(RULES[task]) | set(FREE_TEXT[task])
    missing = [
        f.name for f in fields if needs_rule(getattr(options(), f.name)) and f.name not in known
    ]
    assert not missing, f"{task} options without a rule in transfer/option_rules.py: {missing}"
    stale = known - {f.name for f in fields}
    assert not stale, f"transfer/option_rules.py names options {task} does not have: {stale}"
    option_rules.check(task, options())  # raises on a default outside its own range


RANGE = "is out of range: must be"
CHOICE = "is not a valid choice: must be one of"


@pytest.mark.parametrize(
    ("task", "override", "expected"),
    [
        ("linear", "batch_size=0", f"batch_size=0 {RANGE} >= 1"),
        ("linear", "batch_size=-4", f"batch_size=-4 {RANGE} >= 1"),
        ("linear", "epochs=0", f"epochs=0 {RANGE} >= 1"),
        ("linear", "lrs=(0.1,-1)", f"lrs[1]=-1.0 {RANGE} > 0"),
        ("linear", "lrs=(0.1,nan)", f"lrs[1]=nan {RANGE} > 0"),
        ("linear", "val_fraction=1", f"val_fraction=1.0 {RANGE} in (0, 1)"),
        ("linear", "momentum=1.5", f"momentum=1.5 {RANGE} in [0, 1]"),
        ("linear", "precision=fp16", f"precision='fp16' {CHOICE} 'auto', 'fp32', 'bf16'"),
        ("linear", "protocol=simclr", f"protocol='simclr' {CHOICE} 'fast', 'simsiam'"),
        ("linear", "dataset=cifar", f"dataset='cifar' {CHOICE} 'fashion_mnist'"),
        ("linear", "bn=()", "bn=() is empty: give at least one value"),
        ("linear", "bn=(1,)", "bn='(1,)': expected a list of bools"),
        ("linear", "epochs=true", "epochs='true': expected int"),
        ("knn", "ks=(20,0)", f"ks[1]=0 {RANGE} >= 1"),
        ("knn", "ks=(10,)", "ks=(10,) lacks 20: the kNN board ranks by top1_k20"),
        ("knn", "t=0", f"t=0.0 {RANGE} > 0"),
        ("lowshot", "percents=(0,)", f"percents[0]=0 {RANGE} in [1, 100]"),
        ("lowshot", "percents=(0.5,)", "percents='(0.5,)': expected a list of ints"),
        ("lowshot", "percents=(50,)", "percents=(50,) holds neither 1 nor 10"),
        ("lowshot", "steps=0", f"steps=0 {RANGE} >= 1"),
        ("fmnist_det", "n_train=0", f"n_train=0 {RANGE} in [1, 3000000]"),
        ("fmnist_det", "n_test=-1", f"n_test=-1 {RANGE} in [1, 3000000]"),
        ("fmnist_det", "iters=-1", f"iters=-1 {RANGE} >= 0"),
        ("fmnist_det", "batch_size=-2", f"batch_size=-2 {RANGE} >= 0"),
        ("fmnist_det", "short_side=-1", f"short_side=-1 {RANGE} >= 0"),
        ("fmnist_det", "workers=-1", f"workers=-1 {RANGE} >= 0"),
        ("fmnist_det", "format=xml", f"format='xml' {CHOICE} 'coco', 'voc'"),
        ("fmnist_det", "engine=detectron2", "fmnist_det runs on the torchvision engine"),
        ("fmnist_det", "anchor_sizes=(16,0)", f"anchor_sizes[1]=0 {RANGE} >= 1"),
        ("voc_det", "schedule=voc_12k", f"schedule='voc_12k' {CHOICE} 'voc_24k'"),
        ("voc_det", "test_set=voc_2012_test", f"test_set='voc_2012_test' {CHOICE} 'voc_2007"),
        ("voc_det", "variant=dc5", f"variant='dc5' {CHOICE} 'c4', 'fpn'"),
        ("coco_det", "engine=mmdet", f"engine='mmdet' {CHOICE} 'torchvision', 'detectron2'"),
        ("coco_det", "roi_resolution=0", f"roi_resolution=0 {RANGE} >= 1"),
        ("coco_det", "rpn_post_nms_top_n_test=0", f"rpn_post_nms_top_n_test=0 {RANGE} >= 1"),
    ],
)
def test_a_value_out_of_range_is_one_line_naming_the_option_the_value_and_the_range(
    task: str, override: str, expected: str
) -> None:
    with pytest.raises(OptionError) as e:
        tasks.parse_options(tasks.get(task).Options, [override])
    message = str(e.value)
    assert message.startswith(f"{task} option {expected}"), message
    assert "\n" not in message


def test_boundaries_that_are_valid_parse() -> None:
    det = tasks.parse_options(
        tasks.get("fmnist_det").Options,
        ["iters=0", "batch_size=0", "short_side=0", "workers=0", "n_train=1", "format=voc"],
    )
    assert (det.iters, det.n_train, det.format) == (0, 1, "voc")
    lin = tasks.parse_options(
        tasks.get("linear").Options, ["batch_size=1", "momentum=0", "lrs=(1,)", "bn=(false,)"]
    )
    assert lin.lrs == (1.0,) and lin.bn == (False,) and lin.batch_size == 1
    low = tasks.parse_options(tasks.get("lowshot").Options, ["percents=(10,100)"])
    assert low.percents == (10, 100)


# The issue's commands: each used to end in a traceback (batch_size 0 / -4: ZeroDivisionError /
# RuntimeError, n_train=0: ValueError) or, for --iters -1, in a record of 0 iterations.
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--task", "linear", "batch_size=0"], f"linear option batch_size=0 {RANGE} >= 1"),
        (["--task", "linear", "batch_size=-4"], f"linear option batch_size=-4 {RANGE} >= 1"),
        (["--task", "fmnist_det", "n_train=0"], f"fmnist_det option n_train=0 {RANGE} in [1, "),
        (["--task", "fmnist_det", "--iters", "-1"], f"--iters=-1 {RANGE} >= 1"),
    ],
)
def test_the_issue_commands_are_one_error_line_and_write_nothing(
    argv: list[str], expected: str, encoder_dir: Path, tiny_fmnist: Path, tmp_path: Path,
    monkeypatch, capsys,
) -> None:  # fmt: skip
    results = tmp_path / "results"
    if "linear" in argv:
        data = [f"data_root={tiny_fmnist}"]
    else:  # the smallest detection run: 4 canvases a split at 32 px
        data = [f"fmnist_root={tiny_fmnist}", f"data_dir={tmp_path / 'fd'}", "n_test=4"]
        data += ["--short-side", "32"] + ([] if "n_train=0" in argv else ["n_train=4"])
    args = [*argv, "--model", str(encoder_dir), *data, "--results-dir", str(results)]
    code, err = cli([*args, "--work-dir", str(tmp_path / "w")], monkeypatch, capsys)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), err
    assert not list(results.rglob("*.json"))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--task", "knn", "--seeds", "0"], f"--seeds=0 {RANGE} >= 1"),
        (["--task", "knn", "--seed", "-1"], f"--seed=-1 {RANGE} in [0, 2147483647]"),
        (["--task", "fmnist_det", "--iters", "0"], f"--iters=0 {RANGE} >= 1"),
        (["--task", "fmnist_det", "--short-side", "0"], f"--short-side=0 {RANGE} >= 1"),
        (["--task", "knn", "--threads", "0"], f"--threads=0 {RANGE} >= 1"),
        (["--task", "coco_det", "--engine", "mmdet"], f"coco_det option engine='mmdet' {CHOICE}"),
        (["--task", "voc_det", "iters=-3"], f"voc_det option iters=-3 {RANGE} >= 0"),
        ([], f"fmnist_det option n_train=0 {RANGE}"),  # the embedded default's options
    ],
)
def test_flags_are_checked_before_any_model_is_loaded(
    argv: list[str], expected: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The model named does not exist: a check made after loading would name the model."""
    extra = ["n_train=0"] if not argv else []
    args = [*argv, *extra, "--model", str(tmp_path / "no-such-encoder")]
    code, err = cli([*args, "--results-dir", str(tmp_path / "r")], monkeypatch, capsys)
    assert code == 2
    assert err.startswith(f"error: {expected}"), err
    assert err.count("\n") == 1


def test_what_depends_on_the_data_is_refused_with_the_sizes(
    encoder_dir: Path, tiny_fmnist: Path, tmp_path: Path
) -> None:
    """k beyond the bank (common.knn would vote with the whole bank: not the k recorded), a
    held-out share that leaves nothing to train on, a last batch of one sample under BN."""
    model = load_model(str(encoder_dir))
    ctx = RunContext(results_root=tmp_path / "r", work_dir=tmp_path / "w")
    data = f"data_root={tiny_fmnist}"
    cases = [
        ("knn", ["ks=(20,1000)"], "knn option ks=(20, 1000): k=1000 exceeds the bank's 512"),
        ("linear", ["val_fraction=0.9999"], "val_fraction=0.9999 holds out all 512 training"),
        ("linear", ["batch_size=460"], "batch_size=460 leaves a batch of 1 sample of the 461"),
        ("lowshot", ["val_fraction=0.95"], "lowshot option val_fraction=0.95 leaves no training"),
    ]
    for task, overrides, expected in cases:
        with pytest.raises(OptionError) as e:
            transfer_run.run_task(task, model, [data, *overrides], ctx)
        assert str(e.value).startswith(expected), str(e.value)
    assert not (tmp_path / "r").exists()
    # bn=(False,) trains on that batch of one: no BN head needs its statistics
    record, _ = transfer_run.run_task(
        "linear", model, [data, "batch_size=460", "bn=(false,)", "epochs=1"], ctx
    )
    assert json.loads(json.dumps(record))["protocol"]["grid"]["batch_size"] == 460
