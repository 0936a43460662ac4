"""The collapse-ablation matrix: each variant's method, config overrides, the claim it tests
(``collapse`` or ``no_collapse``) and the paper table or section the claim comes from. Data
only; ``experiments/ablation_run.py`` runs and judges a variant, ``experiments/ablate.py`` is
the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    """One row of the matrix: a method, config overrides, and the claim it tests."""

    name: str
    method: str
    overrides: list[str] = field(default_factory=list)
    expect: str = "no_collapse"  # "collapse" or "no_collapse"
    claim: str = ""
    source: str = ""


MATRIX: list[Variant] = [
    Variant(
        "simsiam",
        "simsiam",
        ["optim.fix_pred_lr=false"],
        "no_collapse",
        "SimSiam baseline (predictor lr decayed with the rest) does not collapse",
        "SimSiam Table 1 (67.7)",
    ),
    Variant(
        "no_stop_grad",
        "simsiam",
        ["optim.fix_pred_lr=false", "method.stop_grad=false"],
        "collapse",
        "without stop-gradient the output collapses",
        "SimSiam §4.1, Fig. 2 (0.1)",
    ),
    Variant(
        "no_predictor",
        "simsiam",
        ["optim.fix_pred_lr=false", "method.predictor='none'"],
        "collapse",
        "without a predictor the output collapses",
        "SimSiam Table 1 (0.1)",
    ),
    Variant(
        "fixed_random_predictor",
        "simsiam",
        ["optim.fix_pred_lr=false", "method.predictor='fixed_random'"],
        "collapse",
        "a predictor fixed at its random init collapses",
        "SimSiam Table 1 (1.5)",
    ),
    Variant(
        "pred_const_lr",
        "simsiam",
        ["optim.fix_pred_lr=true"],
        "no_collapse",
        "a predictor kept at the initial lr works",
        "SimSiam Table 1 (68.1); Su 2020",
    ),
    Variant(
        "linear_predictor",
        "simsiam",
        ["optim.fix_pred_lr=false", "method.predictor='linear'"],
        "no_collapse",
        "a single linear predictor suffices (de-correlation)",
        "Zhang et al., ICLR 2022",
    ),
    Variant(
        "bias_predictor",
        "simsiam",
        ["optim.fix_pred_lr=false", "method.predictor='bias'"],
        "no_collapse",
        "a bias-only predictor suffices to avoid complete collapse (de-centering)",
        "Zhang et al., ICLR 2022",
    ),
    Variant(
        "symmetric_predictor",
        "simsiam",
        ["optim.fix_pred_lr=false", "method.symmetric_predictor=true"],
        "collapse",
        "the predictor on both branches collapses",
        "Zhang et al., ICLR 2022",
    ),
    Variant(
        "mirror",
        "simsiam",
        ["optim.fix_pred_lr=false", "method.mirror=true"],
        "collapse",
        "Mirror SimSiam (stop-gradient on the predictor input) collapses",
        "Zhang et al., ICLR 2022",
    ),
    Variant(
        "bn_none",
        "simsiam",
        ["optim.fix_pred_lr=false", "method.bn='none'"],
        "no_collapse",
        "no BN in the heads trains poorly but does not collapse",
        "SimSiam Table 3 (34.6)",
    ),
    Variant(
        "byol_tau0.99",
        "byol",
        ["method.momentum_base=0.99"],
        "no_collapse",
        "BYOL with tau_base 0.99 does not collapse",
        "BYOL Table 5a (72.5)",
    ),
    Variant(
        "byol_tau0",
        "byol",
        ["method.momentum_base=0.0", "method.momentum_schedule='constant'"],
        "collapse",
        "BYOL without momentum (tau = 0) collapses",
        "BYOL Table 5a (0.3)",
    ),
    Variant(
        "mocov3",
        "mocov3",
        [],
        "no_collapse",
        "MoCo v3 (contrastive, negatives in the batch) does not collapse",
        "MoCo v3 §3",
    ),
]
BY_NAME = {v.name: v for v in MATRIX}
