"""The importer on synthetic checkpoints laid out exactly like each original release.

Each checkpoint is built here from a torchvision/timm model: the encoder's keys under the
release's prefix, plus the release's heads (projector in ``fc``/``head``, predictor, momentum
or key encoder, MoCo's queue), saved the way the authors saved them (``{"state_dict": ...}``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torch import nn

from hub.encoder import EncoderLoadError
from hub.importer import import_checkpoint
from pretrain.config import load_config


def _randomize_bn(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _resnet18() -> nn.Module:
    torch.manual_seed(3)
    model = _randomize_bn(torchvision.models.resnet18())
    model.fc = nn.Identity()
    return model


def _mlp_keys(prefix: str, dims: list[int], bn: bool = True) -> dict[str, torch.Tensor]:
    """Keys of an nn.Sequential MLP (Linear, BN, ReLU, ...) like the releases' heads."""
    out, i = {}, 0
    for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
        out[f"{prefix}{i}.weight"] = torch.randn(d_out, d_in)
        if bn:
            out.update({f"{prefix}{i + 1}.{k}": torch.ones(d_out) for k in ("weight", "bias")})
            out[f"{prefix}{i + 1}.running_mean"] = torch.zeros(d_out)
            out[f"{prefix}{i + 1}.running_var"] = torch.ones(d_out)
            out[f"{prefix}{i + 1}.num_batches_tracked"] = torch.tensor(5)
        i += 3
    return out


def _prefixed(model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v.clone() for k, v in model.state_dict().items()}


def _save(tmp_path: Path, state: dict[str, torch.Tensor], **extra) -> Path:
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 100, "arch": "resnet50", "state_dict": state, **extra}, path)
    return path


def _check(source: nn.Module, path: Path, layout: str, heads: set[str], shape=(2, 3, 64, 64)):
    encoder, report = import_checkpoint(path)
    assert report.layout == layout
    assert set(report.dropped) == heads
    x = torch.randn(*shape)
    with torch.no_grad():
        assert torch.equal(encoder(x), source(x))
    assert encoder.ssl["source"].startswith(f"imported from {path.name} (")
    return encoder, report


def test_simsiam_release(tmp_path: Path) -> None:
    """Also: the file's own ``epoch`` (100) is the encoder's epochs."""
    src = _resnet18()
    heads = _mlp_keys("module.encoder.fc.", [512, 64, 64, 32])  # 3-layer projector in fc
    heads.update(_mlp_keys("module.predictor.", [32, 16]))  # predictor: BN on the hidden layer
    heads["module.predictor.3.weight"] = torch.randn(32, 16)
    heads["module.predictor.3.bias"] = torch.zeros(32)
    path = _save(tmp_path, {**_prefixed(src, "module.encoder."), **heads}, optimizer={})
    encoder, _ = _check(src, path, "simsiam", set(heads))
    assert encoder.ssl["method"] == "simsiam" and encoder.spec.name == "resnet18"
    assert encoder.ssl["epochs"] == 100


def test_mocov3_resnet_release(tmp_path: Path) -> None:
    src = _resnet18()
    heads = _mlp_keys("module.base_encoder.fc.", [512, 64, 32])  # 2-layer projector
    momentum = {**_prefixed(_resnet18(), "module.momentum_encoder."), **heads}
    momentum = {
        k.replace("module.base_encoder.fc.", "module.momentum_encoder.fc."): v
        for k, v in momentum.items()
    }
    heads.update(momentum)
    heads.update(_mlp_keys("module.predictor.", [32, 64, 32]))
    path = _save(tmp_path, {**_prefixed(src, "module.base_encoder."), **heads})
    _check(src, path, "mocov3", set(heads))


def test_mocov3_vit_release(tmp_path: Path) -> None:
    torch.manual_seed(4)
    src = timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=0).eval()
    heads = _mlp_keys("module.base_encoder.head.", [192, 64, 64, 32])  # 3-layer projector
    heads.update(_prefixed(src, "module.momentum_encoder."))
    heads.update(_mlp_keys("module.predictor.", [32, 64, 32]))
    path = _save(tmp_path, {**_prefixed(src, "module.base_encoder."), **heads})
    encoder, _ = _check(src, path, "mocov3", set(heads), shape=(2, 3, 32, 32))
    assert encoder.spec.name == "vit_tiny" and encoder.spec.pos_embed == "sincos"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_moco_v1_v2_release(version: str, tmp_path: Path) -> None:
    src = _resnet18()
    if version == "v1":  # a linear 128-d head
        fc = {
            "module.encoder_q.fc.weight": torch.randn(128, 512),
            "module.encoder_q.fc.bias": torch.zeros(128),
        }
    else:  # MoCo v2: a 2-layer MLP head fc.0 / fc.2
        fc = {
            "module.encoder_q.fc.0.weight": torch.randn(512, 512),
            "module.encoder_q.fc.0.bias": torch.zeros(512),
            "module.encoder_q.fc.2.weight": torch.randn(128, 512),
            "module.encoder_q.fc.2.bias": torch.zeros(128),
        }
    heads = dict(fc)
    heads.update({k.replace("encoder_q", "encoder_k"): v for k, v in fc.items()})
    heads.update(_prefixed(_resnet18(), "module.encoder_k."))
    heads["module.queue"] = torch.randn(128, 16)
    heads["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    path = _save(tmp_path, {**_prefixed(src, "module.encoder_q."), **heads})
    _check(src, path, "mocov2", set(heads))


def test_byol_pytorch_conversion(tmp_path: Path) -> None:
    """BYOL's Haiku release converted to torchvision names: plain keys plus a linear-eval fc.
    Plain keys do not say how the backbone was trained: the method is unknown until named."""
    src = _resnet18()
    heads = {"fc.weight": torch.randn(1000, 512), "fc.bias": torch.zeros(1000)}
    path = tmp_path / "byol_r50.pth"
    torch.save({**src.state_dict(), **heads}, path)
    encoder, report = _check(src, path, "plain", set(heads))
    assert encoder.ssl["method"] == "unknown" and "method unknown" in report.summary()
    named, _ = import_checkpoint(path, method="byol")
    assert named.ssl["method"] == "byol"


def test_a_method_the_layout_contradicts_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path, _prefixed(_resnet18(), "module.encoder."))
    with pytest.raises(EncoderLoadError, match="is a simsiam checkpoint .* not byol"):
        import_checkpoint(path, method="byol")


def test_resnet50_is_inferred(tmp_path: Path) -> None:
    torch.manual_seed(5)
    src = _randomize_bn(torchvision.models.resnet50())
    src.fc = nn.Identity()
    path = _save(tmp_path, _prefixed(src, "module.encoder."))
    encoder, report = import_checkpoint(path)
    assert encoder.spec.name == "resnet50" and report.dropped == []
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(encoder(x), src(x))


def test_key_outside_the_layout_is_an_error(tmp_path: Path) -> None:
    state = {**_prefixed(_resnet18(), "module.encoder."), "module.mystery.weight": torch.ones(1)}
    with pytest.raises(EncoderLoadError, match=r"module\.mystery\.weight"):
        import_checkpoint(_save(tmp_path, state))


def test_missing_encoder_key_is_an_error(tmp_path: Path) -> None:
    state = _prefixed(_resnet18(), "module.encoder.")
    del state["module.encoder.layer2.0.bn1.running_var"]
    with pytest.raises(EncoderLoadError, match=r"missing keys \[layer2\.0\.bn1\.running_var\]"):
        import_checkpoint(_save(tmp_path, state))


def test_unknown_layout_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EncoderLoadError, match="unrecognised checkpoint layout"):
        import_checkpoint(_save(tmp_path, {"net.conv.weight": torch.ones(1)}))


@pytest.mark.parametrize("recipe", ["byol_resnet18_fmnist", "mocov3_resnet18_fmnist"])
def test_training_checkpoint_with_an_ema_target(recipe: str, tiny_fmnist, tmp_path: Path) -> None:
    """A BYOL / MoCo v3 run directory imports: the online backbone, not the EMA target, and the
    method its config names."""
    from pretrain.hooks import Checkpointer
    from pretrain.train import Trainer
    from tests.conftest import TINY

    cfg = load_config(recipe, [*TINY, f"data.root={tiny_fmnist}", "train.max_steps=2"])
    trainer = Trainer(cfg, tmp_path / "run", hooks=[]).fit()
    Checkpointer.save(trainer)
    online = trainer.model.backbone.state_dict()
    target = trainer.model.target_backbone.state_dict()
    assert any(not torch.equal(online[k], target[k]) for k in online)  # they differ by now
    encoder, report = import_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert encoder.ssl["method"] == cfg.method.name
    assert any(k.startswith("target_backbone.") for k in report.dropped)
    for k, v in encoder.backbone.state_dict().items():
        assert torch.equal(v, online[k]), k
