"""The explanations of non-collapse and the ablation variants that test them (data only).

The one list of ablation variants, read by the explanations board
(``leaderboards/explanations_board.py``) and by the ablation runner, whose matrices
(``experiments/ablation_matrix.py``) are derived from it: ``EXPLANATIONS`` names, for each
explanation, its claim in one sentence, its source, and its variants; ``VARIANTS`` holds every
variant they name, plus the collapse matrix's BYOL, MoCo v3 and BN controls that no
explanation names. A variant of the collapse matrix (``in_matrix``: ``experiments/ablate.py
--matrix collapse``) has committed records under ``leaderboards/results/ablation/`` whose
``overrides`` and names are the ones here; the others run with ``--matrix explanations``.
Outcomes are ``records.verdict``'s: "collapsed", "failed to converge", "healthy"; the runner
judges a run reproduced when its verdict is one of the variant's ``expect``. A variant whose
config key does not exist yet lists it in ``needs_key`` (no matrix runs it until
``pretrain/config.py`` has it).

Sources (docs/recipes.md, "Collapse: the claims the ablation benchmark checks" and the DINO
section's "Monitors"; the papers):
- SimSiam: Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021
  (arXiv 2011.10566): §4.1 / Fig. 2 (stop-gradient), Table 1 (predictor), §5 (hypothesis:
  stop-gradient as an alternating optimisation; its multi-step alternation).
- Su 2020: J. Su, a blog post reading SimSiam as a dynamical system: the predictor must adapt faster
  than the encoder, or the encoder slides to the constant solution.
- Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive
  Pairs", ICML 2021 (DirectPred): the predictor's relative learning rate and weight decay
  shape the non-contrastive dynamics.
- Zhang et al., "How does SimSiam avoid collapse without negative samples?", ICLR 2022:
  z = o + r; the predictor's extra gradient de-centers (a bias suffices) and de-correlates
  (a linear predictor suffices); symmetric predictor and Mirror SimSiam collapse.
- BYOL: Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020: Table 5a (target decay rate).
- MoCo v3: Chen, Xie & He, "An Empirical Study of Training Self-Supervised Vision
  Transformers", ICCV 2021: §3 (contrastive, the batch's other images as negatives).
- DINO: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021:
  §5.2 (teacher choice: a copy of the student fails) and §5.3 / Fig. 7 (centering alone →
  uniform output; sharpening alone → one dimension dominates; both avoid collapse).
"""

from __future__ import annotations

from dataclasses import dataclass, field

COLLAPSED = "collapsed"
FAILED = "failed to converge"
HEALTHY = "healthy"

SIMSIAM_LR = 0.1  # optim.base_lr of pretrain/recipes/simsiam_resnet18_fmnist.toml
DECAYED = "optim.fix_pred_lr=false"  # the matrix's SimSiam baseline: predictor lr decayed too


@dataclass(frozen=True)
class ExplanationVariant:
    """One ablation run design: config overrides, the outcome the explanation predicts."""

    name: str
    method: str
    overrides: tuple[str, ...]
    expect: tuple[str, ...]  # the verdict outcomes that agree with the claim
    claim: str
    source: str
    refuted_by: str  # what a measurement would have to show to refute the claim
    in_matrix: bool = False  # already in the collapse-ablation matrix (has records)
    needs_key: tuple[str, ...] = ()  # config keys the overrides need that do not exist yet

    @property
    def matrix_expect(self) -> str:
        """The matrix's two-valued claim ("collapse" / "no_collapse")."""
        return "collapse" if self.expect == (COLLAPSED,) else "no_collapse"


@dataclass(frozen=True)
class Explanation:
    """One explanation of why a Siamese method does not collapse."""

    name: str
    title: str
    claim: str  # one sentence
    source: str
    variants: tuple[str, ...]  # names in VARIANTS, controls first
    notes: tuple[str, ...] = field(default_factory=tuple)


def _v(*args, **kwargs) -> ExplanationVariant:
    return ExplanationVariant(*args, **kwargs)


PRED_MULT = "optim.pred_lr_mult"  # predictor lr = encoder lr × this
PRED_FREEZE = "optim.pred_freeze_steps"  # predictor not updated for the first k steps
TARGET_REFRESH = "method.target_refresh_steps"  # stop-grad target = a copy refreshed every k

VARIANTS: tuple[ExplanationVariant, ...] = (
    # --- in the matrix (records committed) ---
    _v(
        "simsiam",
        "simsiam",
        (DECAYED,),
        (HEALTHY,),
        "SimSiam (stop-gradient, trained predictor, lr decayed) does not collapse",
        "SimSiam Table 1 (67.7)",
        "collapsed on most seeds",
        in_matrix=True,
    ),
    _v(
        "no_stop_grad",
        "simsiam",
        (DECAYED, "method.stop_grad=false"),
        (COLLAPSED,),
        "without stop-gradient the output collapses",
        "SimSiam §4.1, Fig. 2 (0.1)",
        "healthy on most seeds without stop-gradient",
        in_matrix=True,
    ),
    _v(
        "no_predictor",
        "simsiam",
        (DECAYED, "method.predictor='none'"),
        (COLLAPSED,),
        "without a predictor the output collapses",
        "SimSiam §4.2, Table 1 (a) (0.1)",
        "healthy on most seeds without a predictor",
        in_matrix=True,
    ),
    _v(
        "fixed_random_predictor",
        "simsiam",
        (DECAYED, "method.predictor='fixed_random'"),
        (FAILED,),
        "a predictor fixed at its random init fails to converge (loss stays high) but does not "
        "collapse",
        "SimSiam §4.2, Table 1 (b) (1.5)",
        "collapsed, or a low loss with kNN above the random init",
        in_matrix=True,
    ),
    _v(
        "pred_const_lr",
        "simsiam",
        ("optim.fix_pred_lr=true",),
        (HEALTHY,),
        "a predictor kept at the initial lr (faster than the decaying encoder) works",
        "SimSiam §4.2, Table 1 (c) (68.1); Su 2020",
        "collapsed on most seeds",
        in_matrix=True,
    ),
    _v(
        "linear_predictor",
        "simsiam",
        (DECAYED, "method.predictor='linear'"),
        (HEALTHY,),
        "a single linear predictor suffices (de-correlation)",
        "Zhang et al., ICLR 2022",
        "collapsed on most seeds with a linear predictor",
        in_matrix=True,
    ),
    _v(
        "bias_predictor",
        "simsiam",
        (DECAYED, "method.predictor='bias'"),
        (HEALTHY,),
        "a bias-only predictor suffices to avoid complete collapse (de-centering)",
        "Zhang et al., ICLR 2022",
        "collapsed on most seeds with a bias-only predictor",
        in_matrix=True,
    ),
    _v(
        "symmetric_predictor",
        "simsiam",
        (DECAYED, "method.symmetric_predictor=true"),
        (COLLAPSED,),
        "the predictor on both branches collapses (no asymmetric extra gradient)",
        "Zhang et al., ICLR 2022",
        "healthy on most seeds, not drifting towards collapse",
        in_matrix=True,
    ),
    _v(
        "mirror",
        "simsiam",
        (DECAYED, "method.mirror=true"),
        (COLLAPSED,),
        "Mirror SimSiam (stop-gradient on the predictor's input) collapses",
        "Zhang et al., ICLR 2022",
        "healthy on most seeds",
        in_matrix=True,
    ),
    _v(
        "bn_none",
        "simsiam",
        (DECAYED, "method.bn='none'"),
        (HEALTHY, FAILED),
        "no BN in the heads trains poorly but does not collapse",
        "SimSiam §4.4, Table 3 (a) (34.6)",
        "collapsed on most seeds",
        in_matrix=True,
    ),
    _v(
        "byol_tau0.99",
        "byol",
        ("method.momentum_base=0.99",),
        (HEALTHY,),
        "BYOL with tau_base 0.99 does not collapse",
        "BYOL Table 5a (72.5)",
        "collapsed on most seeds",
        in_matrix=True,
    ),
    _v(
        "byol_tau0",
        "byol",
        ("method.momentum_base=0.0", "method.momentum_schedule='constant'"),
        (COLLAPSED,),
        "BYOL without momentum (tau = 0) collapses",
        "BYOL Table 5a (0.3)",
        "healthy on most seeds",
        in_matrix=True,
    ),
    _v(
        "mocov3",
        "mocov3",
        (),
        (HEALTHY,),
        "MoCo v3 (contrastive, negatives in the batch) does not collapse",
        "MoCo v3 §3",
        "collapsed on most seeds",
        in_matrix=True,
    ),
    # --- new: predictor and encoder learning rates (Su 2020; Tian et al. 2021) ---
    _v(
        "pred_lr_0.1x",
        "simsiam",
        (DECAYED, f"{PRED_MULT}=0.1"),
        (COLLAPSED, FAILED),
        "a predictor 10x slower than the encoder cannot keep up: the encoder slides to the "
        "constant solution",
        "Su 2020; Tian et al., ICML 2021",
        "healthy on most seeds while 10x is not",
    ),
    _v(
        "pred_lr_1x",
        "simsiam",
        (DECAYED, f"{PRED_MULT}=1.0"),
        (HEALTHY,),
        "the multiplier at 1 is the baseline (a control of the new key: the same numbers as "
        "'simsiam')",
        "SimSiam Table 1 (67.7)",
        "numbers different from 'simsiam'",
    ),
    _v(
        "pred_lr_10x",
        "simsiam",
        (DECAYED, f"{PRED_MULT}=10.0"),
        (HEALTHY,),
        "a predictor 10x faster than the encoder keeps it from collapsing",
        "Su 2020; Tian et al., ICML 2021 (a larger predictor lr helps)",
        "collapsed on most seeds",
    ),
    _v(
        "enc_lr_0.1x",
        "simsiam",
        (DECAYED, f"optim.base_lr={SIMSIAM_LR / 10!r}", f"{PRED_MULT}=10.0"),
        (HEALTHY,),
        "what matters is the ratio: the encoder 10x slower under the same predictor lr is the "
        "'predictor 10x faster' case",
        "Su 2020",
        "collapsed on most seeds (the ratio is not what decides)",
    ),
    _v(
        "enc_lr_10x",
        "simsiam",
        (DECAYED, f"optim.base_lr={SIMSIAM_LR * 10!r}", f"{PRED_MULT}=0.1"),
        (COLLAPSED, FAILED),
        "the encoder 10x faster under the same predictor lr is the 'predictor 10x slower' case",
        "Su 2020",
        "healthy on most seeds while pred_lr_0.1x is not",
    ),
    _v(
        "pred_frozen_100",
        "simsiam",
        (DECAYED, f"{PRED_FREEZE}=100"),
        (HEALTHY,),
        "a predictor frozen for the first 100 of 300 steps (a fixed random one meanwhile, "
        "Table 1b: no collapse) recovers once it adapts: it is the predictor's adapting that "
        "prevents collapse",
        "SimSiam §4.2, Table 1 (b); Su 2020",
        "collapsed at the end on most seeds",
    ),
    _v(
        "no_weight_decay",
        "simsiam",
        (DECAYED, "optim.weight_decay=0.0"),
        (HEALTHY,),
        "stop-gradient and the predictor, not weight decay, prevent collapse; weight decay "
        "only shapes which directions survive",
        "Tian et al., ICML 2021 (DirectPred)",
        "collapsed on most seeds without weight decay",
    ),
    # --- new: stop-gradient as an alternating optimisation (SimSiam §5) ---
    _v(
        "alternation_10",
        "simsiam",
        (DECAYED, f"{TARGET_REFRESH}=10"),
        (HEALTHY,),
        "targets held fixed for 10 steps (one step of the alternation solved by 10 SGD steps) "
        "still work",
        "SimSiam §5, multi-step alternation (10-step 68.7)",
        "collapsed on most seeds",
    ),
    # --- new: DINO (recipe dino_resnet18_fmnist) ---
    _v(
        "dino",
        "dino",
        (),
        (HEALTHY,),
        "DINO with centering, sharpening and a momentum teacher does not collapse",
        "DINO §5.3, Fig. 7",
        "collapsed on most seeds",
    ),
    _v(
        "dino_no_centering",
        "dino",
        ("method.center_momentum=1.0",),
        (COLLAPSED,),
        "sharpening alone (the center stays 0): one dimension dominates, teacher entropy → 0",
        "DINO §5.3, Fig. 7",
        "healthy with the KL above 0 on most seeds",
    ),
    _v(
        "dino_no_sharpening",
        "dino",
        ("method.teacher_temp=0.1", "method.warmup_teacher_temp=0.1"),
        (COLLAPSED,),
        "centering alone (τt = τs = 0.1): the output collapses to uniform, teacher entropy → "
        "log K, KL → 0",
        "DINO §5.3, Fig. 7",
        "healthy with the KL above 0 on most seeds",
    ),
    _v(
        "dino_teacher_copy",
        "dino",
        ("method.momentum_base=0.0", "method.momentum_schedule='constant'"),
        (COLLAPSED, FAILED),
        "a teacher that is a copy of the student (momentum 0) makes training fail",
        "DINO §5.2 (student copy: kNN 0.1)",
        "healthy on most seeds",
    ),
)
BY_NAME = {v.name: v for v in VARIANTS}

EXPLANATIONS: tuple[Explanation, ...] = (
    Explanation(
        "stop_gradient",
        "Stop-gradient as an implicit alternating optimisation",
        "SimSiam minimises over the encoder and per-image targets in alternation; "
        "stop-gradient is what makes one step of it, so without it the loss is minimised by a "
        "constant and the output collapses.",
        "SimSiam §5 (hypothesis), §4.1 / Fig. 2",
        ("simsiam", "no_stop_grad", "alternation_10"),
    ),
    Explanation(
        "predictor_dynamics",
        "The predictor and the learning dynamics",
        "The predictor is necessary (none or fixed random: 0.1 / 1.5) and must adapt faster "
        "than the encoder, or the encoder slides to the constant solution.",
        "SimSiam Table 1; Su 2020; Tian et al., ICML 2021",
        (
            "simsiam",
            "no_predictor",
            "fixed_random_predictor",
            "pred_const_lr",
            "pred_lr_0.1x",
            "pred_lr_1x",
            "pred_lr_10x",
            "enc_lr_0.1x",
            "enc_lr_10x",
            "pred_frozen_100",
            "no_weight_decay",
        ),
    ),
    Explanation(
        "decentering",
        "De-centering and de-correlation",
        "With z = o + r, collapse is the center o taking over (m_o → 1); the asymmetric "
        "predictor's extra gradient de-centers (a bias suffices) and de-correlates (a linear "
        "predictor suffices), and designs without it (symmetric predictor, Mirror) collapse.",
        "Zhang et al., ICLR 2022",
        ("linear_predictor", "bias_predictor", "symmetric_predictor", "mirror"),
    ),
    Explanation(
        "dino",
        "DINO's centering and sharpening",
        "Centering prevents one dimension from dominating but pushes to uniform, sharpening "
        "does the opposite; only both together (with a momentum teacher) avoid collapse.",
        "DINO §5.3, Fig. 7; §5.2",
        ("dino", "dino_no_centering", "dino_no_sharpening", "dino_teacher_copy"),
        notes=(
            "run with recipe dino_resnet18_fmnist and narrow heads "
            "(experiments/ablate.py --matrix explanations); the curve keeps teacher_entropy and "
            "teacher_student_kl for records.verdict's KL statistic",
        ),
    ),
)


def needed_keys() -> tuple[str, ...]:
    """Every config key a variant needs that does not exist yet, in first-use order."""
    return tuple(dict.fromkeys(k for v in VARIANTS for k in v.needs_key))
