"""Collapse monitors and the kNN classifier on inputs whose answers are known."""

from __future__ import annotations

import json
import math

import pytest
import torch

from common.knn import knn_predict, knn_top1
from pretrain.monitors import collapse_stats, is_collapsed, rankme


def test_gaussian_z_has_std_one_over_sqrt_d():
    stats = collapse_stats(torch.randn(4096, 128))
    assert stats["z_std_sqrt_d"] == pytest.approx(1.0, abs=0.05)
    assert stats["m_o"] < 0.1 and not is_collapsed(stats["z_std_sqrt_d"])


def test_constant_z_is_collapsed():
    z = torch.ones(256, 64) + 1e-4 * torch.randn(256, 64)
    stats = collapse_stats(z)
    assert stats["z_std_sqrt_d"] < 0.01 and is_collapsed(stats["z_std_sqrt_d"])
    assert stats["m_o"] == pytest.approx(1.0, abs=1e-3)


def test_center_and_residual_shares_add_up():
    z = torch.randn(512, 32) + 2.0
    stats = collapse_stats(z)
    zn = torch.nn.functional.normalize(z, dim=1)
    r2 = ((zn - zn.mean(0)) ** 2).sum(1).mean().item()
    assert stats["m_o"] ** 2 + r2 == pytest.approx(1.0, abs=1e-5)


def test_residual_over_center_by_hand():
    # normalized rows: e0 + 0.1 * (+-e1) / norm; center (e0) / norm; residual 0.1 / norm
    z = torch.tensor([[1.0, 0.1], [1.0, -0.1], [1.0, 0.1], [1.0, -0.1]])
    assert collapse_stats(z)["r_over_o"] == pytest.approx(0.1, rel=1e-5)
    assert collapse_stats(torch.eye(4))["r_over_o"] == pytest.approx(math.sqrt(3), rel=1e-5)


def test_rankme_counts_equal_directions():
    q, _ = torch.linalg.qr(torch.randn(64, 64))
    z = torch.randn(1000, 5) @ q[:5]  # rank 5, roughly equal spread
    assert rankme(z) == pytest.approx(5.0, rel=0.1)
    assert rankme(torch.eye(16)) == pytest.approx(16.0, rel=1e-3)


def test_weighted_knn_vote_by_hand():
    bank = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 1, 1])
    query = torch.nn.functional.normalize(torch.tensor([[1.0, 0.02]]), dim=1)
    # k=2: neighbours 0 (label 0, sim ~1.0) and 1 (label 1, sim ~0.995): label 0 weighs more
    assert knn_predict(query, bank, labels, 2, k=2, t=0.07).item() == 0
    # k=3 adds a far neighbour of label 1 with weight exp(~0.02/0.07): still label 0... by hand:
    sims = query @ bank.T
    w = (sims / 0.07).exp()[0]
    expected = 0 if w[0] > w[1] + w[2] else 1
    assert knn_predict(query, bank, labels, 2, k=3, t=0.07).item() == expected


def test_knn_top1_on_separable_clusters():
    centers = torch.randn(5, 16) * 10
    labels = torch.arange(5).repeat_interleave(40)
    feats = centers[labels] + torch.randn(200, 16)
    assert knn_top1(feats[1::2], labels[1::2], feats[::2], labels[::2], k=5) == 100.0
    chance = knn_top1(torch.randn(200, 16), labels, torch.randn(200, 16), labels, k=5)
    assert chance < 40.0 and math.isfinite(chance)


def test_knn_on_z_is_blind_to_the_residuals_size_until_float_resolution():
    """Why kNN on a collapsed z need not fall toward chance (BENCHMARKS.md, "Why kNN on z
    stays high in a collapsed z").

    With z = o + eps * r, cosine similarity ranks neighbours by the residual r's component
    orthogonal to the center o, whatever eps is: shrinking the residual (z-std x sqrt(d) -> 0,
    m_o -> 1) leaves the kNN answer unchanged until the differences fall below fp32's
    resolution of 1 - cos, about a 1e-4 relative residual; only then is it chance.
    """
    gen = torch.Generator().manual_seed(0)
    classes, dim = 10, 64
    means = torch.randn(classes, dim, generator=gen)
    bank_y = torch.randint(0, classes, (2000,), generator=gen)
    query_y = torch.randint(0, classes, (500,), generator=gen)
    bank_r = means[bank_y] + 1.5 * torch.randn(2000, dim, generator=gen)  # (N, D)
    query_r = means[query_y] + 1.5 * torch.randn(500, dim, generator=gen)  # (Q, D)
    center = 10 * torch.nn.functional.normalize(torch.randn(dim, generator=gen), dim=0)  # (D,)

    def knn_at(eps: float) -> float:
        return knn_top1(center + eps * query_r, query_y, center + eps * bank_r, bank_y)

    def z_std(eps: float) -> float:
        return collapse_stats(center + eps * bank_r)["z_std_sqrt_d"]

    full = knn_top1(query_r, query_y, bank_r, bank_y)
    assert full > 90.0
    for eps in (1.0, 1e-1, 1e-2, 1e-3):
        assert knn_at(eps) == pytest.approx(full, abs=1.5)
    assert z_std(1e-2) < 0.05 and z_std(1e-3) < 0.005  # collapsed by the z-std monitor
    # r_over_o tracks the residual's size that kNN on z ignores: linear in eps
    ratio = [collapse_stats(center + eps * bank_r)["r_over_o"] for eps in (1e-2, 1e-3)]
    assert ratio[0] == pytest.approx(10 * ratio[1], rel=0.02)
    assert knn_at(1e-5) < 20.0  # within 10 points of chance (10%) only below float resolution


def test_knn_monitor_logs_the_banks_collapse_figures_in_eval_mode(tiny_fmnist, tmp_path):
    from common.transforms import normalize_small
    from pretrain.hooks import CollapseMonitor, KnnMonitor, MetricsLog
    from pretrain.train import Trainer
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_fmnist)
    knn = KnnMonitor()
    trainer = Trainer(cfg, tmp_path / "run", [CollapseMonitor(), knn, MetricsLog()]).fit()
    model = trainer.model.eval()
    with torch.no_grad():
        x = normalize_small(knn.bank[0], cfg.data.img_size, cfg.model.in_chans)
        z = model.projector(model.backbone(x))  # (bank, D), BN on running statistics
    expected = collapse_stats(z)
    last = trainer.metrics
    for key in ("z_std_sqrt_d", "m_o", "m_r", "r_over_o"):
        assert last[f"{key}_eval"] == pytest.approx(expected[key], rel=1e-4)
    # the eval-mode figure is its own measurement, not the training batch's copied over
    assert last["z_std_sqrt_d_eval"] != pytest.approx(last["z_std_sqrt_d"], rel=1e-3)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "knn_z" in rows[0] and "z_std_sqrt_d_eval" not in rows[0]  # BN has no statistics yet
