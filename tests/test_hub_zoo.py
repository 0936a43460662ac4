"""The zoo's download-convert-cache path on file:// URLs (no network), and its error message."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from hub import zoo
from hub.backbones import BackboneSpec
from hub.zoo import ZooError


def _release(tmp_path: Path) -> tuple[nn.Module, Path]:
    """A SimSiam-layout release file (resnet18 stands in for resnet50 to stay small)."""
    torch.manual_seed(7)
    src = torchvision.models.resnet18()
    src.fc = nn.Identity()
    state = {f"module.encoder.{k}": v for k, v in src.state_dict().items()}
    state["module.encoder.fc.0.weight"] = torch.randn(16, 512)
    state["module.predictor.0.weight"] = torch.randn(8, 16)
    path = tmp_path / "server" / "checkpoint_0099.pth.tar"
    path.parent.mkdir()
    torch.save({"epoch": 100, "state_dict": state}, path)
    return src.eval(), path


def _row(url: str) -> zoo.ZooModel:
    return dataclasses.replace(
        zoo.get("simsiam_resnet50"), url=url, spec=BackboneSpec(name="resnet18")
    )


def test_download_convert_cache_then_cache_hit(tmp_path: Path, monkeypatch) -> None:
    src, path = _release(tmp_path)
    row = _row(path.as_uri())
    cache = tmp_path / "cache"
    x = torch.randn(2, 3, 64, 64)

    first = zoo.load(row, cache=cache)
    with torch.no_grad():
        assert torch.equal(first(x), src(x))
    folder = cache / row.name
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert not list((cache / "downloads").iterdir())  # the original is not kept
    assert first.ssl["hub_entry"] == "simsiam_resnet50" and first.ssl["source"] == row.url

    path.unlink()  # the "server" is gone: a second load must come from the cache

    def no_download(*args, **kwargs):
        raise AssertionError("the second load downloaded again")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    second = zoo.load(row, cache=cache)
    with torch.no_grad():
        assert torch.equal(second(x), src(x))


def test_failed_download_names_the_url_and_where_to_put_the_file(tmp_path: Path) -> None:
    src, path = _release(tmp_path)
    missing = tmp_path / "nowhere" / "checkpoint_0099.pth.tar"
    row = _row(missing.as_uri())
    cache = tmp_path / "cache"
    with pytest.raises(ZooError) as err:
        zoo.load(row, cache=cache)
    target = cache / "downloads" / "checkpoint_0099.pth.tar"
    assert missing.as_uri() in str(err.value) and str(target) in str(err.value)
    assert not target.exists() and not target.with_name(target.name + ".part").exists()

    shutil.copy(path, target)  # what the message says to do
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert torch.equal(zoo.load(row, cache=cache)(x), src(x))


def test_rows_and_names() -> None:
    names = [r.name for r in zoo.AUTHORS]
    assert names[0] == "resnet50.simsiam_100ep_in1k"
    assert len({r.entry for r in zoo.models()}) == len(zoo.models())
    assert zoo.get("mocov3_vit_small").spec.num_heads == 12
    with pytest.raises(ZooError, match="available: resnet50.simsiam_100ep_in1k"):
        zoo.get("resnet50.nope")


def test_torch_hub_entry_pretrained_converts_a_hand_placed_release(tmp_path: Path, monkeypatch):
    """The real row and entry: the file placed where the error message says, then
    ``torch.hub.load(..., "simsiam_resnet50", pretrained=True)`` converts and caches it."""
    torch.manual_seed(8)
    src = torchvision.models.resnet50()
    src.fc = nn.Identity()
    state = {f"module.encoder.{k}": v for k, v in src.state_dict().items()}
    state["module.encoder.fc.0.weight"] = torch.randn(16, 2048)
    monkeypatch.setenv("SIAMHUB_CACHE", str(tmp_path / "cache"))
    row = zoo.get("simsiam_resnet50")
    placed = tmp_path / "cache" / "downloads" / Path(row.url).name
    placed.parent.mkdir(parents=True)
    torch.save({"epoch": 100, "state_dict": state}, placed)

    repo = Path(__file__).resolve().parents[1]
    model = torch.hub.load(str(repo), "simsiam_resnet50", source="local", pretrained=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), src.eval()(x))
    assert (tmp_path / "cache" / row.name / "model.safetensors").is_file()
    assert model.ssl["results"][0]["metrics"]["top1"] == 68.1
