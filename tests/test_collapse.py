"""SimSiam §4.1, Fig. 2: without stop-gradient the representation collapses; with it, it does not.

Both runs are the embedded recipe on the real Fashion-MNIST, otherwise identical, for the
same number of steps: the first 1,200 of the recipe's 2,808 (the schedule is the full one), about
4 to 8 minutes for the pair on 2 CPU cores, hence ``slow``. Without stop-gradient z-std × √d
falls below 0.2 within 200 steps and settles near 0.13 from step 1,200 on; on the kNN monitor's
bank in eval mode it reads about 0.05.
kNN on the backbone features is reported beside kNN on z: they can disagree in short runs.
"""

from __future__ import annotations

import json

import pytest

from pretrain.config import load_config
from pretrain.hooks import CollapseMonitor, KnnMonitor, MetricsLog
from pretrain.train import Trainer
from records import verdict as V

STEPS = 1200
COMMON = [
    f"train.max_steps={STEPS}",
    "monitor.every=25",
    "monitor.knn_every_epochs=1",
    "monitor.knn_bank=5000",
    "monitor.knn_queries=1000",
]
KEYS = ("z_std_sqrt_d", "rankme", "m_o", "knn_z", "knn_h", "loss", "z_std_sqrt_d_eval", "m_o_eval")


def last(rows: list[dict], key: str) -> float:
    return [r[key] for r in rows if key in r][-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[bool, list[dict]]:
    from tests.conftest import FMNIST

    if not (FMNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"Fashion-MNIST missing in {FMNIST}: run 'make data'")
    out = {}
    for stop_grad in (False, True):
        overrides = [*COMMON, f"data.root={FMNIST}", f"method.stop_grad={str(stop_grad).lower()}"]
        run_dir = tmp_path_factory.mktemp(f"stop_grad_{stop_grad}")
        cfg = load_config("simsiam_resnet18_fmnist", overrides)
        Trainer(cfg, run_dir, [CollapseMonitor(), KnnMonitor(), MetricsLog()]).fit()
        rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
        out[stop_grad] = rows
        print(f"stop_grad={stop_grad}:", {k: round(last(rows, k), 3) for k in KEYS})
    return out


@pytest.mark.slow
def test_removing_stop_gradient_collapses_z(runs):
    without, with_sg = runs[False], runs[True]
    assert last(without, "z_std_sqrt_d") < 0.2 and V.judge(without).outcome == V.COMPLETE
    assert last(without, "m_o") > 0.95  # z is almost all center (Zhang et al. 2022)
    assert last(without, "rankme") < 2.0
    assert last(with_sg, "z_std_sqrt_d") > 0.5 and V.judge(with_sg).outcome != V.COMPLETE
    assert last(with_sg, "rankme") > 20.0


@pytest.mark.slow
def test_the_collapse_also_shows_on_the_knn_bank_in_eval_mode(runs):
    """The same figures on the kNN monitor's bank (eval-mode BN, no augmentation)."""
    without, with_sg = runs[False], runs[True]
    assert last(without, "z_std_sqrt_d_eval") < 0.2 and last(without, "m_o_eval") > 0.95
    assert last(with_sg, "z_std_sqrt_d_eval") > 0.5 and last(with_sg, "m_o_eval") < 0.5


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="not yet shown: after 1,200 CPU steps the collapsed z (z-std x sqrt(d) 0.126 on the "
    "training batch, 0.049 on the kNN bank in eval mode; m_o 0.992 / 0.999) keeps a small "
    "residual whose cosine ranking still carries the class: kNN on z 68.2-73.2% over two runs "
    "(70.9% after the recipe's full 2,808 steps)",
)
def test_knn_on_z_falls_toward_chance_without_stop_gradient(runs):
    assert last(runs[False], "knn_z") < 40.0  # chance is 10%
