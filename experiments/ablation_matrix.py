"""The ablation matrices, derived from the one list of variants in ``records/explanations.py``.

Each variant there carries its method, config overrides, claim, source (the paper table or
section, docs/recipes.md "Collapse: the claims the ablation benchmark checks") and the
``records.verdict`` outcomes that agree with the claim. Data only:
``experiments/ablation_run.py`` runs and judges a variant, ``experiments/ablate.py`` is the CLI.

- ``MATRIX``: every runnable variant (none of its config keys missing), in the list's order.
- ``MATRICES["collapse"]``: the collapse-ablation matrix (``in_matrix``: SimSiam Table 1 /
  §4.1, Zhang et al. ICLR 2022, BYOL Table 5a, MoCo v3 §3), whose records are committed under
  ``leaderboards/results/ablation/`` with these names and overrides; ``ablate.py``'s default.
- ``MATRICES["explanations"]``: every runnable variant of the explanations board (SimSiam §5,
  Su 2020, Tian et al. ICML 2021, DINO §5.2-5.3 included).
"""

from __future__ import annotations

from records.explanations import VARIANTS
from records.explanations import ExplanationVariant as Variant

MATRIX: list[Variant] = [v for v in VARIANTS if not v.needs_key]
MATRICES: dict[str, list[Variant]] = {
    "collapse": [v for v in MATRIX if v.in_matrix],
    "explanations": MATRIX,
}
DEFAULT_MATRIX = "collapse"
BY_NAME: dict[str, Variant] = {v.name: v for v in MATRIX}

__all__ = ["BY_NAME", "DEFAULT_MATRIX", "MATRICES", "MATRIX", "Variant"]
