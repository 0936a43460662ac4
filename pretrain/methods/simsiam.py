"""SimSiam (Chen & He, "Exploring Simple Siamese Representation Learning", arXiv 2011.10566).

As the paper and facebookresearch/simsiam define it:
- encoder f = backbone + projector: 3 fc layers (SimSiam §3 "Baseline settings"), BN on every
  layer; the output BN has ``affine=False`` and the last fc bias is frozen (repository).
  ImageNet sizes 2048-2048-2048.
- predictor h: 2 fc layers, bottleneck 2048-512-2048, BN on the hidden layer only (§3, §4.4).
- loss: L = D(p1, sg(z2))/2 + D(p2, sg(z1))/2 with D the negative cosine similarity (§3 Eq. 1-4).

Ablation switches (constructor arguments; ``method.*`` in the config):
- ``stop_grad=False``: no stop-gradient (§4.1, Fig. 2: collapses, 0.1).
- ``predictor``: ``mlp`` / ``none`` / ``fixed_random`` / ``linear`` / ``bias`` (Table 1 and
  Zhang et al., "How does SimSiam avoid collapse without negative samples?", ICLR 2022); the
  constant-lr predictor is ``optim.fix_pred_lr``.
- ``loss``: ``symmetric`` / ``asymmetric`` (D(p1, sg(z2)) only) / ``asymmetric_2x`` (the
  asymmetric loss on two pairs of views of each image, averaged) (§4.6: 68.1 / 64.8 / 67.3).
- ``bn``: ``none`` / ``hidden`` / ``hidden_proj_out`` (default) / ``all`` (Table 3).
- ``proj_dim``: the output dimension d (§4.5: 256 … 2048).
- ``symmetric_predictor``: the target is sg(h(z)) too, the predictor on both branches
  (Zhang et al. §3: collapses).
- ``mirror``: "Mirror SimSiam", D(h(sg(z1)), z2): the stop-gradient sits on the predictor's
  input instead of on the target (Zhang et al. §3: collapses).
- ``target_refresh_steps=k``: the multi-step alternation of SimSiam §5 ("Proof of concept").
  The hypothesis (§5) reads stop-gradient as one step of an alternating optimisation over the
  encoder θ and per-image targets η_x; with k > 0 the targets come from a frozen copy of
  backbone + projector (in train mode, so BN uses the batch as in SimSiam) refreshed to θ
  after every k optimizer steps: η is solved once, then k SGD steps update θ against it
  (ImageNet linear accuracy, 100 epochs: 1-step 68.1, 10-step 68.7, 100-step 68.9, 1-epoch
  67.0; docs/recipes.md). k = 0 (default) is SimSiam itself, the live network's z under
  stop-gradient, which is the 1-step alternation.
- ``center_target``: the stop-gradient target de-centred, sg(ẑ − mean_batch ẑ) with ẑ = z/‖z‖
  (``centered_target``), for both view orders. Zhang et al. (ICLR 2022, §3) write the
  l2-normalized output as z = o + r (o the batch center, r the residual) and split the
  gradient the target gives the online branch into a center part (along o: it pulls every
  output toward the center, toward collapse) and a residual part; the asymmetric design's extra
  gradient works through de-centering (removing the center part) and de-correlation. With the
  target's center removed, the center part is gone by construction, so with
  ``predictor='none'`` this switch isolates the de-centering effect without any predictor.
  This is this project's experiment, not the paper's (the paper de-centres through the
  predictor, e.g. a bias-only one, §4).

``forward`` returns the loss, z and h of the first view, and p, the first view's predictor
output (detached), where there is a predictor (not for ``predictor='none'``): z is the
predictor's input and p its output, what ``pretrain.monitors.pred_alignment`` fits.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.ema import ema_update_
from pretrain.heads import bn_layout, build_predictor, mlp_head

LOSS_MODES = ("symmetric", "asymmetric", "asymmetric_2x")
RESIDUAL_EPS = 1e-6  # centered_target: a residual this short is fp32 rounding, taken as zero


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """D(p, z) = −mean_i <p_i/‖p_i‖, z_i/‖z_i‖> (SimSiam Eq. 1), computed in fp32."""
    return -F.cosine_similarity(p.float(), z.float(), dim=-1).mean()


def centered_target(z: torch.Tensor) -> torch.Tensor:
    """ẑ − mean over the batch of ẑ, ẑ = z/‖z‖ row-wise: the residual r of Zhang et al.'s
    z = o + r (ICLR 2022, §3), for ``z (N, D)``; returns (N, D), computed in fp32.

    The center is removed from the l2-normalized z, where Zhang et al. define it, not from the
    raw z: SimSiam's projector ends in BN (affine=False), which in training mode makes every
    channel's batch mean of the raw z exactly 0, so centring the raw z would change nothing,
    while the normalized z's center is what grows to norm 1 (m_o → 1) as the outputs collapse.
    The mean is over the batch this process holds (per micro-batch with accumulation).

    A constant batch (every ẑ equal) has a zero residual. fp32 rounds the mean of unit vectors
    to about 1e-7, which the cosine would blow up to a unit target of pure rounding (its norm
    clamp, eps = 1e-8, is below it); so a residual shorter than ``RESIDUAL_EPS`` = 1e-6 is set
    to exactly zero, and the cosine with a zero target is 0 (``F.cosine_similarity`` divides
    by the norms' product clamped at eps): that term has loss 0 and no gradient. A residual
    above 1e-6 is used at full strength: the cosine reads only its direction, however small
    it has become (the no-stop-gradient runs' r_over_o reads about 1e-4, well above it).
    """
    zn = F.normalize(z.float(), dim=-1)  # (N, D)
    r = zn - zn.mean(dim=0, keepdim=True)  # (N, D)
    return torch.where(r.norm(dim=-1, keepdim=True) > RESIDUAL_EPS, r, torch.zeros_like(r))


def pairs_for(loss: str, num_views: int) -> list[tuple[int, int, float]]:
    """(prediction view, target view, weight) of each loss term."""
    if loss not in LOSS_MODES:
        raise ValueError(f"unknown loss {loss!r}; use one of {', '.join(LOSS_MODES)}")
    need = 4 if loss == "asymmetric_2x" else 2
    if num_views != need:
        raise ValueError(f"loss {loss!r} needs {need} views per image, got {num_views}")
    if loss == "symmetric":
        return [(0, 1, 0.5), (1, 0, 0.5)]
    if loss == "asymmetric":
        return [(0, 1, 1.0)]
    return [(0, 1, 0.5), (2, 3, 0.5)]


def num_views_for(loss: str) -> int:
    """Views per image the data pipeline draws for a loss mode."""
    return 4 if loss == "asymmetric_2x" else 2


class SimSiam(nn.Module):
    """Backbone + projector + predictor; ``forward(*views)`` returns the loss and the outputs."""

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_dim: int = 2048,
        proj_hidden_dim: int = 2048,
        proj_layers: int = 3,
        pred_hidden_dim: int = 512,
        stop_grad: bool = True,
        predictor: str = "mlp",
        loss: str = "symmetric",
        bn: str = "hidden_proj_out",
        symmetric_predictor: bool = False,
        mirror: bool = False,
        target_refresh_steps: int = 0,
        center_target: bool = False,
    ) -> None:
        super().__init__()
        if center_target and (not stop_grad or mirror or symmetric_predictor):
            raise ValueError(
                "center_target de-centres the stop-gradient target z; it needs stop_grad=True "
                "and neither mirror nor symmetric_predictor"
            )
        if target_refresh_steps < 0:
            raise ValueError(f"target_refresh_steps must be >= 0, got {target_refresh_steps}")
        if target_refresh_steps and (not stop_grad or mirror or symmetric_predictor):
            raise ValueError(
                "target_refresh_steps (the §5 alternation) replaces the stop-gradient target; "
                "it needs stop_grad=True and neither mirror nor symmetric_predictor"
            )
        if mirror and not stop_grad:
            raise ValueError("mirror=True moves the stop-gradient; it needs stop_grad=True")
        if mirror and symmetric_predictor:
            raise ValueError("mirror and symmetric_predictor are separate ablations; pick one")
        pairs_for(loss, num_views_for(loss))  # validates the name
        layout = bn_layout(bn)
        feat_dim = backbone.num_features
        self.backbone = backbone
        self.projector = mlp_head(
            [feat_dim] + [proj_hidden_dim] * (proj_layers - 1) + [proj_dim],
            bn_hidden=layout["hidden"],
            bn_last=layout["proj_out"],
            bn_last_affine=False,
            freeze_last_bias=layout["proj_out"],
        )
        self.predictor = build_predictor(
            predictor,
            proj_dim,
            pred_hidden_dim,
            bn_hidden=layout["hidden"],
            bn_last=layout["pred_out"],
        )
        self.stop_grad = stop_grad
        self.loss_mode = loss
        self.symmetric_predictor = symmetric_predictor
        self.mirror = mirror
        self.target_refresh_steps = target_refresh_steps
        self.center_target = center_target
        self.has_predictor = predictor != "none"
        if target_refresh_steps:
            self._attach_frozen_target()

    def _attach_frozen_target(self) -> None:
        """The alternation's target (§5): a copy of backbone + projector, never optimized nor
        DDP-wrapped (each rank refreshes its own identical copy), and the steps since its last
        refresh (a buffer, so a resumed run refreshes on the same steps)."""
        self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.register_buffer("steps_since_refresh", torch.zeros((), dtype=torch.long))
        self.ddp_ignore = ("target_backbone", "target_projector")

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """With ``target_refresh_steps = k``: the target becomes θ after every k-th step (§5)."""
        if not self.target_refresh_steps:
            return
        self.steps_since_refresh += 1
        if int(self.steps_since_refresh) >= self.target_refresh_steps:
            online = nn.ModuleList([self.backbone, self.projector])
            target = nn.ModuleList([self.target_backbone, self.target_projector])
            ema_update_(target, online, 0.0)  # a copy: ξ ← 0·ξ + 1·θ
            self.steps_since_refresh.zero_()

    def forward(self, *views: torch.Tensor) -> dict[str, torch.Tensor]:
        pairs = pairs_for(self.loss_mode, len(views))
        hs = [self.backbone(x) for x in views]  # (N, F) each
        zs = [self.projector(h) for h in hs]  # (N, D) each
        ps = [self.predictor(z.detach() if self.mirror else z) for z in zs]  # (N, D) each
        targets = ps if self.symmetric_predictor else zs
        if self.target_refresh_steps:  # η_x from θ of the last refresh (§5)
            with torch.no_grad():
                targets = [self.target_projector(self.target_backbone(x)) for x in views]
        elif self.stop_grad and not self.mirror:
            targets = [t.detach() for t in targets]
        if self.center_target:
            targets = [centered_target(t) for t in targets]
        loss = sum(w * negative_cosine(ps[i], targets[j]) for i, j, w in pairs)
        out = {"loss": loss, "z": zs[0].detach(), "h": hs[0].detach()}
        if self.has_predictor:
            out["p"] = ps[0].detach()  # (N, D): the predictor's output on z
        return out

    def param_groups(self, fix_pred_lr: bool) -> list[dict]:
        """SGD groups; with ``fix_pred_lr`` the predictor keeps the initial lr (Table 1, 68.1)."""
        encoder = [*self.backbone.parameters(), *self.projector.parameters()]
        return [
            {"name": "encoder", "params": encoder},
            {
                "name": "predictor",
                "params": list(self.predictor.parameters()),
                "fix_lr": fix_pred_lr,
            },
        ]
