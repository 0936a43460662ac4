"""One MLP-head builder for every projector and predictor, and the predictor ablations.

A head is ``Linear → [BN] → ReLU`` for each hidden layer, then a last ``Linear → [BN]``.
- SimSiam (repository): hidden linears without bias (a BN follows), projector output BN with
  ``affine=False`` and the last fc bias frozen (that BN cancels it anyway).
- BYOL (§3.3, App. C): hidden 4096 with BN + ReLU, output 256, no BN on the output.
- MoCo v3 (repository ``_build_mlp``): every linear without bias, BN on every layer, the
  output BN with ``affine=False`` (the ResNet predictor has no output BN).

``bn_layout`` turns SimSiam Table 3's BN placements into the two heads' flags.
``build_predictor`` gives the predictor ablations of SimSiam Table 1 and Zhang et al. (ICLR 2022).
"""

from __future__ import annotations

import torch
from torch import nn

BN_LAYOUTS = ("none", "hidden", "hidden_proj_out", "all")
PREDICTORS = ("mlp", "none", "fixed_random", "linear", "bias")


def mlp_head(
    dims: list[int],
    *,
    bn_hidden: bool = True,
    bn_last: bool = False,
    bn_last_affine: bool = True,
    last_bias: bool = True,
    freeze_last_bias: bool = False,
    hidden_bias: bool | None = None,
) -> nn.Sequential:
    """An MLP over ``dims = [in, hidden..., out]``.

    ``bn_hidden`` puts BN after every hidden linear (hidden linears then have no bias unless
    ``hidden_bias`` says otherwise); ``bn_last`` puts BN after the output linear, with
    ``bn_last_affine`` deciding its affine.
    """
    if len(dims) < 2:
        raise ValueError(f"an MLP head needs at least [in, out] dims, got {dims}")
    if hidden_bias is None:
        hidden_bias = not bn_hidden
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-2], dims[1:-1], strict=True):
        layers.append(nn.Linear(d_in, d_out, bias=hidden_bias))
        if bn_hidden:
            layers.append(nn.BatchNorm1d(d_out))
        layers.append(nn.ReLU(inplace=True))
    last = nn.Linear(dims[-2], dims[-1], bias=last_bias)
    layers.append(last)
    if bn_last:
        layers.append(nn.BatchNorm1d(dims[-1], affine=bn_last_affine))
    if freeze_last_bias and last.bias is not None:
        last.bias.requires_grad_(False)
    return nn.Sequential(*layers)


def bn_layout(name: str) -> dict[str, bool]:
    """SimSiam Table 3's BN placements as flags for the projector and the predictor.

    - ``none``: no BN in either head (34.6 on ImageNet: trains poorly, does not collapse);
    - ``hidden``: BN on the hidden layers of both heads only (67.4);
    - ``hidden_proj_out``: plus the projector's output (68.1, SimSiam's default);
    - ``all``: plus the predictor's output ("unstable").
    """
    if name not in BN_LAYOUTS:
        raise ValueError(f"unknown BN layout {name!r}; use one of {', '.join(BN_LAYOUTS)}")
    return {
        "hidden": name != "none",
        "proj_out": name in ("hidden_proj_out", "all"),
        "pred_out": name == "all",
    }


class BiasPredictor(nn.Module):
    """p = z + b: a predictor that can only shift the batch center (Zhang et al. 2022, §4)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.bias  # (N, D)


def build_predictor(
    kind: str,
    dim: int,
    hidden_dim: int,
    *,
    bn_hidden: bool = True,
    bn_last: bool = False,
    bn_last_affine: bool = True,
    bias: bool = True,
) -> nn.Module:
    """The predictor ``kind`` names, mapping ``dim`` to ``dim``.

    - ``mlp``: dim → hidden (BN, ReLU) → dim (SimSiam §3, BYOL §3.3, MoCo v3);
    - ``none``: the identity (SimSiam Table 1: collapses, 0.1);
    - ``fixed_random``: the MLP frozen at its random init (Table 1: 1.5);
    - ``linear``: one dim × dim linear layer (Zhang et al.: de-correlates, enough);
    - ``bias``: z + b only (Zhang et al.: de-centers, enough).
    The "MLP with constant lr" ablation (Table 1, 68.1) is ``optim.fix_pred_lr``.
    """
    if kind not in PREDICTORS:
        raise ValueError(f"unknown predictor {kind!r}; use one of {', '.join(PREDICTORS)}")
    if kind == "none":
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(dim, dim)
    if kind == "bias":
        return BiasPredictor(dim)
    head = mlp_head(
        [dim, hidden_dim, dim],
        bn_hidden=bn_hidden,
        bn_last=bn_last,
        bn_last_affine=bn_last_affine,
        last_bias=bias,
        hidden_bias=None if bias else False,
    )
    if kind == "fixed_random":
        head.requires_grad_(False)
    return head
