"""One MLP-head builder for every projector and predictor.

A head is ``Linear → [BN] → ReLU`` for each hidden layer, then a last ``Linear → [BN]``.
SimSiam's repository writes its heads this way: hidden linears without bias (a BN follows),
the projector's last BN with ``affine=False`` and the last fc bias frozen (it is cancelled by
that BN anyway).
"""

from __future__ import annotations

from torch import nn


def mlp_head(
    dims: list[int],
    *,
    bn_hidden: bool = True,
    bn_last: bool = False,
    bn_last_affine: bool = True,
    last_bias: bool = True,
    freeze_last_bias: bool = False,
) -> nn.Sequential:
    """An MLP over ``dims = [in, hidden..., out]``.

    ``bn_hidden`` puts BN after every hidden linear (hidden linears then have no bias);
    ``bn_last`` puts BN after the output linear, with ``bn_last_affine`` deciding its affine.
    """
    if len(dims) < 2:
        raise ValueError(f"an MLP head needs at least [in, out] dims, got {dims}")
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-2], dims[1:-1], strict=True):
        layers.append(nn.Linear(d_in, d_out, bias=not bn_hidden))
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
