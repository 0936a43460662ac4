"""SimSiam's stop-gradient and predictor claims through the ablation benchmark (slow).

Five runs of ``experiments/ablate.py``'s matrix at seed 0 in the benchmark's longer reading
(``--steps 1500``, the narrow recipe; about 3 minutes each on 2 CPU cores): the SimSiam
baseline, the constant-lr predictor, and the three variants SimSiam §4.1-4.2 says fail (no
stop-gradient, no predictor, a predictor fixed at its random init). Each run is judged as the
boards judge it (``records.references.judged``: the windowed verdict, with the baseline run as
the healthy reference) and compared with what the paper reports (``records/explanations.py``'s
``expect``). A claim that does not reproduce at this scale is marked ``xfail(strict=True)`` with
the outcome the committed records show at seed 0 (runs use one thread and fixed seeds, so they
repeat on one machine), and turns into a failure the day it holds.

Beside the outcomes: what the explanations board says of a collapsed run (its section "Collapsed
z, yet kNN stays high"): kNN on h stays near the random init's, and the residual r/o is far above
the ~1e-4 below which cosine kNN on z stops resolving it.
"""

from __future__ import annotations

import pytest

from experiments.ablation_matrix import BY_NAME
from experiments.ablation_run import run_variant
from records import verdict as V
from records.references import judged

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
            f"{name}: z-std x sqrt(d) {r['z_std_sqrt_d']:.3f}, RankMe {r['effective_rank']:.2f}, "
            f"kNN z {r['knn_z']:.1f}, kNN h {r['knn_h']:.1f} (init {r['init_knn_h']:.1f})"
        )
    return recs


@pytest.fixture(scope="module")
def verdicts(records) -> dict[str, V.Verdict]:
    by_run = judged(list(records.values()))
    return {name: by_run[r["run_id"]] for name, r in records.items()}


def not_yet(why: str):
    return pytest.mark.xfail(strict=True, reason=f"not reproduced at {STEPS} CPU steps: {why}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "simsiam",
        "pred_const_lr",
        "no_stop_grad",
        "no_predictor",
        pytest.param(
            "fixed_random_predictor",
            marks=not_yet("borderline, RankMe 0.21-0.26 of the reference straddles 0.25 (seed 0)"),
        ),
    ],
)
def test_the_outcome_is_the_one_the_paper_reports(verdicts, name):
    assert verdicts[name].outcome in BY_NAME[name].expect, verdicts[name].text()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["no_stop_grad", "no_predictor"])
def test_a_collapsed_z_keeps_kNN_for_the_reasons_the_board_gives(records, verdicts, name):
    rec = records[name]
    assert verdicts[name].outcome == V.COMPLETE
    assert abs(rec["knn_h"] - rec["init_knn_h"]) < 8.0  # h stays near its random init's
    assert rec["r_over_o_eval"] > 1e-3  # far above cosine kNN's ~1e-4 resolution
