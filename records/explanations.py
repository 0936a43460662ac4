"""The explanations of non-collapse, their atomic claims, and what each predicts (data and rules).

The one list of ablation variants (``VARIANTS``), read by the explanations board
(``leaderboards/explanations_board.py``), the collapse-ablation board and the ablation runner,
whose matrices (``experiments/ablation_matrix.py``) are derived from it. A variant of the
collapse matrix (``in_matrix``: ``experiments/ablate.py --matrix collapse``) has committed
records under ``leaderboards/results/ablation/`` whose ``overrides`` and names are the ones
here; the others run with ``--matrix explanations``. A variant whose config key does not exist
yet lists it in ``needs_key`` (no matrix runs it until ``pretrain/config.py`` has it).

**Explanations** (``EXPLANATIONS``), each split into atomic claims (``Claim``):

- ``stop_gradient``: SimSiam §5 (Chen & He, "Exploring Simple Siamese Representation
  Learning", CVPR 2021, arXiv 2011.10566): SimSiam is an alternation between the encoder θ and
  per-image targets η_x (Eq. 5-8); stop-gradient makes one step of it, and the predictor h
  approximates the expectation over augmentations E_T[F_θ(T(x))] (EOA) that one sampled view
  stands in for.
- ``predictor_dynamics``: J. Su, "从动力学角度看优化算法（六）：为什么SimSiam不退化？" (a blog
  post, December 2020, https://kexue.fm/archives/7980): read as a dynamical system, SimSiam does
  not collapse because the predictor adapts faster than the encoder; Tian, Chen & Ganguli,
  "Understanding Self-supervised Learning Dynamics without Contrastive Pairs", ICML 2021 (arXiv
  2102.06810): in a linear model the predictor must be learned (with a relative learning rate
  large enough), its eigenspace aligns with the correlation of z, and an eigenmode grows only
  where the predictor's eigenvalue lets it; DirectPred sets a linear predictor from that
  correlation.
- ``decentering``: Zhang et al., "How does SimSiam avoid collapse without negative samples? A
  unified understanding with self-supervised contrastive learning", ICLR 2022 (arXiv
  2203.16262): §2 revisits SimSiam's claims and argues against §5's EOA reading (the symmetric
  predictor and Mirror SimSiam, which keep a predictor and a stop-gradient, collapse); §3
  writes z = o + r (center and residual); the asymmetric design's extra gradient de-centers
  (a bias layer alone suffices) and de-correlates.
- ``dino``: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV
  2021 (arXiv 2104.14294): §5.3 / Fig. 7 (centering alone → a uniform output, sharpening alone
  → one dimension dominates, KL → 0 in both), §5.2 / Fig. 6 (a teacher that is a copy of the
  student fails: kNN 0.1).

**Predictions.** Every variant lists, for every explanation, its ``Prediction``: the outcomes
(``records.verdict``'s) the explanation allows, the atomic claim it follows from, where it is
stated, and whose reading it is when the source does not state it (``reading``: this
project's, "(our reading)", or a rival's: Zhang et al. §2 read SimSiam §5's EOA as predicting
that Mirror SimSiam and the symmetric predictor work); an empty prediction is "no
prediction". ``kind`` sorts a variant: *discriminating* when two
explanations that predict differ, *control* when every explanation that predicts predicts the
same (shown as a control, never counted as support), *no prediction* when none or one predicts.

**Judging** (``judge_seeds``): an experiment is *consistent* with a prediction when every seed
is in the predicted set (a borderline seed counts only when every outcome it lies between is
predicted), *inconsistent* when every seed is not borderline and
outside it, otherwise *inconclusive at this scale* with the measured reason. It is judged at its
longest run length with ``SEEDS`` seeds.

**Labels** (``label``): from an explanation's (or a claim's) tally of discriminating
experiments: *refuted at this scale* when one is inconsistent (every seed outside the predicted
set, none borderline) and none supports; *mixed at this scale* when one is inconsistent and one
supports; *supported at this scale* when one supports and none is inconsistent; *untested at
this scale* otherwise. An experiment *supports* an explanation when it is consistent with it and
inconsistent with a rival that predicts otherwise: one where no rival's prediction failed (each
allowed the outcome or was inconclusive) did not tell them apart and is tallied apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from records.verdict import BORDERLINE, COMPLETE, DIMENSIONAL, FAILED, HEALTHY

SEEDS = 3  # seeds an experiment is judged on
OURS = "ours"  # Prediction.reading: this project's reading, not the source's statement
ZHANG_READING = "Zhang et al. §2"  # the rival's reading of SimSiam §5 (EOA) it argues against
COLLAPSE = (COMPLETE, DIMENSIONAL)
NOT_COMPLETE = (HEALTHY, DIMENSIONAL)  # "no complete collapse" and still learning

SIMSIAM_LR = 0.1  # optim.base_lr of pretrain/recipes/simsiam_resnet18_fmnist.toml
DECAYED = "optim.fix_pred_lr=false"  # the matrix's SimSiam baseline: predictor lr decayed too
PRED_MULT = "optim.pred_lr_mult"  # predictor lr = encoder lr × this
PRED_FREEZE = "optim.pred_freeze_steps"  # predictor not updated for the first k steps
TARGET_REFRESH = "method.target_refresh_steps"  # stop-grad target = a copy refreshed every k
CENTER_TARGET = "method.center_target"  # the stop-gradient target minus its batch center

# Explanation names, in the board's order
E1, E2, E3, E4 = "stop_gradient", "predictor_dynamics", "decentering", "dino"

DISCRIMINATING, CONTROL, NO_PREDICTION = "discriminating", "control", "no prediction"
CONSISTENT, INCONSISTENT, INCONCLUSIVE = "consistent", "inconsistent", "inconclusive at this scale"
SUPPORTED, REFUTED, MIXED, UNTESTED = (
    "supported at this scale",
    "refuted at this scale",
    "mixed at this scale",
    "untested at this scale",
)


@dataclass(frozen=True)
class Claim:
    """One atomic claim of an explanation: judged on its own."""

    id: str
    text: str
    source: str


@dataclass(frozen=True)
class Prediction:
    """What one explanation predicts for one variant: the outcomes it allows (empty: no
    prediction), the claim it follows from, where it is stated, and whose reading it is when
    the source does not state it."""

    outcomes: tuple[str, ...] = ()
    claim: str = ""
    source: str = ""
    reading: str = ""  # "": the source states it; OURS; or whose reading it is (a rival's)

    @property
    def predicts(self) -> bool:
        return bool(self.outcomes)

    @property
    def ours(self) -> bool:
        return self.reading == OURS

    def reading_text(self) -> str:
        """ "our reading", "Zhang et al. §2's reading", or "" (the source's statement)."""
        if not self.reading:
            return ""
        return "our reading" if self.ours else f"{self.reading}'s reading"

    def text(self) -> str:
        """ "complete collapse or dimensional collapse (our reading)", or "no prediction"."""
        if not self.outcomes:
            return NO_PREDICTION
        reading = self.reading_text()
        return " or ".join(self.outcomes) + (f" ({reading})" if reading else "")


NONE = Prediction()


@dataclass(frozen=True)
class ExplanationVariant:
    """One ablation run design: its config, what its source reports, and what every
    explanation predicts for it."""

    name: str
    method: str
    overrides: tuple[str, ...]
    expect: tuple[str, ...]  # the outcomes the variant's source reports (the paper's result)
    claim: str  # the source's result in words
    source: str
    predictions: tuple[tuple[str, Prediction], ...] = ()  # (explanation, prediction)
    baseline: str = ""  # the unablated variant it is compared with ("" for a baseline)
    on: tuple[str, ...] = ("z",)  # outputs judged: ("z", "p") also judges the predictor's
    note: str = ""
    in_matrix: bool = False  # in the collapse-ablation matrix (has records since it began)
    needs_key: tuple[str, ...] = ()  # config keys the overrides need that do not exist yet

    @property
    def matrix_expect(self) -> str:
        """The collapse matrix's two-valued claim ("collapse" / "no_collapse"; "unreported"
        for a design no source has run)."""
        if not self.expect:
            return "unreported"
        return "collapse" if set(self.expect) <= set(COLLAPSE) else "no_collapse"

    def prediction(self, explanation: str) -> Prediction:
        return dict(self.predictions).get(explanation, NONE)

    @property
    def kind(self) -> str:
        """discriminating / control / no prediction (module docstring)."""
        sets = {frozenset(p.outcomes) for _, p in self.predictions if p.predicts}
        n = sum(p.predicts for _, p in self.predictions)
        if len(sets) > 1:
            return DISCRIMINATING
        return CONTROL if n > 1 else NO_PREDICTION

    def rivals(self, explanation: str) -> list[tuple[str, Prediction]]:
        """The other explanations that predict something different for this variant."""
        own = frozenset(self.prediction(explanation).outcomes)
        return [
            (e, p)
            for e, p in self.predictions
            if e != explanation and p.predicts and frozenset(p.outcomes) != own
        ]


@dataclass(frozen=True)
class Explanation:
    """One explanation of why a Siamese method does not collapse."""

    name: str
    title: str
    claim: str  # one sentence
    source: str
    claims: tuple[Claim, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants it predicts something for, in VARIANTS' order."""
        return tuple(v.name for v in VARIANTS if v.prediction(self.name).predicts)


def _p(outcomes: tuple[str, ...], claim: str, source: str, ours: bool = False,
       by: str = "") -> Prediction:  # fmt: skip
    return Prediction(tuple(outcomes), claim, source, OURS if ours else by)


def _v(name: str, method: str, overrides: tuple[str, ...], expect: tuple[str, ...],
       claim: str, source: str, **kw) -> ExplanationVariant:  # fmt: skip
    preds = kw.pop("predictions", {})
    ordered = tuple((e, preds.get(e, NONE)) for e in (E1, E2, E3, E4))
    return ExplanationVariant(name, method, overrides, expect, claim, source,
                              predictions=ordered, **kw)  # fmt: skip


OURS_NO_RATE = "no learning rate in the account: the recipe's outcome"  # E1/E3 on lr variants
SIMSIAM_BASE = "simsiam"

_DESIGNS: tuple[ExplanationVariant, ...] = (
    # --- SimSiam: baseline and the paper's own ablations (controls) ---
    _v(
        "simsiam",
        "simsiam",
        (DECAYED,),
        (HEALTHY,),
        "SimSiam (stop-gradient, trained predictor, lr decayed) does not collapse: 67.7",
        "SimSiam §4.2, Table 1 (67.7)",
        predictions={
            E1: _p((HEALTHY,), "E1.alternation", "SimSiam §5"),
            E2: _p((HEALTHY,), "E2.learned", "Su 2020; Tian et al."),
            E3: _p((HEALTHY,), "E3.asymmetry", "Zhang et al. §2"),
        },
        in_matrix=True,
    ),
    _v(
        "no_stop_grad",
        "simsiam",
        (DECAYED, "method.stop_grad=false"),
        (COMPLETE,),
        "without stop-gradient the output collapses: 0.1, the std of the l2-normalized output → 0",
        "SimSiam §4.1, Fig. 2 (0.1)",
        predictions={
            E1: _p((COMPLETE,), "E1.stopgrad", "SimSiam §4.1, §5"),
            E2: _p((COMPLETE,), "E2.learned", "Tian et al. (stop-gradient is essential)"),
            E3: _p((COMPLETE,), "E3.asymmetry", "Zhang et al. §2 (symmetric designs collapse)"),
        },
        baseline=SIMSIAM_BASE,
        in_matrix=True,
    ),
    _v(
        "no_predictor",
        "simsiam",
        (DECAYED, "method.predictor='none'"),
        (COMPLETE,),
        "without a predictor the output collapses: 0.1",
        "SimSiam §4.2, Table 1a (0.1)",
        predictions={
            E1: _p((COMPLETE,), "E1.eoa", "SimSiam §4.2, Table 1a"),
            E2: _p((COMPLETE,), "E2.learned", "SimSiam Table 1a; Tian et al."),
            E3: _p((COMPLETE,), "E3.asymmetry", "Zhang et al. §2"),
        },
        baseline=SIMSIAM_BASE,
        in_matrix=True,
    ),
    _v(
        "fixed_random_predictor",
        "simsiam",
        (DECAYED, "method.predictor='fixed_random'"),
        (FAILED,),
        "a predictor fixed at its random init: 'does not converge, and the loss remains high' "
        "(1.5), not a collapse",
        "SimSiam §4.2, Table 1b (1.5)",
        predictions={
            E1: _p((FAILED,), "E1.eoa", "SimSiam §4.2, Table 1b; §5 (h must learn the EOA)"),
            E2: _p((FAILED,), "E2.learned", "SimSiam Table 1b; Tian et al."),
        },
        baseline=SIMSIAM_BASE,
        in_matrix=True,
    ),
    _v(
        "pred_const_lr",
        "simsiam",
        ("optim.fix_pred_lr=true",),
        (HEALTHY,),
        "a predictor kept at the initial lr (faster than the decaying encoder) works: 68.1",
        "SimSiam §4.2, Table 1c (68.1)",
        predictions={
            E1: _p((HEALTHY,), "E1.alternation", OURS_NO_RATE, ours=True),
            E2: _p((HEALTHY,), "E2.faster", "Su 2020; SimSiam Table 1c"),
            E3: _p((HEALTHY,), "E3.asymmetry", OURS_NO_RATE, ours=True),
        },
        baseline=SIMSIAM_BASE,
        in_matrix=True,
    ),
    _v(
        "linear_predictor",
        "simsiam",
        (DECAYED, "method.predictor='linear'"),
        (HEALTHY,),
        "a single linear predictor trains (DirectPred's linear predictor; de-correlation)",
        "Tian et al. (DirectPred); Zhang et al.",
        predictions={
            E2: _p((HEALTHY,), "E2.eigen", "Tian et al. (a linear predictor, DirectPred)"),
            E3: _p((HEALTHY,), "E3.decorrelate", "Zhang et al. (de-correlation)"),
        },
        baseline=SIMSIAM_BASE,
        in_matrix=True,
    ),
    _v(
        "pred_lr_1x",
        "simsiam",
        (DECAYED, f"{PRED_MULT}=1.0"),
        (HEALTHY,),
        "the predictor-lr multiplier at 1 is the baseline (a control of the key)",
        "SimSiam Table 1 (67.7)",
        predictions={
            E1: _p((HEALTHY,), "E1.alternation", "the baseline's config", ours=True),
            E2: _p((HEALTHY,), "E2.faster", "the baseline's config", ours=True),
            E3: _p((HEALTHY,), "E3.asymmetry", "the baseline's config", ours=True),
        },
        baseline=SIMSIAM_BASE,
    ),
    _v(
        "pred_lr_10x",
        "simsiam",
        (DECAYED, f"{PRED_MULT}=10.0"),
        (HEALTHY,),
        "a predictor 10x faster than the encoder",
        "Su 2020; Tian et al. (relative lr)",
        predictions={
            E1: _p((HEALTHY,), "E1.alternation", OURS_NO_RATE, ours=True),
            E2: _p((HEALTHY,), "E2.faster", "Su 2020; Tian et al. (relative predictor lr)"),
            E3: _p((HEALTHY,), "E3.asymmetry", OURS_NO_RATE, ours=True),
        },
        baseline=SIMSIAM_BASE,
    ),
    _v(
        "enc_lr_0.1x",
        "simsiam",
        (DECAYED, f"optim.base_lr={SIMSIAM_LR / 10!r}", f"{PRED_MULT}=10.0"),
        (HEALTHY,),
        "the encoder 10x slower under the same predictor lr: the 'predictor 10x faster' case",
        "Su 2020",
        predictions={
            E1: _p((HEALTHY,), "E1.alternation", OURS_NO_RATE, ours=True),
            E2: _p((HEALTHY,), "E2.faster", "Su 2020 (the ratio is what matters)"),
            E3: _p((HEALTHY,), "E3.asymmetry", OURS_NO_RATE, ours=True),
        },
        baseline=SIMSIAM_BASE,
    ),
    _v(
        "pred_frozen_100",
        "simsiam",
        (DECAYED, f"{PRED_FREEZE}=100"),
        (HEALTHY,),
        "a predictor frozen for the first 100 steps (a fixed random one meanwhile), then "
        "trained, recovers",
        "SimSiam Table 1b; Su 2020",
        predictions={
            E1: _p((HEALTHY,), "E1.eoa", "h learns the EOA once it trains", ours=True),
            E2: _p((HEALTHY,), "E2.learned", "Su 2020: it adapts once trained", ours=True),
            E3: _p((HEALTHY,), "E3.asymmetry", "the asymmetric design is kept", ours=True),
        },
        baseline=SIMSIAM_BASE,
    ),
    _v(
        "alternation_10",
        "simsiam",
        (DECAYED, f"{TARGET_REFRESH}=10"),
        (HEALTHY,),
        "targets held fixed for 10 steps (one step of the alternation solved by 10 SGD steps) "
        "work: 68.7",
        "SimSiam §5.2, multi-step alternation (10-step 68.7)",
        predictions={
            E1: _p((HEALTHY,), "E1.alternation", "SimSiam §5.2 (multi-step alternation)"),
            E2: _p((HEALTHY,), "E2.learned", "the predictor still learns", ours=True),
            E3: _p((HEALTHY,), "E3.asymmetry", "the asymmetric design is kept", ours=True),
        },
        baseline=SIMSIAM_BASE,
    ),
    # --- experiments that tell the explanations apart ---
    _v(
        "mirror",
        "simsiam",
        (DECAYED, "method.mirror=true"),
        COLLAPSE,
        "Mirror SimSiam (stop-gradient on the predictor's input, D(h(sg(z1)), z2)) collapses",
        "Zhang et al. §2 (Mirror SimSiam)",
        predictions={
            E1: _p((HEALTHY,), "E1.eoa", "if h is the EOA, Mirror SimSiam works", by=ZHANG_READING),
            E3: _p(COLLAPSE, "E3.asymmetry", "Zhang et al. §2 (collapses)"),
        },
        baseline=SIMSIAM_BASE,
        in_matrix=True,
    ),
    _v(
        "symmetric_predictor",
        "simsiam",
        (DECAYED, "method.symmetric_predictor=true"),
        COLLAPSE,
        "the predictor on both branches, D(h(z1), sg(h(z2))), collapses",
        "Zhang et al. §2 (symmetric predictor)",
        predictions={
            E1: _p(
                (HEALTHY,), "E1.eoa", "a predictor and a stop-gradient are kept", by=ZHANG_READING
            ),
            E3: _p(COLLAPSE, "E3.asymmetry", "Zhang et al. §2 (collapses)"),
        },
        baseline=SIMSIAM_BASE,
        on=("z", "p"),
        note="the loss compares p with p, so the collapse may be in p while z is not: judged "
        "on z and on p (the more collapsed of the two); a record without p monitors is "
        "inconclusive",
        in_matrix=True,
    ),
    _v(
        "bias_predictor",
        "simsiam",
        (DECAYED, "method.predictor='bias'"),
        NOT_COMPLETE,
        "a bias-only predictor (p = z + b) is enough to avoid complete collapse (de-centering)",
        "Zhang et al. (a single bias layer)",
        predictions={
            E2: _p(
                COLLAPSE,
                "E2.eigen",
                "Tian et al.'s eigenmode dynamics: the predictor's linear part is the identity, "
                "so no eigenmode grows",
                ours=True,
            ),
            E3: _p(NOT_COMPLETE, "E3.decenter", "Zhang et al. (a bias layer suffices)"),
        },
        baseline=SIMSIAM_BASE,
        note="Tian et al. analyse a linear predictor; that p = z + b cannot grow an eigenmode "
        "is this project's reading of their eigenvalue dynamics, not their statement",
        in_matrix=True,
    ),
    _v(
        "pred_lr_0.1x",
        "simsiam",
        (DECAYED, f"{PRED_MULT}=0.1"),
        (*COLLAPSE, FAILED),
        "a predictor 10x slower than the encoder cannot keep up: the encoder slides to the "
        "constant solution",
        "Su 2020; Tian et al. (relative lr)",
        predictions={
            E1: _p((HEALTHY,), "E1.alternation", OURS_NO_RATE, ours=True),
            E2: _p(
                (*COLLAPSE, FAILED), "E2.faster", "Su 2020; Tian et al. (relative predictor lr)"
            ),
            E3: _p((HEALTHY,), "E3.asymmetry", OURS_NO_RATE, ours=True),
        },
        baseline=SIMSIAM_BASE,
    ),
    _v(
        "enc_lr_10x",
        "simsiam",
        (DECAYED, f"optim.base_lr={SIMSIAM_LR * 10!r}", f"{PRED_MULT}=0.1"),
        (*COLLAPSE, FAILED),
        "the encoder 10x faster under the same predictor lr: the 'predictor 10x slower' case",
        "Su 2020",
        predictions={
            E1: _p((HEALTHY,), "E1.alternation", OURS_NO_RATE, ours=True),
            E2: _p((*COLLAPSE, FAILED), "E2.faster", "Su 2020 (the ratio is what matters)"),
            E3: _p((HEALTHY,), "E3.asymmetry", OURS_NO_RATE, ours=True),
        },
        baseline=SIMSIAM_BASE,
        note="the encoder's lr is 10x the recipe's here (1.0): a collapse may be that lr's "
        "effect on any design, not the ratio's; `pred_lr_0.1x` changes the ratio alone",
    ),
    _v(
        "no_predictor_centered_target",
        "simsiam",
        (DECAYED, "method.predictor='none'", f"{CENTER_TARGET}=true"),
        (),
        "no predictor, the stop-gradient target minus its batch center: the de-centering "
        "without the predictor",
        "this project (from Zhang et al.'s z = o + r)",
        predictions={
            E1: _p(
                (COMPLETE,),
                "E1.eoa",
                "no predictor to approximate the EOA: as Table 1a (0.1), complete collapse",
                ours=True,
            ),
            E2: _p(
                (COMPLETE,),
                "E2.learned",
                "no predictor: as Table 1a (0.1) and `no_predictor` here, complete collapse",
                ours=True,
            ),
            E3: _p(
                NOT_COMPLETE,
                "E3.decenter",
                "de-centering is what the extra gradient does (Zhang et al. §3)",
                ours=True,
            ),
        },
        baseline=SIMSIAM_BASE,
    ),
    # --- other methods: no explanation predicts (the collapse matrix's references) ---
    _v(
        "bn_none",
        "simsiam",
        (DECAYED, "method.bn='none'"),
        (HEALTHY, FAILED),
        "no BN in the heads trains poorly (34.6) but does not collapse",
        "SimSiam §4.4, Table 3a (34.6)",
        baseline=SIMSIAM_BASE,
        in_matrix=True,
    ),
    _v(
        "no_weight_decay",
        "simsiam",
        (DECAYED, "optim.weight_decay=0.0"),
        (HEALTHY,),
        "weight decay off: Tian et al. analyse its role in which directions survive",
        "Tian et al., ICML 2021",
        baseline=SIMSIAM_BASE,
    ),
    _v(
        "byol_tau0.99",
        "byol",
        ("method.momentum_base=0.99",),
        (HEALTHY,),
        "BYOL with τ_base 0.99 works: 72.5",
        "BYOL Table 5a (72.5)",
        in_matrix=True,
    ),
    _v(
        "byol_tau0",
        "byol",
        ("method.momentum_base=0.0", "method.momentum_schedule='constant'"),
        (COMPLETE,),
        "BYOL without momentum (τ = 0) collapses: 0.3",
        "BYOL Table 5a (0.3)",
        baseline="byol_tau0.99",
        in_matrix=True,
    ),
    _v(
        "mocov3",
        "mocov3",
        (),
        (HEALTHY,),
        "MoCo v3 (contrastive, the batch's other images as negatives) does not collapse",
        "MoCo v3 §3",
        in_matrix=True,
    ),
    # --- DINO (recipe dino_resnet18_fmnist) ---
    _v(
        "dino",
        "dino",
        (),
        (HEALTHY,),
        "DINO with centering, sharpening and a momentum teacher does not collapse",
        "DINO §3.1, §5.3",
        predictions={
            E1: _p((HEALTHY,), "E1.alternation", "a stop-gradient teacher", ours=True),
            E3: _p((HEALTHY,), "E3.decenter", "centering de-centers", ours=True),
            E4: _p((HEALTHY,), "E4.both", "DINO §5.3"),
        },
    ),
    _v(
        "dino_no_centering",
        "dino",
        ("method.center_momentum=1.0",),
        (COMPLETE,),
        "sharpening alone (the center stays 0): one dimension dominates, KL → 0",
        "DINO §5.3, Fig. 7",
        predictions={E4: _p((COMPLETE,), "E4.sharpen", "DINO §5.3, Fig. 7")},
        baseline="dino",
    ),
    _v(
        "dino_no_sharpening",
        "dino",
        ("method.teacher_temp=0.1", "method.warmup_teacher_temp=0.1"),
        (COMPLETE,),
        "centering alone (τt = τs = 0.1): the output collapses to uniform, KL → 0",
        "DINO §5.3, Fig. 7",
        predictions={
            E3: _p(
                NOT_COMPLETE,
                "E3.decenter",
                "de-centering extrapolated to DINO's centering",
                ours=True,
            ),
            E4: _p((COMPLETE,), "E4.center", "DINO §5.3, Fig. 7"),
        },
        baseline="dino",
    ),
    _v(
        "dino_teacher_copy",
        "dino",
        ("method.momentum_base=0.0", "method.momentum_schedule='constant'"),
        (COMPLETE, FAILED),
        "a teacher that is a copy of the student (momentum 0) fails: kNN 0.1",
        "DINO §5.2, Fig. 6 (student copy: 0.1)",
        predictions={
            E1: _p(
                (HEALTHY,),
                "E1.alternation",
                "a copied teacher with stop-gradient is the one-step alternation",
                ours=True,
            ),
            E4: _p((COMPLETE, FAILED), "E4.teacher", "DINO §5.2, Fig. 6"),
        },
        baseline="dino",
    ),
)
# The matrices' run order (experiments/ablation_matrix.py): the collapse matrix first, as it
# began, then the variants added for the explanations; a resumed matrix keeps its order.
RUN_ORDER = (
    *("simsiam", "no_stop_grad", "no_predictor", "fixed_random_predictor", "pred_const_lr"),
    *("linear_predictor", "bias_predictor", "symmetric_predictor", "mirror", "bn_none"),
    *("byol_tau0.99", "byol_tau0", "mocov3"),
    *("pred_lr_0.1x", "pred_lr_1x", "pred_lr_10x", "enc_lr_0.1x", "enc_lr_10x"),
    *("pred_frozen_100", "no_weight_decay", "alternation_10"),
    *("dino", "dino_no_centering", "dino_no_sharpening", "dino_teacher_copy"),
    "no_predictor_centered_target",
)
VARIANTS: tuple[ExplanationVariant, ...] = tuple(
    sorted(_DESIGNS, key=lambda v: RUN_ORDER.index(v.name))
)
BY_NAME = {v.name: v for v in VARIANTS}

EXPLANATIONS: tuple[Explanation, ...] = (
    Explanation(
        E1,
        "Stop-gradient as an implicit alternating optimisation",
        "SimSiam alternates between the encoder and per-image targets; stop-gradient makes "
        "one step of it, and the predictor approximates the expectation over augmentations.",
        "SimSiam §5 (a hypothesis), §4.1-4.2",
        (
            Claim("E1.stopgrad", "without stop-gradient the output collapses", "SimSiam §4.1"),
            Claim(
                "E1.alternation",
                "SimSiam is an alternation between θ and per-image targets η (Eq. 5-8); a few "
                "SGD steps per target update work as well, and so does any design that keeps "
                "the stop-gradient target",
                "SimSiam §5.1-5.2",
            ),
            Claim(
                "E1.eoa",
                "the predictor approximates the expectation over augmentations E_T[F(T(x))]: "
                "without a (learned) predictor the step fails; where a predictor and a "
                "stop-gradient are kept it works",
                "SimSiam §5 (Predictor); Zhang et al. §2 reads it so",
            ),
        ),
        notes=(
            "Zhang et al. (ICLR 2022) §2 argue against this account: the symmetric predictor "
            "and Mirror SimSiam keep a predictor and a stop-gradient, yet collapse. `mirror` "
            "and `symmetric_predictor` test that argument here.",
        ),
    ),
    Explanation(
        E2,
        "The predictor and the learning dynamics",
        "The predictor must be learned and adapt faster than the encoder; in a linear model an "
        "eigenmode grows only where the predictor's eigenvalue lets it.",
        "Su 2020 (blog post, https://kexue.fm/archives/7980); Tian, Chen & Ganguli, ICML 2021",
        (
            Claim(
                "E2.learned",
                "a learned predictor (and stop-gradient) is necessary: none or a fixed random "
                "one fails",
                "SimSiam Table 1a-b; Tian et al.",
            ),
            Claim(
                "E2.faster",
                "the predictor must adapt faster than the encoder: 10x slower (relative to the "
                "encoder) lets the encoder slide to collapse",
                "Su 2020 (blog post); Tian et al. (relative predictor lr)",
            ),
            Claim(
                "E2.eigen",
                "an eigenmode grows only where the predictor's eigenvalue lets it: a linear "
                "predictor suffices, one whose linear part is the identity does not",
                "Tian et al. (eigenspace alignment; DirectPred)",
            ),
        ),
    ),
    Explanation(
        E3,
        "De-centering and de-correlation",
        "With z = o + r, collapse is the center o taking over; the asymmetric design's extra "
        "gradient de-centers (a bias suffices) and de-correlates, and designs without it "
        "collapse.",
        "Zhang et al., ICLR 2022",
        (
            Claim(
                "E3.asymmetry",
                "designs without the asymmetric extra gradient collapse: the symmetric "
                "predictor and Mirror SimSiam",
                "Zhang et al. §2",
            ),
            Claim(
                "E3.decenter",
                "de-centering alone (a bias-only predictor, a centered target) avoids complete "
                "collapse",
                "Zhang et al. (a single bias layer); §3 (z = o + r)",
            ),
            Claim(
                "E3.decorrelate",
                "de-correlation: a linear predictor suffices",
                "Zhang et al.",
            ),
        ),
    ),
    Explanation(
        E4,
        "DINO's centering and sharpening",
        "Centering prevents one dimension from dominating but pushes to uniform, sharpening "
        "does the opposite; only both together, with a momentum teacher, avoid collapse.",
        "DINO §5.3 / Fig. 7; §5.2 / Fig. 6",
        (
            Claim(
                "E4.both", "centering, sharpening and a momentum teacher: no collapse", "DINO §5.3"
            ),
            Claim("E4.center", "centering alone: a uniform output (KL → 0)", "DINO §5.3, Fig. 7"),
            Claim(
                "E4.sharpen",
                "sharpening alone: one dimension dominates (KL → 0)",
                "DINO §5.3, Fig. 7",
            ),
            Claim(
                "E4.teacher",
                "a teacher that copies the student fails (kNN 0.1)",
                "DINO §5.2, Fig. 6",
            ),
        ),
        notes=(
            "run with recipe dino_resnet18_fmnist and narrow heads "
            "(experiments/ablate.py --matrix explanations); the curve keeps teacher_entropy and "
            "teacher_student_kl for records.verdict's KL statistic",
        ),
    ),
)
EXPLANATION_BY_NAME = {ex.name: ex for ex in EXPLANATIONS}
CLAIMS = {c.id: c for ex in EXPLANATIONS for c in ex.claims}


@dataclass(frozen=True)
class Judgement:
    """One experiment judged for one prediction: the word and the measured reason."""

    word: str  # CONSISTENT / INCONSISTENT / INCONCLUSIVE / NO_PREDICTION
    reason: str = ""


def judge_seeds(
    prediction: Prediction,
    outcomes: Sequence[str],
    details: Sequence[str] = (),
    *,
    seeds: int = SEEDS,
    between: Sequence[Sequence[str]] = (),
) -> Judgement:
    """An experiment's seeds' outcomes against a prediction (module docstring's rule).

    ``details``: per seed, what its verdict read (shown for the borderline seeds).
    ``between``: per seed, the outcomes a borderline verdict lies between
    (``records.verdict.Verdict.between``). A borderline seed whose every alternative is
    predicted is in the predicted set whichever way it resolves, so it can make the experiment
    *consistent*; it never makes one *inconsistent*: that needs every seed not borderline
    (a label "refuted" rests on no borderline seed)."""
    if not prediction.predicts:
        return Judgement(NO_PREDICTION)
    n = len(outcomes)
    if n < seeds:
        return Judgement(INCONCLUSIVE, f"{n} of {seeds} seeds run")
    borderline = [i for i, o in enumerate(outcomes) if o == BORDERLINE]
    inside = [o in prediction.outcomes for o in outcomes]
    if not borderline and all(inside):
        return Judgement(CONSISTENT)
    settled = [
        i
        for i in borderline
        if i < len(between) and between[i] and set(between[i]) <= set(prediction.outcomes)
    ]
    if (
        borderline
        and len(settled) == len(borderline)
        and all(ok for i, ok in enumerate(inside) if i not in borderline)
    ):
        alts = " / ".join(dict.fromkeys(" or ".join(between[i]) for i in settled))
        return Judgement(
            CONSISTENT,
            f"{len(settled)} of {n} seeds borderline between {alts}, each of them predicted",
        )
    if not borderline and not any(inside):
        return Judgement(INCONSISTENT)
    if borderline:
        why = [details[i] for i in borderline if i < len(details) and details[i]]
        reason = f"{len(borderline)} of {n} seeds borderline"
        if why:
            reason += ": " + "; ".join(dict.fromkeys(why))
        return Judgement(INCONCLUSIVE, reason)
    split = ", ".join(f"{outcomes.count(o)} {o}" for o in dict.fromkeys(outcomes))
    return Judgement(INCONCLUSIVE, f"the seeds split: {split}")


@dataclass(frozen=True)
class Tally:
    """An explanation's (or a claim's) discriminating experiments by judgement."""

    supports: tuple[str, ...] = ()  # consistent, and inconsistent with a rival
    alike: tuple[str, ...] = ()  # consistent, no rival inconsistent: did not tell them apart
    against: tuple[str, ...] = ()  # inconsistent
    inconclusive: tuple[str, ...] = ()

    def text(self) -> str:
        return (
            f"{len(self.supports)} consistent, {len(self.against)} inconsistent, "
            f"{len(self.inconclusive)} inconclusive"
            + (f", {len(self.alike)} consistent but no rival contradicted" if self.alike else "")
        )


def tally(
    explanation: str,
    judgements: dict[str, dict[str, Judgement]],
    claim: str | None = None,
) -> Tally:
    """The tally of ``explanation``'s discriminating experiments (or those of one of its
    claims). ``judgements``: variant -> explanation -> Judgement (variants not run: absent)."""
    out: dict[str, list[str]] = {"supports": [], "alike": [], "against": [], "inconclusive": []}
    for v in VARIANTS:
        pred = v.prediction(explanation)
        if v.kind != DISCRIMINATING or not pred.predicts or v.name not in judgements:
            continue
        if not v.rivals(explanation) or (claim is not None and pred.claim != claim):
            continue
        mine = judgements[v.name][explanation].word
        if mine == CONSISTENT:
            rivals_out = any(
                judgements[v.name][e].word == INCONSISTENT for e, _ in v.rivals(explanation)
            )
            out["supports" if rivals_out else "alike"].append(v.name)
        elif mine == INCONSISTENT:
            out["against"].append(v.name)
        else:
            out["inconclusive"].append(v.name)
    return Tally(*(tuple(out[k]) for k in ("supports", "alike", "against", "inconclusive")))


def label(t: Tally) -> str:
    """The label that follows from a tally (module docstring's rule); the board adds the
    scale."""
    if t.against and t.supports:
        return MIXED
    if t.against:
        return REFUTED
    if t.supports:
        return SUPPORTED
    return UNTESTED


def needed_keys() -> tuple[str, ...]:
    """Every config key a variant needs that does not exist yet, in first-use order."""
    return tuple(dict.fromkeys(k for v in VARIANTS for k in v.needs_key))
