"""DINO (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021;
facebookresearch/dino ``main_dino.py``).

- student: backbone + ``DINOHead`` (``pretrain.dino_head``); teacher: their EMA copy
  (``EMATarget``: ``target_backbone`` + ``target_projector``), m cosine from 0.996 to 1 (§3.1,
  §3.2 "Implementation details"); no predictor.
- loss (§3.1 Eq. 2–3, Alg. 1): H(P_t, P_s) = −Σ_k P_t log P_s with P_t = softmax((t − c)/τt)
  over the teacher's outputs on the 2 global crops and P_s = softmax(s/τs) over the student's on
  every crop, averaged over the pairs (global crop i, crop j) with j ≠ i; τs = 0.1.
- τt warms up linearly over the first epochs (§3.2: 0.04 → 0.07 over 30), per integer epoch as
  the repository's ``np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs)[epoch]``.
- centering (§3.1 Eq. 4): c ← m·c + (1 − m)·mean of the teacher's outputs over the batch of
  every rank (all-reduced), m = 0.9, after the loss and without gradient.
- before each optimizer step (repository ``train_one_epoch``): each parameter's gradient is
  clipped to norm ``clip_grad`` (3.0; 0 disables), then the head's last layer gets no update
  while ``epoch < freeze_last_layer_epochs`` (1; its gradients are dropped, so AdamW skips it).
- ViT students get stochastic depth ``drop_path_rate`` (0.1), linear over the blocks; the
  teacher has none (repository).

Monitors (§5.3, Fig. 7: centering alone collapses to the uniform output, KL → 0; sharpening
alone to one dimension, entropy → 0): ``teacher_entropy`` = mean H(P_t) and
``teacher_student_kl`` = mean over the loss's pairs of KL(P_t ‖ P_s) = loss − mean H(P_t)
(every teacher crop appears in the same number of pairs), both in nats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from pretrain.dino_head import DINOHead
from pretrain.methods.momentum_target import EMATarget
from pretrain.multicrop import allow_any_input_size, forward_crops
from slurm.dist import all_reduce_mean

NUM_GLOBAL = 2  # the teacher sees the two global crops only (§3.1)


def teacher_temp_at(epoch: float, warmup_temp: float, temp: float, warmup_epochs: int) -> float:
    """τt at ``epoch``: linspace(warmup_temp, temp, warmup_epochs)[⌊epoch⌋], then ``temp``."""
    e = math.floor(epoch)
    if e >= warmup_epochs:
        return temp
    return warmup_temp + (temp - warmup_temp) * e / max(warmup_epochs - 1, 1)


def dino_loss(p_teacher: torch.Tensor, s_logits: torch.Tensor, student_temp: float) -> torch.Tensor:
    """Mean over (i, j ≠ i) of H(P_t,i, P_s,j): ``p_teacher (G·N, K)`` probabilities of the G
    global crops, ``s_logits (V·N, K)`` of all V crops (globals first), in fp32."""
    n = p_teacher.shape[0] // NUM_GLOBAL
    log_s = F.log_softmax(s_logits.float() / student_temp, dim=-1).split(n)  # V × (N, K)
    terms = [
        -(p_t * log_s[j]).sum(dim=-1).mean()
        for i, p_t in enumerate(p_teacher.split(n))
        for j in range(len(log_s))
        if j != i
    ]
    return torch.stack(terms).mean()


def clip_each_gradient_(params: list[nn.Parameter], max_norm: float) -> None:
    """Every gradient scaled to norm ≤ ``max_norm``, each on its own (repository clip_gradients)."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        norms = torch._foreach_norm(grads)
        torch._foreach_mul_(grads, [(max_norm / (n + 1e-6)).clamp(max=1.0) for n in norms])


def add_drop_path_(vit: nn.Module, rate: float) -> None:
    """Stochastic depth rising linearly from 0 to ``rate`` over the blocks (timm, repository)."""
    blocks = list(vit.blocks)
    for block, r in zip(blocks, torch.linspace(0, rate, len(blocks)).tolist(), strict=True):
        block.drop_path1 = DropPath(r) if r > 0 else nn.Identity()
        block.drop_path2 = DropPath(r) if r > 0 else nn.Identity()


class DINO(EMATarget):
    """Student backbone + DINO head; teacher = their EMA; centering + sharpening."""

    def __init__(
        self,
        backbone: nn.Module,
        head: DINOHead,
        *,
        student_temp: float = 0.1,
        teacher_temp: float = 0.07,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 30,
        center_momentum: float = 0.9,
        freeze_last_layer_epochs: float = 1.0,
        clip_grad: float = 3.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if min(student_temp, teacher_temp, warmup_teacher_temp) <= 0:
            raise ValueError("DINO's temperatures must be positive")
        self.backbone = allow_any_input_size(backbone)
        self.projector = head
        self._attach_target()
        if drop_path_rate > 0:
            if not hasattr(backbone, "blocks"):
                raise ValueError("drop_path_rate applies to ViT backbones only")
            add_drop_path_(self.backbone, drop_path_rate)  # the student's only
        # c belongs to the teacher's output; kept in its head, the checkpoint's keys stay
        # backbone / projector / target_* as for the other methods (hub.importer's layout)
        self.target_projector.register_buffer("center", torch.zeros(head.last_layer.out_features))
        self.student_temp, self.center_momentum = student_temp, center_momentum
        self.temps = (warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs)
        self.freeze_last_layer_epochs, self.clip_grad = freeze_last_layer_epochs, clip_grad
        self.epoch = 0.0

    @property
    def released_backbone(self) -> nn.Module:
        """The network DINO evaluates and releases: the teacher's backbone (§5, "Impact of the
        choice of Teacher Network": the momentum teacher outperforms the student throughout
        training; the repository's evaluations default to ``--checkpoint_key teacher``). The
        run's encoder/ holds it (``hub.importer``), and the final kNN report measures it."""
        return self.target_backbone

    @property
    def center(self) -> torch.Tensor:
        """The center c (K,) subtracted from the teacher's outputs."""
        return self.target_projector.center

    def set_epoch(self, epoch: float) -> None:
        """The Trainer's (fractional) epoch of the coming step."""
        self.epoch = epoch

    def forward(self, *crops: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(crops) < NUM_GLOBAL:
            raise ValueError(
                f"DINO needs {NUM_GLOBAL} global crops (+ local ones), got {len(crops)}"
            )
        n = crops[0].shape[0]
        h = forward_crops(self.backbone, crops)  # (V·N, F)
        z = self.projector(h)  # (V·N, D)
        s = self.projector.logits(z)  # (V·N, K)
        with torch.no_grad():
            t_h = forward_crops(self.target_backbone, crops[:NUM_GLOBAL])  # (2N, F)
            t = self.target_projector.logits(self.target_projector(t_h)).float()  # (2N, K)
            temp = teacher_temp_at(self.epoch, *self.temps)
            p_t = F.softmax((t - self.center) / temp, dim=-1)  # (2N, K)
            entropy = torch.special.entr(p_t).sum(dim=-1).mean()
        loss = dino_loss(p_t, s, self.student_temp)
        self.update_center(t)
        return {
            "loss": loss,
            "z": z[:n].detach(),
            "h": h[:n].detach(),
            "teacher_entropy": entropy,
            "teacher_student_kl": loss.detach() - entropy,
            "teacher_temp": torch.tensor(temp, device=loss.device),
        }

    @torch.no_grad()
    def update_center(self, t: torch.Tensor) -> None:
        """c ← m·c + (1 − m)·mean over every rank's batch of the teacher outputs ``t (2N, K)``."""
        batch_center = all_reduce_mean(t.float().mean(dim=0))  # (K,)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)

    def before_optimizer_step(self) -> None:
        """Clip each gradient, then drop the last layer's while it is frozen."""
        if self.clip_grad > 0:
            clip_each_gradient_(list(self.online().parameters()), self.clip_grad)
        if self.epoch < self.freeze_last_layer_epochs:
            for p in self.projector.last_layer.parameters():
                p.grad = None

    def param_groups(self, fix_pred_lr: bool) -> list[dict]:
        """The student's parameters; the teacher is never optimized (no predictor)."""
        return [{"name": "encoder", "params": list(self.online().parameters())}]
