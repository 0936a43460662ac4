"""SimSiam §4.1, Fig. 2: without stop-gradient the representation collapses; with it, it does not.

Both runs are the embedded recipe on the real Fashion-MNIST, otherwise identical, for the
same number of steps; the monitors must show the difference: z-std × √d falls below 0.2 and
kNN on z falls toward chance without stop-gradient, and z-std × √d stays above 0.5 with it.
kNN on the backbone features is reported beside (it can disagree in short runs).
"""

from __future__ import annotations

import json

import pytest

from pretrain.config import load_config
from pretrain.hooks import CollapseMonitor, KnnMonitor, MetricsLog
from pretrain.train import Trainer

STEPS = 600
COMMON = [
    f"train.max_steps={STEPS}",
    "monitor.every=25",
    "monitor.knn_every_epochs=1",
    "monitor.knn_bank=5000",
    "monitor.knn_queries=1000",
]


def run(root, tmp_path, stop_grad: bool) -> list[dict]:
    cfg = load_config(
        "simsiam_resnet18_fmnist",
        [*COMMON, f"data.root={root}", f"method.stop_grad={stop_grad}".lower()],
    )
    run_dir = tmp_path / f"stop_grad_{stop_grad}"
    Trainer(cfg, run_dir, [CollapseMonitor(), KnnMonitor(), MetricsLog()]).fit()
    return [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]


def last(rows: list[dict], key: str) -> float:
    return [r[key] for r in rows if key in r][-1]


@pytest.mark.slow
def test_removing_stop_gradient_collapses(real_fmnist, tmp_path):
    without = run(real_fmnist, tmp_path, stop_grad=False)
    with_sg = run(real_fmnist, tmp_path, stop_grad=True)
    report = {
        name: {
            k: round(last(rows, k), 3) for k in ("z_std_sqrt_d", "m_o", "knn_z", "knn_h", "loss")
        }
        for name, rows in (("without stop-grad", without), ("with stop-grad", with_sg))
    }
    print(json.dumps(report, indent=2))
    assert last(without, "z_std_sqrt_d") < 0.2
    assert last(without, "collapsed") is True
    assert last(without, "knn_z") < 40.0  # chance is 10%
    assert last(with_sg, "z_std_sqrt_d") > 0.5
    assert last(with_sg, "collapsed") is False
    assert last(with_sg, "knn_z") > last(without, "knn_z") + 20
