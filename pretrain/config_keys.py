"""Every config key with its type, default, range and meaning: ``pretrain/run.py --list-keys``.

Each column has one source. Type and default: the config dataclasses' fields
(``pretrain.config``, and ``hub.backbones.BackboneSpec`` for ``model.*``). Range:
``pretrain.config_rules.RULES`` (booleans: true / false; ``FREE_TEXT``: any text). Meaning: the
comment written beside the field in its dataclass (or, for a field without one, the comment
lines right above it) — the one place a key is documented, read from the source with
``tokenize``. A field without a comment has no meaning to show, and a test fails.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from pretrain.config import Config, load_config
from pretrain.config_rules import FREE_TEXT, RULES


@dataclass(frozen=True)
class KeyInfo:
    """One row of ``--list-keys``."""

    key: str  # dotted: "train.batch_size"
    type: str
    default: Any  # the dataclass default, or the recipe's value
    range: str
    meaning: str


@cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: meaning}`` from the comments of ``cls``'s source: the comment on the field's
    own lines, else the block of comment lines right above it ("" where neither exists)."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}  # line number -> comment text
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    docs: dict[str, str] = {}
    (classdef,) = ast.parse(source).body
    for node in classdef.body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        own = [comments[i] for i in range(node.lineno, node.end_lineno + 1) if i in comments]
        above: list[str] = []
        i = node.lineno - 1
        while i >= 1 and lines[i - 1].lstrip().startswith("#"):
            above.insert(0, comments[i])
            i -= 1
        docs[node.target.id] = " ".join(own or above)
    return docs


def _type_name(kind: Any) -> str:
    if isinstance(kind, type):
        return kind.__name__
    return " | ".join("None" if a is type(None) else a.__name__ for a in typing.get_args(kind))


def _range(key: str, kind: Any) -> str:
    if key in RULES:
        return RULES[key].describe()
    if kind is bool:
        return "true / false"
    if key in FREE_TEXT:
        return "any text"
    return ""


def config_keys(cfg: Config | None = None) -> list[KeyInfo]:
    """Every key of the config, in the config's order, with ``cfg``'s values as the defaults
    (the dataclasses' own defaults when ``cfg`` is None)."""
    cfg = cfg if cfg is not None else Config()
    rows: list[KeyInfo] = []

    def walk(obj: Any, prefix: str) -> None:
        cls = type(obj)
        hints, docs = typing.get_type_hints(cls), field_docs(cls)
        for f in dataclasses.fields(cls):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, f"{key}.")
                continue
            kind = hints[f.name]
            rows.append(KeyInfo(key, _type_name(kind), value, _range(key, kind), docs[f.name]))

    walk(cfg, "")
    return rows


def _shown(value: Any) -> str:
    """A value as an override would write it (TOML-like: true, 'text', 0.05)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "unset"
    return repr(value)


def keys_table(recipe: str | None = None) -> str:
    """The ``--list-keys`` table: key, type, default (or ``recipe``'s value), range, meaning."""
    cfg = load_config(recipe) if recipe else None
    rows = config_keys(cfg)
    head = ("key", "type", f"value in {cfg.recipe}" if cfg else "default", "range", "meaning")
    cells = [head] + [(r.key, r.type, _shown(r.default), r.range, r.meaning) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  " + c[4] for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len("meaning"))
    usage = "set any key with key=value (e.g. train.epochs=5); on resume only a few may change"
    return "\n".join([*(line.rstrip() for line in lines), "", usage])
