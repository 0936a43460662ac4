"""``pretrain/run.py --help`` loads no torch (it took 10.7 s), and ``--list-keys`` lists every
config key with its type, default, range and meaning, from the config's own source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pretrain import run
from pretrain.config import Config, load_config
from pretrain.config_rules import FREE_TEXT, RULES
from pretrain.resume import flatten

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "torchvision", "submitit", "numpy")
# run.py's --help as its own command would run it, then the heavy packages it loaded
HELP_THEN_MODULES = (
    "import json, runpy, sys\n"
    "sys.argv = ['pretrain/run.py', '--help']\n"
    "try:\n"
    "    runpy.run_path('pretrain/run.py', run_name='__main__')\n"
    "except SystemExit as e:\n"
    "    assert e.code == 0, e.code\n"
    f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
)


def test_help_imports_no_torch_and_names_list_keys():
    """Was: 10.7 s, most of it importing torch, timm and torchvision (BENCHMARKS.md has the
    time now); a test times nothing, it checks what --help imports."""
    proc = subprocess.run(
        [sys.executable, "-c", HELP_THEN_MODULES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    *help_lines, loaded = proc.stdout.strip().splitlines()
    assert json.loads(loaded) == []
    text = "\n".join(help_lines)
    assert "--list-keys" in text and "every config key" in text
    assert "what an override may change on resume" in text


def test_every_config_key_has_a_type_a_default_a_range_and_a_meaning():
    from pretrain.config_keys import config_keys

    rows = config_keys()
    assert [r.key for r in rows] == list(flatten(Config().to_dict()))
    undocumented = [r.key for r in rows if not r.meaning]
    assert not undocumented  # a field's comment in its dataclass is its meaning
    for r in rows:
        assert r.range, r.key
        if r.key in RULES:
            assert r.range == RULES[r.key].describe()
        elif r.key in FREE_TEXT:
            assert r.range == "any text"
        else:
            assert r.type == "bool" and r.range == "true / false", r.key


def test_a_meaning_is_the_comment_beside_the_field_or_above_it():
    from pretrain.config import OptimConfig, TrainConfig
    from pretrain.config_keys import field_docs

    assert field_docs(TrainConfig)["max_steps"].startswith("> 0 stops early at this step")
    assert field_docs(OptimConfig)["pred_lr_mult"].startswith("The predictor's lr = this ×")


def test_list_keys_prints_the_table_with_the_recipes_values(capsys):
    assert run.main(["--list-keys", "--recipe", "dino_resnet18_fmnist"]) is None
    out = capsys.readouterr().out
    head, rule, *rows = out.splitlines()
    assert head.split()[:6] == ["key", "type", "value", "in", "dino_resnet18_fmnist", "range"]
    assert set(rule) <= {"-", " "}
    teacher = next(r for r in rows if r.startswith("method.teacher_temp "))
    assert teacher.split()[:5] == ["method.teacher_temp", "float", "0.04", ">", "0"]
    assert "tau_t after its warmup" in teacher
    recipe = load_config("dino_resnet18_fmnist")
    for key, value in flatten(recipe.to_dict()).items():
        row = next(r for r in rows if r.startswith(f"{key} "))
        assert row.split()[0] == key
        if isinstance(value, bool):
            shown = "true" if value else "false"
        else:
            shown = "unset" if value is None else repr(value)
        assert f" {shown} " in row, (key, row)


def test_list_keys_with_an_unknown_recipe_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as e:
        run.main(["--list-keys", "--recipe", "no_such_recipe"])
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith("error: recipe 'no_such_recipe' not found")
