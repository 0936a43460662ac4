"""One override grammar: the pretraining config, the transfer options and the sweeps read a
value's text the same way (common.overrides)."""

from __future__ import annotations

import pytest

from common.errors import UserError
from common.overrides import parse_int_list, parse_value, split_list, split_override
from pretrain.config import load_config
from transfer.tasks import parse_options
from transfer.tasks.linear import Options as LinearOptions


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", 2),
        ("0.05", 0.05),
        ("1e-4", 1e-4),
        ("true", True),
        ("False", False),
        ("'fp32'", "fp32"),
        ("cpu", "cpu"),
        ("/data/imagenet", "/data/imagenet"),
        ("[0.1, 1.0]", [0.1, 1.0]),
        ("(0.1,1.0)", [0.1, 1.0]),
        ("(False,)", [False]),
        ("()", []),
        ("(0.2)", 0.2),
    ],
)
def test_a_value_reads_the_same_everywhere(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_config_and_task_options_share_the_grammar(tmp_path):
    cfg = load_config("simsiam_resnet18_fmnist", ["train.precision=fp32", "optim.base_lr=(0.2)"])
    assert cfg.train.precision == "fp32"
    opts = parse_options(LinearOptions, ["lrs=[0.1, 1.0]", "bn=(False,)", "epochs=3"])
    assert opts.lrs == (0.1, 1.0) and opts.bn == (False,) and opts.epochs == 3
    same = parse_options(LinearOptions, ["lrs=(0.1,1.0)", "bn=[false]", "epochs=3"])
    assert (same.lrs, same.bn) == (opts.lrs, opts.bn)


def test_lists_and_bad_overrides_are_one_clear_error():
    assert split_list(" 64, 128,,256 ") == ["64", "128", "256"]
    assert parse_int_list("0,1,2", "--seeds") == [0, 1, 2]
    with pytest.raises(UserError, match="--seeds takes comma-separated integers"):
        parse_int_list("0,one", "--seeds")
    with pytest.raises(UserError, match="not of the form key=value"):
        split_override("train.epochs")
    assert split_override(" train.epochs = 2 ") == ("train.epochs", "2")
