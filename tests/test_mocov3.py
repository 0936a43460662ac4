"""MoCo v3: InfoNCE × 2τ, keys gathered across ranks (two gloo processes), heads, ViT options."""

from __future__ import annotations

import math
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from hub.backbones import BackboneSpec, create_backbone
from pretrain.config import load_config
from pretrain.methods import build_method
from pretrain.methods.mocov3 import MoCoV3, contrastive_loss
from slurm.dist import all_gather


def test_loss_is_cross_entropy_over_the_logits_with_diagonal_labels_times_2tau():
    torch.manual_seed(1)
    q, k, tau = torch.randn(5, 7), torch.randn(5, 7), 0.2
    qn, kn = q / q.norm(dim=1, keepdim=True), k / k.norm(dim=1, keepdim=True)
    logits = qn @ kn.T / tau
    # −log softmax of the diagonal, averaged, by hand
    by_hand = -torch.stack([logits[i, i] - torch.logsumexp(logits[i], 0) for i in range(5)]).mean()
    assert contrastive_loss(q, k, tau).item() == pytest.approx((by_hand * 2 * tau).item(), rel=1e-5)
    assert torch.equal(all_gather(k), k)  # one process: the keys themselves


def test_forward_is_the_symmetric_sum_against_the_momentum_encoder():
    spec = BackboneSpec(name="resnet18", in_chans=1, width=8, stem="small", stem_stride=2)
    model = MoCoV3(
        create_backbone(spec), proj_dim=8, proj_hidden_dim=16, pred_hidden_dim=16, temperature=0.5
    )
    x1, x2 = torch.randn(6, 1, 28, 28), torch.randn(6, 1, 28, 28)
    loss = model(x1, x2)["loss"]
    q1 = model.predictor(model.projector(model.backbone(x1)))
    q2 = model.predictor(model.projector(model.backbone(x2)))
    k1 = model.target_projector(model.target_backbone(x1))
    k2 = model.target_projector(model.target_backbone(x2))
    expected = contrastive_loss(q1, k2, 0.5) + contrastive_loss(q2, k1, 0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in model.target().parameters())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_rank_worker(rank: int, port: int, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        gen = torch.Generator().manual_seed(100 + rank)
        q = torch.randn(3, 4, generator=gen)
        k = torch.randn(3, 4, generator=gen)
        keys = all_gather(k)
        loss = contrastive_loss(q, k, 0.2)
        out[rank] = {"q": q, "k": k, "keys": keys, "loss": loss.item()}
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_each_query_sees_the_keys_of_both_ranks():
    port = _free_port()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_two_rank_worker, args=(port, out), nprocs=2, join=True)
        out = dict(out)
    all_keys = torch.cat([out[0]["k"], out[1]["k"]])  # (6, 4), rank order
    for rank in (0, 1):
        torch.testing.assert_close(out[rank]["keys"], all_keys)
        q = F.normalize(out[rank]["q"], dim=1)
        logits = q @ F.normalize(all_keys, dim=1).T / 0.2  # (3, 6): both ranks' keys
        labels = torch.arange(3) + 3 * rank  # the positive is this rank's own key
        expected = F.cross_entropy(logits, labels) * 0.4
        assert out[rank]["loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_resnet_heads_match_the_repository():
    model = build_method(load_config("mocov3_resnet50_in1k_100ep"))
    proj, pred = model.projector, model.predictor
    assert [type(m).__name__ for m in proj] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
    ]
    assert [type(m).__name__ for m in pred] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert all(m.bias is None for m in [*proj, *pred] if isinstance(m, torch.nn.Linear))
    assert proj[-1].affine is False
    assert (proj[0].in_features, proj[0].out_features, proj[3].out_features) == (2048, 4096, 256)
    assert model.temperature == 1.0


def test_vit_small_recipe_has_12_heads_frozen_patch_projection_and_3_layer_projector():
    cfg = load_config("mocov3_vit_small_in1k_300ep", ["model.img_size=32"])
    model = build_method(cfg)
    vit = model.backbone
    assert all(block.attn.num_heads == 12 for block in vit.blocks)
    assert not vit.patch_embed.proj.weight.requires_grad
    assert not vit.patch_embed.proj.bias.requires_grad
    assert sum(isinstance(m, torch.nn.Linear) for m in model.projector) == 3
    assert isinstance(model.predictor[-1], torch.nn.BatchNorm1d)  # ViT predictor: output BN
    assert model.temperature == 0.2 and cfg.optim.name == "adamw"
    assert cfg.optim.warmup_epochs == 40 and cfg.optim.weight_decay == 0.1
    params = {id(p) for g in model.param_groups(False) for p in g["params"] if p.requires_grad}
    assert id(vit.patch_embed.proj.weight) not in params and id(vit.pos_embed) not in params


def test_patch_projection_is_learned_when_not_frozen():
    vit = create_backbone(BackboneSpec(name="vit_small", img_size=32, freeze_patch_embed=False))
    assert vit.patch_embed.proj.weight.requires_grad


def mocov3_sincos(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """moco-v3 vits.py ``build_2d_sincos_position_embedding``, written out."""
    grid_w, grid_h = torch.meshgrid(
        torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="ij"
    )
    pos_dim = dim // 4
    omega = 1.0 / temperature ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim)
    out_w = grid_w.flatten()[:, None] * omega[None]
    out_h = grid_h.flatten()[:, None] * omega[None]
    pe = torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)
    return torch.cat([torch.zeros(1, dim), pe])[None]  # class-token row of zeros


def test_position_embedding_is_the_fixed_2d_sincos_of_mocov3():
    vit = create_backbone(
        BackboneSpec(name="vit_small", img_size=64, num_heads=12, pos_embed="sincos")
    )
    torch.testing.assert_close(vit.pos_embed.detach(), mocov3_sincos(4, 4, 384))
    assert not vit.pos_embed.requires_grad
    # one entry by hand: token (row 1, col 2) → index 1 + 4·1 + 2, channel 0 = sin(1·ω_0) = sin 1
    assert vit.pos_embed[0, 1 + 4 + 2, 0].item() == pytest.approx(math.sin(1.0))
    assert vit.pos_embed[0, 1 + 4 + 2, 192].item() == pytest.approx(math.sin(2.0))


def test_frozen_patch_projection_is_xavier_uniform_like_mocov3():
    vit = create_backbone(BackboneSpec(name="vit_small", img_size=32, freeze_patch_embed=True))
    w = vit.patch_embed.proj.weight
    bound = math.sqrt(6.0 / (3 * 16 * 16 + 384))
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.9 * bound
    assert torch.all(vit.patch_embed.proj.bias == 0)
