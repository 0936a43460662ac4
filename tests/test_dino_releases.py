"""DINO's released checkpoints, laid out as facebookresearch/dino writes them, import bitwise.

The files are built here from the documented key layouts, at the released shapes:

- backbone only: ``dino_resnet50_pretrain.pth`` (torchvision's ``resnet50`` state dict without
  ``fc``: hubconf.py's ``dino_resnet50`` sets ``fc = Identity()``) and
  ``dino_deitsmall16_pretrain.pth`` (vision_transformer.py's ``vit_small(patch_size=16)``:
  ``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv, attn.proj,
  norm2, mlp.fc1, mlp.fc2}``, ``norm``), both the teacher's backbone;
- full checkpoints ``*_full_checkpoint.pth``: main_dino.py's ``save_dict`` = ``{student,
  teacher, optimizer, epoch, args, dino_loss, fp16_scaler}``; each network is
  ``MultiCropWrapper(backbone, DINOHead)`` (``backbone.`` + ``head.``), under ``module.`` where
  DDP wraps it: the student always, the teacher only when it has BatchNorm (the ResNet);
  ``args`` is the ``argparse.Namespace`` of main_dino.py's parser (plus the rank, world size
  and GPU ``utils.init_distributed_mode`` sets).

Only the DINO head's output size is scaled down (``OUT_DIM`` rows in its last layer instead of
65,536): the importer drops the head, and ``args.out_dim`` says the same size as the tensors.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from common.cli import run_cli
from hub import publish
from hub.encoder import Encoder, EncoderLoadError
from hub.importer import UnsafeCheckpointError, import_checkpoint

OUT_DIM = 1024  # the released heads have 65,536 outputs (args.out_dim); dropped on import
HIDDEN, BOTTLENECK = 2048, 256  # DINOHead's defaults (nlayers 3, use_bn_in_head False)
EPOCH = 100  # main_dino.py saves 'epoch': epoch + 1, the epochs completed


def resnet50_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """torchvision's resnet50 keys, shapes and dtypes, without ``fc``."""
    with torch.device("meta"):
        model = torchvision.models.resnet50()
    state = model.state_dict()
    return {k: (tuple(v.shape), v.dtype) for k, v in state.items() if not k.startswith("fc.")}


def vit_small16_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """DINO's ``vit_small(patch_size=16)`` (embed 384, depth 12, mlp ratio 4, qkv bias) at 224
    px: 14 × 14 patches + the class token."""
    d, p, tokens = 384, 16, (224 // 16) ** 2 + 1
    shapes = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, tokens, d),
        "patch_embed.proj.weight": (d, 3, p, p),
        "patch_embed.proj.bias": (d,),
    }
    for i in range(12):
        shapes.update(
            {
                f"blocks.{i}.norm1.weight": (d,),
                f"blocks.{i}.norm1.bias": (d,),
                f"blocks.{i}.attn.qkv.weight": (3 * d, d),
                f"blocks.{i}.attn.qkv.bias": (3 * d,),
                f"blocks.{i}.attn.proj.weight": (d, d),
                f"blocks.{i}.attn.proj.bias": (d,),
                f"blocks.{i}.norm2.weight": (d,),
                f"blocks.{i}.norm2.bias": (d,),
                f"blocks.{i}.mlp.fc1.weight": (4 * d, d),
                f"blocks.{i}.mlp.fc1.bias": (4 * d,),
                f"blocks.{i}.mlp.fc2.weight": (d, 4 * d),
                f"blocks.{i}.mlp.fc2.bias": (d,),
            }
        )
    shapes.update({"norm.weight": (d,), "norm.bias": (d,)})
    return {k: (s, torch.float32) for k, s in shapes.items()}


def head_layout(in_dim: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """DINOHead: mlp = Linear, GELU, Linear, GELU, Linear; last_layer = weight_norm(Linear)."""
    shapes = {
        "mlp.0.weight": (HIDDEN, in_dim),
        "mlp.0.bias": (HIDDEN,),
        "mlp.2.weight": (HIDDEN, HIDDEN),
        "mlp.2.bias": (HIDDEN,),
        "mlp.4.weight": (BOTTLENECK, HIDDEN),
        "mlp.4.bias": (BOTTLENECK,),
        "last_layer.weight_g": (OUT_DIM, 1),
        "last_layer.weight_v": (OUT_DIM, BOTTLENECK),
    }
    return {k: (s, torch.float32) for k, s in shapes.items()}


def fill(layout: dict[str, tuple[tuple[int, ...], torch.dtype]], seed: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(shape, generator=gen)
        if dtype.is_floating_point
        else torch.randint(0, 1000, shape, generator=gen, dtype=dtype)
        for k, (shape, dtype) in layout.items()
    }


def dino_args(arch: str, **changes: Any) -> argparse.Namespace:
    """main_dino.py's parsed arguments (its parser's defaults, then ``changes``), with what
    ``utils.init_distributed_mode`` adds."""
    args = argparse.Namespace(
        arch=arch, patch_size=16, out_dim=OUT_DIM, norm_last_layer=True,
        momentum_teacher=0.996, use_bn_in_head=False, warmup_teacher_temp=0.04,
        teacher_temp=0.04, warmup_teacher_temp_epochs=0, use_fp16=True, weight_decay=0.04,
        weight_decay_end=0.4, clip_grad=3.0, batch_size_per_gpu=64, epochs=EPOCH,
        freeze_last_layer=1, lr=0.0005, warmup_epochs=10, min_lr=1e-06, optimizer="adamw",
        drop_path_rate=0.1, global_crops_scale=(0.4, 1.0), local_crops_number=8,
        local_crops_scale=(0.05, 0.4), data_path="/datasets01/imagenet_full_size/061417/train",
        output_dir="/checkpoint/dino", saveckp_freq=20, seed=0, num_workers=10,
        dist_url="env://", local_rank=0, rank=0, world_size=16, gpu=0,
    )  # fmt: skip
    vars(args).update(changes)
    return args


def optimizer_state(name: str) -> dict[str, Any]:
    """A real optimizer's state_dict, as main_dino.py saves it (regularized and
    not-regularized groups, ``utils.get_params_groups``), over two small parameters."""
    w, b = torch.nn.Parameter(torch.ones(4, 4)), torch.nn.Parameter(torch.zeros(4))
    groups = [{"params": [w]}, {"params": [b], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups) if name == "adamw" else torch.optim.SGD(groups, 0.1, 0.9)
    (w.sum() + b.sum()).backward()
    opt.step()
    return opt.state_dict()


def prefixed(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + k: v for k, v in state.items()}


def build_release(folder: Path, arch: str) -> dict[str, Any]:
    """Both files of one release and the tensors they hold."""
    resnet = arch == "resnet50"
    backbone, dim = (resnet50_layout(), 2048) if resnet else (vit_small16_layout(), 384)
    nets = {
        name: {"backbone": fill(backbone, seed), "head": fill(head_layout(dim), seed + 1)}
        for name, seed in (("student", 10), ("teacher", 20))
    }
    teacher_prefix = "module." if resnet else ""  # DDP wraps a teacher with BatchNorm only
    args = (
        dino_args(
            "resnet50", optimizer="sgd", lr=0.03, weight_decay=1e-4, weight_decay_end=1e-4,
            global_crops_scale=(0.14, 1.0), local_crops_scale=(0.05, 0.14),
        )  # the README's ResNet-50 command
        if resnet
        else dino_args("vit_small")
    )  # fmt: skip
    save_dict = {
        "student": {
            **prefixed(nets["student"]["backbone"], "module.backbone."),
            **prefixed(nets["student"]["head"], "module.head."),
        },
        "teacher": {
            **prefixed(nets["teacher"]["backbone"], f"{teacher_prefix}backbone."),
            **prefixed(nets["teacher"]["head"], f"{teacher_prefix}head."),
        },
        "optimizer": optimizer_state(args.optimizer),
        "epoch": EPOCH,
        "args": args,
        "dino_loss": {"center": torch.zeros(1, OUT_DIM)},
        "fp16_scaler": {
            "scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
            "growth_interval": 2000, "_growth_tracker": 0,
        },
    }  # fmt: skip
    name = "dino_resnet50_pretrain" if resnet else "dino_deitsmall16_pretrain"
    backbone_only = folder / f"{name}.pth"
    torch.save(nets["teacher"]["backbone"], backbone_only)  # the released backbone: the teacher's
    full = folder / f"{name}_full_checkpoint.pth"
    torch.save(save_dict, full)
    return {
        "backbone_only": backbone_only,
        "full": full,
        "nets": nets,
        "save_dict": save_dict,
        "args": args,
        "teacher_prefix": teacher_prefix,
    }


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("dino_releases")
    return {arch: build_release(folder, arch) for arch in ("resnet50", "vit_small")}


def assert_bitwise(encoder: Encoder, expected: dict[str, torch.Tensor]) -> None:
    weights = encoder.backbone.state_dict()
    assert weights.keys() == expected.keys()
    for k, v in weights.items():
        assert v.dtype == expected[k].dtype and torch.equal(v, expected[k]), k


# ---------------------------------------------------------------------------- backbone only


@pytest.mark.parametrize("arch", ["resnet50", "vit_small"])
def test_backbone_only_release_imports_bitwise_with_its_method_unknown(releases, arch) -> None:
    """A backbone-only file's keys do not say how it was trained: "unknown" (not BYOL, not a
    guess) until the caller names the method."""
    release = releases[arch]
    path = release["backbone_only"]
    encoder, report = import_checkpoint(path)
    assert report.layout == "plain" and report.dropped == []
    assert_bitwise(encoder, release["nets"]["teacher"]["backbone"])
    spec = encoder.spec
    if arch == "resnet50":
        assert (spec.name, spec.stem, spec.width, spec.in_chans) == ("resnet50", "imagenet", 64, 3)
    else:
        assert (spec.name, spec.patch_size, spec.img_size, spec.pos_embed) == (
            "vit_small", 16, 224, "learn"
        )  # fmt: skip
        assert encoder.backbone.blocks[0].attn.num_heads == 6  # DINO's and timm's ViT-S
    assert encoder.ssl["method"] == "unknown" and "method unknown" in report.summary()
    assert encoder.ssl["source"] == f"imported from {path.name} (a backbone-only state dict)"
    assert "epochs" not in encoder.ssl  # the file does not say
    named, _ = import_checkpoint(path, method="dino")
    assert named.ssl["method"] == "dino"
    assert_bitwise(named, release["nets"]["teacher"]["backbone"])


# ---------------------------------------------------------------------------- full checkpoints


@pytest.mark.parametrize("arch", ["resnet50", "vit_small"])
def test_full_checkpoint_imports_the_teacher_and_the_student_on_request(releases, arch) -> None:
    release = releases[arch]
    path, args = release["full"], release["args"]
    teacher, report = import_checkpoint(path)
    assert report.layout == ("dino_ddp" if arch == "resnet50" else "dino")
    assert_bitwise(teacher, release["nets"]["teacher"]["backbone"])
    prefix = release["teacher_prefix"]
    assert set(report.dropped) == {f"{prefix}head.{k}" for k in release["nets"]["teacher"]["head"]}
    ssl = teacher.ssl
    assert ssl["method"] == "dino" and ssl["network"] == "teacher"
    assert ssl["epochs"] == EPOCH  # the file's own 'epoch'
    assert ssl["batch_size"] == args.batch_size_per_gpu * args.world_size  # 64 × 16
    assert ssl["dataset"] == "imagenet"  # its data_path names it
    assert ssl["source"] == f"imported from {path.name} (DINO's full checkpoint, its teacher)"
    kept = ssl["release_args"]
    assert (kept["arch"], kept["patch_size"], kept["out_dim"]) == (arch, 16, OUT_DIM)
    assert kept["epochs"] == EPOCH and kept["optimizer"] == args.optimizer
    assert kept["global_crops_scale"] == list(args.global_crops_scale)
    assert not {"data_path", "output_dir", "dist_url", "rank", "gpu"} & set(kept)
    json.dumps(ssl)  # what config.json will hold: plain data only

    student, report = import_checkpoint(path, network="student")
    assert report.layout == "dino_ddp"  # the student is always DDP-wrapped
    assert_bitwise(student, release["nets"]["student"]["backbone"])
    assert student.ssl["network"] == "student" and "its student" in student.ssl["source"]


@pytest.mark.parametrize("arch", ["resnet50", "vit_small"])
def test_a_networks_state_dict_alone_imports(releases, arch, tmp_path: Path) -> None:
    """The teacher's dict saved by itself (``module.backbone.`` + ``module.head.`` for the
    ResNet, ``backbone.`` + ``head.`` for the ViT)."""
    release = releases[arch]
    path = tmp_path / "teacher.pth"
    torch.save(release["save_dict"]["teacher"], path)
    encoder, report = import_checkpoint(path)
    assert_bitwise(encoder, release["nets"]["teacher"]["backbone"])
    assert encoder.ssl["method"] == "dino" and "network" not in encoder.ssl
    with pytest.raises(EncoderLoadError, match="holds one network"):
        import_checkpoint(path, network="student")


def test_args_are_read_through_an_allowlist_never_weights_only_false(monkeypatch, tmp_path):
    """argparse.Namespace is allowlisted; anything else inside it is still refused, and every
    load is weights_only=True."""
    calls = []
    real_load = torch.load

    def spy(*a, **kw):
        calls.append(kw.get("weights_only"))
        return real_load(*a, **kw)

    monkeypatch.setattr(torch, "load", spy)
    state = fill(vit_small16_layout(), 1)
    ok, bad = tmp_path / "ok.pth", tmp_path / "bad.pth"
    both = {"student": prefixed(state, "module.backbone."), "epoch": 3}
    both["teacher"] = prefixed(state, "backbone.")
    torch.save({**both, "args": dino_args("vit_small")}, ok)
    torch.save({**both, "args": dino_args("vit_small", output_dir=Path("/checkpoint"))}, bad)
    encoder, _ = import_checkpoint(ok)
    assert encoder.ssl["epochs"] == 3 and encoder.ssl["release_args"]["arch"] == "vit_small"
    with pytest.raises(UnsafeCheckpointError, match=r"asks for pathlib\.\w*Path"):
        import_checkpoint(bad)
    assert calls == [True, True]


def test_args_that_contradict_the_weights_are_refused(tmp_path: Path) -> None:
    state = fill(vit_small16_layout(), 2)
    both = {"student": prefixed(state, "module.backbone."), "teacher": prefixed(state, "backbone.")}
    for args, message in (
        (dino_args("vit_base"), "arch 'vit_base', but its weights are a vit_small"),
        (dino_args("vit_small", patch_size=8), "patch_size 8, but its weights have 16-pixel"),
    ):
        torch.save({**both, "epoch": 1, "args": args}, tmp_path / "ckpt.pth")
        with pytest.raises(EncoderLoadError, match=re.escape(message)):
            import_checkpoint(tmp_path / "ckpt.pth")


# ---------------------------------------------------------------------------- publish


def test_publish_describes_a_full_checkpoint_by_its_own_metadata(releases, tmp_path) -> None:
    """Not "trained with siamhub (None)", not "0 ep": the release file, DINO, its 100 epochs."""
    release = releases["resnet50"]
    out = tmp_path / "published"
    publish.main([str(release["full"]), "--out", str(out), "--results", str(tmp_path / "r")])
    config = json.loads((out / "config.json").read_text())
    ssl = config["ssl"]
    assert ssl["name"] == "resnet50.dino_100ep_in1k"
    assert (ssl["method"], ssl["epochs"], ssl["network"]) == ("dino", EPOCH, "teacher")
    assert ssl["source"].startswith(f"imported from {release['full'].name} (DINO's full")
    assert ssl["batch_size"] == 1024 and ssl["release_args"]["lr"] == 0.03
    assert ssl.get("recipe_name") is None and ssl.get("git_sha") is None  # the authors' code
    assert ssl["converted_with"].startswith("siamhub ")
    card = (out / "README.md").read_text()
    assert "trained with siamhub" not in card and not re.search(r"\b0 ep\b", card)
    assert re.search(r"\| trained length \| 100 ep \|", card)
    assert f"imported from {release['full'].name} (DINO's full checkpoint, its teacher)" in card
    assert_bitwise(Encoder.from_pretrained(out), release["nets"]["teacher"]["backbone"])


def test_publish_needs_the_method_of_a_backbone_only_file(releases, tmp_path, capsys) -> None:
    path = releases["resnet50"]["backbone_only"]
    out = tmp_path / "published"
    argv = [str(path), "--out", str(out), "--results", str(tmp_path / "r")]
    with pytest.raises(SystemExit) as err:
        run_cli(lambda: publish.main(argv))
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1
    assert lines[0].startswith("error: imported from dino_resnet50_pretrain.pth")
    assert "--method" in lines[0] and not out.exists()
    publish.main([*argv, "--method", "dino"])
    ssl = json.loads((out / "config.json").read_text())["ssl"]
    assert (ssl["name"], ssl["method"], ssl["epochs"]) == ("resnet50.dino", "dino", None)
