"""DINO (Caron et al., ICCV 2021) against hand computations.

- centering: c ← 0.9·c + 0.1·batch mean of the teacher outputs (§3.1 Eq. 4), two updates by
  hand; the teacher sees the 2 global crops only; under 2 gloo ranks the all-reduced center
  equals the single-process one over the concatenated batch;
- τt: the repository's per-epoch linspace 0.04 → 0.07 over 30 epochs (§3.2);
- the loss: mean over (teacher global crop i, student crop j ≠ i) of H(P_t,i, P_s,j),
  against an explicit double loop;
- the weight-normalized last layer: frozen during the first epoch, trained after, its norm
  fixed at 1; per-parameter gradient clipping; the teacher gets no gradient, only the EMA;
- two steps of every DINO recipe on tiny data (tiny backbones, heads and K); the run's
  ``encoder/`` holds the teacher, bitwise, as DINO evaluates and releases it (the student stays
  in the checkpoint, and ``hub/publish.py --network student`` publishes it).
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from pretrain.config import available_recipes, load_config
from pretrain.dino_head import DINOHead
from pretrain.hooks import Checkpointer
from pretrain.methods.dino import DINO, clip_each_gradient_, dino_loss, teacher_temp_at
from pretrain.multicrop import multicrop_dataset
from pretrain.optim import build_param_groups
from pretrain.train import Trainer
from slurm import dist as sdist
from tests.conftest import TINY

DINO_RECIPES = [r for r in available_recipes() if r.startswith("dino_")]
REL = 1e-5


class TinyNet(nn.Module):
    """conv → ReLU → global average pool → linear: any crop size, ``num_features`` = 6."""

    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, self.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))  # (N, 6)


def tiny_dino(**kw) -> DINO:
    torch.manual_seed(0)
    head = DINOHead(6, 5, hidden_dim=8, bottleneck_dim=4)
    return DINO(TinyNet(), head, **kw)


def crops(n: int = 3, locals_: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(n, 1, 12, 12, generator=gen) for _ in range(2)] + [
        torch.randn(n, 1, 6, 6, generator=gen) for _ in range(locals_)
    ]


@torch.no_grad()
def teacher_logits(model: DINO, views: list[torch.Tensor]) -> torch.Tensor:
    """The teacher's (2N, K) outputs on the global crops, computed by hand."""
    head = model.target_projector
    return head.logits(head(model.target_backbone(torch.cat(views[:2]))))


@torch.no_grad()
def student_logits(model: DINO, views: list[torch.Tensor]) -> torch.Tensor:
    """The student's (V·N, K) outputs: globals in one pass, locals in another."""
    h = [model.backbone(torch.cat(views[:2])), model.backbone(torch.cat(views[2:]))]
    return model.projector.logits(model.projector(torch.cat(h)))


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=REL, atol=1e-7)


# ---------------------------------------------------------------------------- centering


def test_center_after_two_updates_by_hand():
    model = tiny_dino(center_momentum=0.9)
    model.target_projector.center = torch.zeros(2)  # K = 2 for the hand computation
    model.update_center(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # batch mean (2, 3)
    assert close(model.center, torch.tensor([0.2, 0.3]))  # 0.9·0 + 0.1·(2, 3)
    model.update_center(torch.tensor([[0.0, 0.0], [4.0, 8.0]]))  # batch mean (2, 4)
    assert close(model.center, torch.tensor([0.38, 0.67]))  # 0.9·(0.2, 0.3) + 0.1·(2, 4)


def test_the_teacher_sees_the_global_crops_only_and_the_center_follows_them():
    model = tiny_dino()
    seen = []
    model.target_backbone.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    views = crops(n=3, locals_=2)
    model(*views)
    assert seen == [(6, 1, 12, 12)]  # one pass over both global crops, no local crop
    assert close(model.center, 0.1 * teacher_logits(model, views).mean(dim=0))  # 0.9·0 + 0.1·mean


# ---------------------------------------------------------------------------- τt schedule


@pytest.mark.parametrize(
    "epoch,expected",
    [(0, 0.04), (15, 0.04 + 0.03 * 15 / 29), (15.9, 0.04 + 0.03 * 15 / 29), (30, 0.07), (40, 0.07)],
)
def test_teacher_temperature_schedule(epoch, expected):
    """Repository: np.linspace(0.04, 0.07, 30)[epoch] (0.07 reached at epoch 29), then 0.07."""
    assert teacher_temp_at(epoch, 0.04, 0.07, 30) == pytest.approx(expected, rel=1e-12)
    assert teacher_temp_at(29, 0.04, 0.07, 30) == pytest.approx(0.07, rel=1e-12)
    assert teacher_temp_at(3, 0.04, 0.04, 0) == 0.04  # no warmup (the repository's default)


# ---------------------------------------------------------------------------- loss


def test_loss_equals_the_explicit_double_loop_over_crop_pairs():
    gen = torch.Generator().manual_seed(3)
    n, k, v, tau_s, tau_t = 3, 5, 4, 0.1, 0.04
    t = torch.randn(2 * n, k, generator=gen)  # teacher logits on 2 global crops
    s = torch.randn(v * n, k, generator=gen)  # student logits on all 4 crops
    c = torch.randn(k, generator=gen) * 0.1
    p_t = torch.softmax((t - c) / tau_t, dim=-1)
    total, terms = 0.0, 0
    for i in range(2):
        for j in range(v):
            if j == i:
                continue
            for b in range(n):
                logits = s[j * n + b] / tau_s
                log_q = logits - torch.log(torch.exp(logits).sum())
                total += -(p_t[i * n + b] * log_q).sum().item() / n
            terms += 1
    assert terms == 6
    assert dino_loss(p_t, s, tau_s).item() == pytest.approx(total / terms, rel=REL)


def test_forward_loss_entropy_and_kl_match_their_definitions():
    model = tiny_dino(teacher_temp=0.04, warmup_teacher_temp_epochs=0)
    views = crops(n=4, locals_=3)
    s, t = student_logits(model, views), teacher_logits(model, views)
    out = model(*views)
    p_t = torch.softmax(t / 0.04, dim=-1)  # the center is still 0
    assert close(out["loss"], dino_loss(p_t, s, 0.1))
    entropy = -(p_t * p_t.log()).sum(dim=-1).mean()
    assert close(out["teacher_entropy"], entropy)
    kl = []  # KL(P_t,i ‖ P_s,j) over the same pairs as the loss
    log_q = torch.log_softmax(s / 0.1, dim=-1).split(4)
    for i, p in enumerate(p_t.split(4)):
        for j in range(5):
            if j != i:
                kl.append((p * (p.log() - log_q[j])).sum(dim=-1).mean())
    assert close(out["teacher_student_kl"], torch.stack(kl).mean())
    assert out["z"].shape == (4, 4) and out["h"].shape == (4, 6)  # global crop 1's


# ---------------------------------------------------------------------------- last layer


def step(model: DINO, opt: torch.optim.Optimizer, epoch: float) -> None:
    """One training step as the Trainer takes it (set_epoch, backward, hook, step)."""
    model.set_epoch(epoch)
    opt.zero_grad(set_to_none=True)
    model(*crops())["loss"].backward()
    model.before_optimizer_step()
    opt.step()


def test_last_layer_frozen_in_the_first_epoch_and_its_norm_fixed():
    cfg = load_config("dino_resnet18_fmnist")
    model = tiny_dino(freeze_last_layer_epochs=1.0, clip_grad=0.0)
    opt = torch.optim.AdamW(build_param_groups(model, cfg), lr=0.01, weight_decay=0.04)
    g = model.projector.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.equal(g, torch.ones_like(g))
    assert all(p is not g for group in opt.param_groups for p in group["params"])
    w0 = model.projector.last_layer.weight.detach().clone()
    mlp0 = model.projector.mlp[0].weight.detach().clone()
    step(model, opt, epoch=0.0)
    step(model, opt, epoch=0.9)  # still the first epoch
    assert torch.equal(model.projector.last_layer.weight, w0)  # no update, no weight decay
    assert not torch.equal(model.projector.mlp[0].weight, mlp0)  # the rest trains
    step(model, opt, epoch=1.0)
    w1 = model.projector.last_layer.weight.detach()
    assert not torch.equal(w1, w0)
    assert close(w1.norm(dim=1), torch.ones(5))  # each prototype keeps norm 1
    assert torch.equal(g, torch.ones_like(g))


def test_norm_last_layer_false_trains_the_norm():
    head = DINOHead(6, 5, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    assert head.last_layer.parametrizations.weight.original0.requires_grad


def test_each_gradient_is_clipped_on_its_own():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])  # norms 5 and 0.5
    clip_each_gradient_([a, b], 1.0)
    assert close(a.grad, torch.tensor([3.0, 4.0]) / (5 + 1e-6))  # scaled to norm 1
    assert torch.equal(b.grad, torch.tensor([0.3, 0.4]))  # under the bound: unchanged


def test_the_teacher_gets_no_gradient_only_the_ema():
    cfg = load_config("dino_resnet18_fmnist")
    model = tiny_dino(freeze_last_layer_epochs=0.0)
    opt = torch.optim.AdamW(build_param_groups(model, cfg), lr=0.01)
    teacher0 = [p.detach().clone() for p in model.target().parameters()]
    step(model, opt, epoch=0.0)
    assert all(p.grad is None and not p.requires_grad for p in model.target().parameters())
    assert all(
        torch.equal(p, q) for p, q in zip(model.target().parameters(), teacher0, strict=True)
    )
    model.update_target(0.75)
    online = model.online().parameters()
    for t, t0, s in zip(model.target().parameters(), teacher0, online, strict=True):
        assert close(t, 0.75 * t0 + 0.25 * s.detach())


# ---------------------------------------------------------------------------- multi-crop


def test_small_multicrop_views_sizes_and_order(tiny_fmnist):
    from pretrain.data import BatchKey

    cfg = load_config("dino_resnet18_fmnist", [f"data.root={tiny_fmnist}"])
    views = multicrop_dataset(cfg)[BatchKey(0, 0, tuple(range(5)))]
    d = cfg.data
    assert len(views) == 2 + d.local_crops
    assert [v.shape[-1] for v in views] == [28, 28] + [d.local_img_size] * d.local_crops
    assert not torch.equal(views[2], views[3])  # each local crop draws its own parameters


# ---------------------------------------------------------------------------- recipes


HEAD = ["method.proj_dim=8", "method.proj_hidden_dim=16", "method.out_dim=32"]


def tiny_overrides(recipe: str, fmnist: Path, folder: Path) -> list[str]:
    cfg = load_config(recipe)
    common = [*HEAD, "train.max_steps=2", "train.precision='fp32'", "monitor.knn_every_epochs=0"]
    if cfg.data.dataset == "fashion_mnist":
        return [*TINY, *common, f"data.root={fmnist}"]
    vit = cfg.model.name.startswith("vit")
    vit_sizes = ["model.embed_dim=48", "model.depth=2", "model.patch_size=8"]
    model = vit_sizes if vit else ["model.width=8"]
    return [
        *common, *model, "model.img_size=32", "data.img_size=32", "data.local_img_size=16",
        "data.num_workers=0", f"data.root={folder / 'train'}", f"data.val_root={folder / 'val'}",
        "train.batch_size=8", "train.epochs=1", "train.ckpt_every=0",
    ]  # fmt: skip


def test_the_three_dino_recipes_are_there():
    assert set(DINO_RECIPES) == {
        "dino_vit_small_in1k", "dino_resnet50_in1k", "dino_resnet18_fmnist"
    }  # fmt: skip


@pytest.mark.parametrize("recipe", DINO_RECIPES)
def test_two_steps_of_every_dino_recipe(recipe, tiny_fmnist, tiny_imagefolder, tmp_path):
    torch.set_num_threads(1)
    cfg = load_config(recipe, tiny_overrides(recipe, tiny_fmnist, tiny_imagefolder))
    trainer = Trainer(cfg, tmp_path / "run")
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.fit()
    m = trainer.metrics
    assert trainer.step == 2 and math.isfinite(m["loss"])
    moved = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert any(n.startswith("backbone.") for n in moved)
    assert any(n.startswith("target_backbone.") for n in moved)  # the EMA followed
    assert not any("last_layer" in n for n in moved if not n.startswith("target_"))  # frozen
    assert 0 < m["momentum"] < 1 and m["teacher_temp"] == pytest.approx(
        cfg.method.warmup_teacher_temp, rel=REL
    )
    assert 0 <= m["teacher_entropy"] <= math.log(cfg.method.out_dim) + 1e-4
    assert m["teacher_student_kl"] >= -1e-4
    assert model.center.abs().sum() > 0
    Checkpointer.save(trainer)  # what the run's Checkpointer does: last.pt and encoder/
    assert_encoder_is_the_teacher(tmp_path / "run", model)


def assert_encoder_is_the_teacher(run: Path, model: DINO) -> None:
    """``<run>/encoder/`` (written by the Checkpointer through hub.publish) equals the teacher's
    backbone bitwise and differs from the student's; publish's ``network="student"`` gives the
    student from the same checkpoint."""
    from safetensors.torch import load_file

    from hub.encoder import Encoder
    from hub.publish import encoder_from_training
    from pretrain.checkpoint import read_checkpoint

    weights = load_file(str(run / "encoder" / "model.safetensors"))
    teacher, student = model.target_backbone.state_dict(), model.backbone.state_dict()
    assert weights.keys() == teacher.keys() == student.keys()
    for k, v in weights.items():
        assert torch.equal(v, teacher[k]), k
    assert any(not torch.equal(v, student[k]) for k, v in weights.items())
    assert Encoder.from_pretrained(run / "encoder").ssl["network"] == "teacher"
    state = read_checkpoint(run / "checkpoints" / "last.pt")
    published, _ = encoder_from_training(state, network="student", log=None)
    for k, v in published.backbone.state_dict().items():
        assert torch.equal(v, student[k]), k
    assert published.ssl["network"] == "student" and "its student" in published.ssl["source"]


def test_the_paper_recipes_numbers():
    """docs/recipes.md: DINO §3.2 and the repository's README commands."""
    vit = load_config("dino_vit_small_in1k")
    m, o, d = vit.method, vit.optim, vit.data
    assert (vit.train.batch_size, vit.train.epochs, o.name, o.base_lr) == (1024, 300, "adamw", 5e-4)
    assert (o.weight_decay, o.weight_decay_end, o.warmup_epochs) == (0.04, 0.4, 10)
    assert (m.student_temp, m.warmup_teacher_temp, m.teacher_temp) == (0.1, 0.04, 0.07)
    assert (m.warmup_teacher_temp_epochs, m.momentum_base, m.clip_grad) == (30, 0.996, 3.0)
    assert (m.out_dim, m.proj_dim, m.proj_hidden_dim, m.drop_path_rate) == (65536, 256, 2048, 0.1)
    assert (d.img_size, d.crop_min_scale, d.local_crops, d.local_img_size) == (224, 0.4, 8, 96)
    assert (d.local_crop_min_scale, d.local_crop_max_scale) == (0.05, 0.4)
    rn = load_config("dino_resnet50_in1k")
    assert (rn.optim.name, rn.optim.base_lr, rn.optim.weight_decay) == ("sgd", 0.03, 1e-4)
    assert (rn.data.crop_min_scale, rn.data.local_crop_max_scale) == (0.14, 0.14)


# ---------------------------------------------------------------------------- 2 gloo ranks


def _center_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    sdist.init_distributed("cpu")
    model = tiny_dino()
    for t_all in _teacher_batches():
        n = t_all.shape[0] // world
        model.update_center(t_all[rank * n : (rank + 1) * n])  # this rank's slice
    torch.save(model.center, Path(out) / f"center{rank}.pt")
    sdist.shutdown()


def _teacher_batches() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    return [torch.randn(8, 5, generator=gen) * 3 for _ in range(2)]  # 2 steps, 2N = 8 rows


def test_two_gloo_ranks_center_equals_one_process_on_the_whole_batch(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_center_worker, args=(2, port, str(tmp_path)), nprocs=2)
    single = tiny_dino()
    for t_all in _teacher_batches():
        single.update_center(t_all)
    by_hand = torch.zeros(5)
    for t_all in _teacher_batches():
        by_hand = 0.9 * by_hand + 0.1 * t_all.mean(dim=0)
    assert close(single.center, by_hand)
    for rank in range(2):
        assert close(torch.load(tmp_path / f"center{rank}.pt"), single.center)


def test_a_dino_run_exports_publishes_and_transfers_its_teacher(tiny_fmnist, tmp_path):
    """The run's encoder/, publish.py's folder and the model transfer loads from the run
    directory are the teacher, bitwise; ``--network student`` publishes the student."""
    from safetensors.torch import load_file

    from hub import publish
    from transfer.models import load_model

    torch.set_num_threads(1)
    recipe = "dino_resnet18_fmnist"
    cfg = load_config(recipe, tiny_overrides(recipe, tiny_fmnist, tmp_path))
    run = tmp_path / "run"
    trainer = Trainer(cfg, run).fit()
    Checkpointer.save(trainer)
    teacher = trainer.model.target_backbone.state_dict()
    student = trainer.model.backbone.state_dict()
    assert any(not torch.equal(v, student[k]) for k, v in teacher.items())

    def same(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> bool:
        return weights.keys() == expected.keys() and all(
            torch.equal(v, expected[k]) for k, v in weights.items()
        )

    assert same(load_file(str(run / "encoder" / "model.safetensors")), teacher)
    loaded = load_model(str(run))
    assert same(loaded.encoder.backbone.state_dict(), teacher)
    results = tmp_path / "results"
    for network, expected in ((None, teacher), ("student", student)):
        out = tmp_path / f"published-{network}"
        argv = [str(run), "--out", str(out), "--results", str(results)]
        publish.main(argv + (["--network", network] if network else []))
        assert same(load_file(str(out / "model.safetensors")), expected), network
        card = (out / "README.md").read_text()
        assert f"its {network or 'teacher'}" in card


def test_the_final_knn_report_measures_the_teacher(tiny_fmnist, tmp_path, monkeypatch):
    """summary.json's kNN (which the encoder's card shows) is of the network encoder/ holds."""
    from pretrain import evaluate

    measured = []

    def spy(backbone, cfg, train, test, name, device):
        measured.append((name, backbone))
        return 50.0

    monkeypatch.setattr(evaluate, "backbone_knn", spy)
    monkeypatch.setattr(evaluate, "raw_pixel_knn", lambda *a: 10.0)
    recipe = "dino_resnet18_fmnist"
    cfg = load_config(recipe, tiny_overrides(recipe, tiny_fmnist, tmp_path))
    model = Trainer(cfg, tmp_path / "run").model
    report = evaluate.final_knn_report(model, cfg, torch.device("cpu"))
    assert measured[0] == ("trained", model.target_backbone)
    assert report["protocol"]["features"] == "teacher backbone, l2-normalized"
