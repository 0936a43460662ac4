"""Where the recipes are and which one runs by default: no import beyond the standard library,
so that ``pretrain/run.py --help`` lists them without loading torch (``pretrain.config``
re-exports all three)."""

from __future__ import annotations

from pathlib import Path

RECIPES_DIR = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "simsiam_resnet18_fmnist"


def available_recipes() -> list[str]:
    """The recipe names ``--recipe`` accepts (one TOML file each in ``pretrain/recipes/``)."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
