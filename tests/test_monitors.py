"""Collapse monitors (z, the predictor's output p, the predictor's eigen-alignment, the z
spectrum) and the kNN classifier on inputs whose answers are known."""

from __future__ import annotations

import json
import math

import pytest
import torch

from common.knn import knn_predict, knn_top1
from pretrain.monitors import (
    P_KEYS,
    collapse_stats,
    p_stats,
    pred_alignment,
    predictor_fit,
    rankme,
    z_spectrum,
)


def test_gaussian_z_has_std_one_over_sqrt_d():
    stats = collapse_stats(torch.randn(4096, 128))
    assert stats["z_std_sqrt_d"] == pytest.approx(1.0, abs=0.05)
    assert stats["m_o"] < 0.1


def test_constant_z_is_collapsed():
    z = torch.ones(256, 64) + 1e-4 * torch.randn(256, 64)
    stats = collapse_stats(z)
    assert stats["z_std_sqrt_d"] < 0.01
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


# --- the predictor's output p ---------------------------------------------------------------


def test_p_stats_read_a_spread_and_a_collapsed_p():
    gen = torch.Generator().manual_seed(0)
    spread = p_stats(torch.randn(4096, 64, generator=gen))
    assert set(spread) == set(P_KEYS)
    assert spread["p_std_sqrt_d"] == pytest.approx(1.0, abs=0.05)
    assert spread["m_o_p"] < 0.1 and spread["rankme_p"] > 55
    center = torch.randn(64, generator=gen)
    collapsed = p_stats(center + 1e-3 * torch.randn(512, 64, generator=gen))
    assert collapsed["p_std_sqrt_d"] < 0.01 and collapsed["m_o_p"] == pytest.approx(1.0, abs=1e-4)
    assert collapsed["r_over_o_p"] < 0.01
    # the same statistics as z's, under p's names
    p = torch.randn(256, 16, generator=gen) + 0.5
    z_names = collapse_stats(p)
    assert p_stats(p) == {
        "p_std_sqrt_d": z_names["z_std_sqrt_d"],
        "rankme_p": z_names["rankme"],
        "m_o_p": z_names["m_o"],
        "r_over_o_p": z_names["r_over_o"],
    }


# --- the predictor's eigen-alignment with z's correlation (Tian et al., ICML 2021) -----------


def correlated_z(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) float64 with a spread spectrum (distinct eigenvalues of its covariance)."""
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=gen, dtype=torch.float64)
    scale = torch.linspace(0.2, 2.0, d, dtype=torch.float64)
    return (torch.randn(n, d, generator=gen, dtype=torch.float64) * scale) @ mix


def covariance(z: torch.Tensor) -> torch.Tensor:
    zc = z - z.mean(0)
    return zc.T @ zc / len(z)  # (D, D)


def test_fit_in_the_eigenbasis_is_lstsq_rotated_by_eigh():
    """predictor_fit's M is U^T W U with W = torch.linalg.lstsq's fit and U = eigh(F)'s."""
    gen = torch.Generator().manual_seed(1)
    z = correlated_z(600, 24)
    p = torch.tanh(z @ torch.randn(24, 24, generator=gen, dtype=torch.float64)) + 0.3
    m, lam = predictor_fit(z, p)
    zc, pc = z - z.mean(0), p - p.mean(0)
    w = torch.linalg.lstsq(zc, pc).solution  # (D, D)
    evals, u = torch.linalg.eigh(covariance(z))
    u = u.flip(1)  # descending, as predictor_fit orders them
    torch.testing.assert_close(lam, evals.flip(0))
    # eigenvectors are defined up to sign: compare U^T W U entry-wise up to the signs s_i s_j
    expected = u.T @ w @ u
    signs = torch.sign((u * torch.linalg.eigh(zc.T @ zc)[1].flip(1)).sum(0))
    torch.testing.assert_close(m, expected * signs[:, None] * signs[None, :])


def test_a_predictor_commuting_with_f_is_aligned():
    z = correlated_z(3000, 32)
    f = covariance(z)
    w = f @ f - 0.7 * f + 0.2 * torch.eye(32, dtype=torch.float64)  # a polynomial of F
    stats = pred_alignment(z, z @ w + 5.0)  # with a bias: the fit is affine
    assert stats["pred_alignment"] == pytest.approx(1.0, abs=1e-9)
    assert stats["pred_fit_dims"] == 32
    assert stats["pred_eig_spread"] > 0.5  # aligned, and not the identity


def test_identity_and_bias_only_predictors_read_aligned_trivially():
    """The identity commutes with everything: alignment 1, and the spread 0 says it is the
    identity (documented in pred_alignment)."""
    z = correlated_z(1000, 16)
    for p in (z, z + torch.linspace(-1, 1, 16, dtype=torch.float64), 3 * z):
        stats = pred_alignment(z, p)
        assert stats["pred_alignment"] == pytest.approx(1.0, abs=1e-9)
        assert stats["pred_eig_spread"] < 1e-6


@pytest.mark.parametrize("d", [64, 128])
def test_a_random_predictor_reads_two_over_d_plus_one(d):
    """A random W's symmetric part is a GOE matrix: its diagonal's share of the squared
    Frobenius norm is 2/(d + 1) in expectation (0.031 at d = 64, 0.016 at 128), whatever the
    basis. Tested: the mean over 8 draws within 15% of it; every draw below 3 × it."""
    expected = 2 / (d + 1)
    z = correlated_z(4 * d, d)
    values = []
    for seed in range(8):
        gen = torch.Generator().manual_seed(100 + seed)
        w = torch.randn(d, d, generator=gen, dtype=torch.float64)
        values.append(pred_alignment(z, z @ w)["pred_alignment"])
    assert sum(values) / len(values) == pytest.approx(expected, rel=0.15)
    assert max(values) < 3 * expected


def test_fewer_samples_than_dimensions_read_the_batch_span():
    """N <= D: W is fitted on the N - 1 directions the centred batch spans, where a
    predictor commuting with the batch's F still reads 1 and a random one about 2/N."""
    n, d = 48, 128
    z = correlated_z(n, d)
    f = covariance(z)
    aligned = pred_alignment(z, z @ (f @ f + f))
    assert aligned["pred_fit_dims"] == n - 1
    assert aligned["pred_alignment"] == pytest.approx(1.0, abs=1e-6)
    gen = torch.Generator().manual_seed(7)
    random = pred_alignment(z, z @ torch.randn(d, d, generator=gen, dtype=torch.float64))
    assert random["pred_fit_dims"] == n - 1 and random["pred_alignment"] < 6 / n


def test_a_constant_z_has_no_alignment():
    z = torch.ones(64, 8)
    stats = pred_alignment(z, 2 * z)
    assert stats["pred_fit_dims"] == 0 and math.isnan(stats["pred_alignment"])


# --- the spectrum of z (Jing et al., ICLR 2022) ---------------------------------------------


def test_spectrum_is_descending_from_one_and_shows_the_rank():
    gen = torch.Generator().manual_seed(0)
    full = z_spectrum(torch.randn(500, 32, generator=gen) * torch.linspace(0.1, 1, 32))
    assert len(full) == 32 and full[0] == 1.0
    assert all(a >= b for a, b in zip(full, full[1:], strict=False)) and full[-1] > 0.01
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=gen))
    low = z_spectrum(torch.randn(500, 4, generator=gen) @ q[:4] + 3.0)  # rank 4 + a center
    assert low[0] == 1.0 and low[3] > 0.5 and max(low[4:]) < 1e-5
    assert z_spectrum(torch.ones(10, 4)) == [0.0] * 4


# --- a real SimSiam run logs every key ------------------------------------------------------

TRAIN_P_KEYS = (*P_KEYS, "pred_alignment", "pred_eig_spread", "pred_fit_dims")
EVAL_KEYS = ("rankme_eval", "z_spectrum_eval", *(f"{k}_eval" for k in TRAIN_P_KEYS))


def run_rows(tiny_fmnist, tmp_path, *extra: str) -> tuple[list[dict], object]:
    from pretrain.hooks import CollapseMonitor, KnnMonitor, MetricsLog, ProgressBar
    from pretrain.train import Trainer
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_fmnist, *extra)
    knn, bar = KnnMonitor(), ProgressBar()
    trainer = Trainer(cfg, tmp_path / "run", [CollapseMonitor(), knn, MetricsLog(), bar]).fit()
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return rows, (trainer, knn, bar)


def test_simsiam_run_logs_p_alignment_and_the_eval_spectrum(tiny_fmnist, tmp_path):
    from common.transforms import normalize_small
    from records.verdict import LOSS_MIN, OUTCOMES, judge

    rows, (trainer, knn, bar) = run_rows(tiny_fmnist, tmp_path)
    monitor_rows = [r for r in rows if "z_std_sqrt_d" in r]
    eval_rows = [r for r in rows if "z_std_sqrt_d_eval" in r]
    assert len(monitor_rows) >= 4 and len(eval_rows) >= 2
    for row in monitor_rows:
        assert all(row[k] is not None for k in TRAIN_P_KEYS), row
        assert 0.0 <= row["pred_alignment"] <= 1.0
        assert row["pred_fit_dims"] <= 63  # a batch of 64 spans at most 63 directions
        assert "collapsed" not in row  # no single-point flag: the verdict is windowed
    for row in eval_rows:
        assert all(row[k] is not None for k in EVAL_KEYS), row
        spectrum = row["z_spectrum_eval"]
        assert len(spectrum) == 32 and spectrum[0] == 1.0  # min(bank 256, d 32)
        assert all(a >= b for a, b in zip(spectrum, spectrum[1:], strict=False))
    # the progress line shows the windowed verdict over the whole trace, not a one-point flag
    assert bar.postfix["verdict"] in OUTCOMES and "collapsed" not in bar.postfix
    assert bar.postfix["verdict"] == judge(rows, loss_min=LOSS_MIN["simsiam"]).outcome
    # the eval-mode p figures are the predictor's on the bank's eval-mode z
    model = trainer.model.eval()
    with torch.no_grad():
        x = normalize_small(knn.bank[0], trainer.cfg.data.img_size, trainer.cfg.model.in_chans)
        z = model.projector(model.backbone(x))  # (bank, D)
        p = model.predictor(z)
    last = trainer.metrics
    for key, value in p_stats(p).items():
        assert last[f"{key}_eval"] == pytest.approx(value, rel=1e-4)
    assert last["rankme_eval"] == pytest.approx(rankme(z), rel=1e-4)
    assert last["pred_alignment_eval"] == pytest.approx(
        pred_alignment(z, p)["pred_alignment"], rel=1e-4
    )


def test_a_run_without_predictor_logs_no_p(tiny_fmnist, tmp_path):
    rows, _ = run_rows(tiny_fmnist, tmp_path, "method.predictor='none'", "train.epochs=1")
    assert any("z_std_sqrt_d" in r for r in rows) and any("rankme_eval" in r for r in rows)
    assert not any(k in r for r in rows for k in (*TRAIN_P_KEYS, "m_o_p_eval"))
