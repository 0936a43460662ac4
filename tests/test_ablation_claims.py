"""The stop-gradient and predictor claims of SimSiam, through the ablation benchmark (slow).

Five runs of ``experiments/ablate.py``'s matrix at seed 0, in the benchmark's longer reading
(``--steps 1500``, the narrow recipe; about 2 minutes each, 11 in all on 2 CPU cores; at the
matrix's 300 steps SimSiam has not yet passed its random init and the spread has not yet fallen
below 0.2): the SimSiam baseline, the constant-lr predictor, and the three
variants the paper says collapse (no stop-gradient, no predictor, fixed random predictor).
Each claim is asserted in the two parts the benchmark judges (``ablation_run.judge``): the spread
z-std × √d and kNN. A part that does not reproduce at this scale is marked
``xfail(strict=True)`` with the figures the benchmark measured at seed 0 (runs use one thread
and fixed seeds, so they repeat on one machine), and turns into a failure the day it holds;
what does hold at this scale (the center share m_o and the effective rank) is asserted beside.
"""

from __future__ import annotations

import pytest

from experiments.ablation_matrix import BY_NAME
from experiments.ablation_run import (
    CHANCE,
    COLLAPSED_BELOW,
    HEALTHY_ABOVE,
    NEAR_CHANCE,
    run_variant,
)

STEPS = 1500
VARIANTS = ("simsiam", "pred_const_lr", "no_stop_grad", "no_predictor", "fixed_random_predictor")


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict]:
    from tests.conftest import FMNIST

    if not (FMNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"Fashion-MNIST missing in {FMNIST}: run 'make data'")
    out = tmp_path_factory.mktemp("ablation")
    recs = {
        name: run_variant(BY_NAME[name], 0, STEPS, out, str(FMNIST), out / "runs")
        for name in VARIANTS
    }
    for name, r in recs.items():
        print(
            f"{name}: z-std x sqrt(d) {r['z_std_sqrt_d']:.3f}, kNN z {r['knn_z']:.1f}, "
            f"kNN h {r['knn_h']:.1f} (init {r['init_knn_h']:.1f}), m_o {r['m_o']:.2f}"
        )
    return recs


def not_yet(why: str):
    return pytest.mark.xfail(strict=True, reason=f"not reproduced at {STEPS} CPU steps: {why}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simsiam", "pred_const_lr"])
def test_baseline_and_constant_lr_predictor_keep_their_spread(records, name):
    assert records[name]["z_std_sqrt_d"] > HEALTHY_ABOVE


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "simsiam",
        "pred_const_lr",
    ],
)
def test_baseline_and_constant_lr_predictor_beat_random_init(records, name):
    assert records[name]["knn_h"] > records[name]["init_knn_h"]


@pytest.mark.slow
def test_removing_stop_gradient_or_predictor_shrinks_the_spread(records):
    """What holds beside the spread: z is mostly its batch center, with one direction left."""
    base = records["simsiam"]["z_std_sqrt_d"]
    for name in ("no_stop_grad", "no_predictor"):
        assert records[name]["z_std_sqrt_d"] < 0.4 * base, name
        assert records[name]["m_o"] > 0.9, name
        assert records[name]["effective_rank"] < 3.0, name


FIXED_RANDOM_STAYS = not_yet("z-std x sqrt(d) 0.746, kNN on z 57.3% (seed 0)")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "no_stop_grad",
        "no_predictor",
        pytest.param("fixed_random_predictor", marks=FIXED_RANDOM_STAYS),
    ],
)
def test_collapsing_variants_lose_their_spread(records, name):
    assert records[name]["z_std_sqrt_d"] < COLLAPSED_BELOW


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("no_stop_grad", marks=not_yet("kNN on z 73.2% (z-std x sqrt(d) 0.178)")),
        pytest.param("no_predictor", marks=not_yet("kNN on z 66.0% (z-std x sqrt(d) 0.188)")),
        pytest.param("fixed_random_predictor", marks=FIXED_RANDOM_STAYS),
    ],
)
def test_collapsing_variants_fall_to_chance_on_z(records, name):
    assert records[name]["knn_z"] <= CHANCE + NEAR_CHANCE
