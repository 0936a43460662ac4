"""Which ``method.*`` configuration keys each method reads: a card's "Full recipe" lists only
its method's own (a SimSiam card shows no DINO temperature, no BYOL momentum).

The config has one ``method`` section for every method, so a run's recipe carries every
method's keys. ``hub`` cannot import ``pretrain`` (the layers), so the sets are data here;
``tests/test_card_snippets.py`` derives them from ``pretrain`` itself (the keys
``build_method``, the view pipeline and the Trainer's EMA read for that method's recipes, less
the other methods' switches it reads only to insist on their defaults) and fails when they
drift apart.
"""

from __future__ import annotations

_HEADS = ("proj_dim", "proj_hidden_dim", "proj_layers")
_PREDICTOR = ("pred_hidden_dim", "predictor", "loss", "bn")
_EMA = ("momentum_base", "momentum_schedule")  # the Trainer's target update (BYOL §3.2)

METHOD_KEYS: dict[str, frozenset[str]] = {
    "simsiam": frozenset(
        {"name", *_HEADS, *_PREDICTOR, "stop_grad", "symmetric_predictor", "mirror"}
        | {"target_refresh_steps", "center_target"}
    ),
    "byol": frozenset({"name", *_HEADS, *_PREDICTOR, *_EMA}),
    "mocov3": frozenset({"name", *_HEADS, *_PREDICTOR, *_EMA, "temperature"}),
    "dino": frozenset(
        {"name", *_HEADS, *_EMA, "out_dim", "norm_last_layer", "head_bn", "student_temp"}
        | {"teacher_temp", "warmup_teacher_temp", "warmup_teacher_temp_epochs"}
        | {"center_momentum", "freeze_last_layer_epochs", "clip_grad", "drop_path_rate"}
    ),
}


def own_recipe(recipe: dict, method: str | None) -> dict:
    """``recipe`` with its ``method`` section cut to ``method``'s keys (unchanged for a method
    not listed here: nothing is hidden that is not known to be another method's)."""
    keys = METHOD_KEYS.get(method or "")
    section = recipe.get("method")
    if keys is None or not isinstance(section, dict):
        return recipe
    return {**recipe, "method": {k: v for k, v in section.items() if k in keys}}
