"""The stop-gradient and predictor claims of SimSiam, through the ablation benchmark (slow).

Five runs of ``pretrain/ablate.py``'s matrix at seed 0 (300 steps each, the narrow recipe;
a few minutes on 2 CPU cores): the SimSiam baseline, the constant-lr predictor, and the three
variants the paper says collapse (no stop-gradient, no predictor, fixed random predictor).
Each claim is asserted as the benchmark judges it (``ablate.judge``). A claim that does not
reproduce at this scale is marked ``xfail(strict=True)`` with the figures the benchmark
measured, so it turns into a failure the day it starts to hold; what does hold at this scale
is asserted beside it.
"""

from __future__ import annotations

import pytest

from pretrain.ablate import BY_NAME, judge, run_variant

STEPS = 300
VARIANTS = ("simsiam", "pred_const_lr", "no_stop_grad", "no_predictor", "fixed_random_predictor")


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict]:
    from tests.conftest import FMNIST

    if not (FMNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"Fashion-MNIST missing in {FMNIST}: run 'make data'")
    out = tmp_path_factory.mktemp("ablation")
    recs = {name: run_variant(BY_NAME[name], 0, STEPS, out, str(FMNIST)) for name in VARIANTS}
    for name, r in recs.items():
        print(
            f"{name}: z-std x sqrt(d) {r['z_std_sqrt_d']:.3f}, kNN z {r['knn_z']:.1f}, "
            f"kNN h {r['knn_h']:.1f} (init {r['init_knn_h']:.1f}), m_o {r['m_o']:.2f}"
        )
    return recs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simsiam", "pred_const_lr"])
def test_baseline_and_constant_lr_predictor_do_not_collapse(records, name):
    ok, why = judge("no_collapse", records[name])
    assert ok, why


@pytest.mark.slow
def test_removing_stop_gradient_or_predictor_shrinks_the_spread(records):
    """What holds at 300 steps: the spread of z falls far below the baseline's."""
    base = records["simsiam"]["z_std_sqrt_d"]
    for name in ("no_stop_grad", "no_predictor"):
        assert records[name]["z_std_sqrt_d"] < 0.4 * base, name
        assert records[name]["m_o"] > 0.9, name  # z is mostly its batch center
        assert records[name]["effective_rank"] < 3.0, name  # one direction left


NOT_YET = (
    "not reproduced at 300 CPU steps (narrow ResNet-18, batch 128): z-std x sqrt(d) falls to "
    "0.23-0.31 but not below 0.2, and kNN on z stays near 60% (chance 10%); see BENCHMARKS.md"
)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=NOT_YET)
@pytest.mark.parametrize("name", ["no_stop_grad", "no_predictor"])
def test_removing_stop_gradient_or_predictor_collapses(records, name):
    ok, why = judge("collapse", records[name])
    assert ok, why


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="not reproduced at 300 CPU steps: a fixed random predictor keeps z-std x sqrt(d) "
    "near 0.8 and kNN on z near 60%; see BENCHMARKS.md",
)
def test_fixed_random_predictor_collapses(records):
    ok, why = judge("collapse", records["fixed_random_predictor"])
    assert ok, why
