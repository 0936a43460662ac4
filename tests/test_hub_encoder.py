"""Encoder round trips: save_pretrained -> from_pretrained and timm local-dir, strict errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from hub.backbones import BackboneSpec, create_backbone
from hub.encoder import Encoder, EncoderLoadError
from hub.zoo import models

REPO = Path(__file__).resolve().parents[1]
SPECS = {
    "resnet": (BackboneSpec(name="resnet18"), 64),
    "vit": (BackboneSpec(name="vit_tiny", img_size=32, pos_embed="sincos", num_heads=3), 32),
}


def _trained_like(spec: BackboneSpec) -> Encoder:
    """An encoder whose every tensor (BN statistics included) differs from a fresh init."""
    torch.manual_seed(1)
    backbone = create_backbone(spec)
    with torch.no_grad():
        for t in backbone.state_dict().values():
            if t.is_floating_point():
                t.add_(0.01 * torch.randn_like(t)).abs_() if t.ndim == 1 else t.add_(0.01)
    return Encoder.from_spec(spec, ssl={"method": "simsiam"}, backbone=backbone).eval()


@pytest.mark.parametrize("kind", SPECS)
def test_round_trip_is_bitwise_and_timm_loads_the_folder(kind: str, tmp_path: Path) -> None:
    spec, size = SPECS[kind]
    encoder = _trained_like(spec)
    encoder.save_pretrained(tmp_path)
    x = torch.randn(2, 3, size, size)

    loaded = Encoder.from_pretrained(tmp_path)
    via_timm = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    with torch.no_grad():
        ref = encoder(x)
        assert torch.equal(loaded(x), ref)
        assert torch.equal(via_timm(x), ref)
    assert ref.shape == (2, encoder.num_features)

    # The weights file holds the backbone's own keys, nothing of the wrapper or the heads.
    keys = set(load_file(str(tmp_path / "model.safetensors")))
    with torch.device("meta"):
        assert keys == set(create_backbone(spec).state_dict())
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] in timm.list_models()
    assert config["num_features"] == encoder.num_features and config["num_classes"] == 0
    assert config["pretrained_cfg"]["input_size"][0] == 3
    assert config["ssl"]["method"] == "simsiam" and config["ssl"]["backbone"]["name"] == spec.name
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: timm" in card
    assert 'timm.create_model("local-dir:path/to/this/folder", pretrained=True)' in card


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    spec, _ = SPECS["resnet"]
    _trained_like(spec).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(str(weights))
    state.pop("layer4.1.bn2.weight")
    state["fc.weight"] = torch.zeros(3, 512)
    save_file(state, str(weights))
    with pytest.raises(EncoderLoadError) as err:
        Encoder.from_pretrained(tmp_path)
    assert "missing keys [layer4.1.bn2.weight]" in str(err.value)
    assert "unexpected keys [fc.weight]" in str(err.value)


def test_wrong_shape_is_named(tmp_path: Path) -> None:
    spec, _ = SPECS["resnet"]
    _trained_like(spec).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(str(weights))
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    save_file(state, str(weights))
    with pytest.raises(EncoderLoadError, match=r"conv1\.weight: \(64, 1, 7, 7\) in the weights"):
        Encoder.from_pretrained(tmp_path)


def test_strict_false_is_refused(tmp_path: Path) -> None:
    spec, _ = SPECS["resnet"]
    _trained_like(spec).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="strictly"):
        Encoder.from_pretrained(tmp_path, strict=False)


def test_small_stem_encoder_round_trips_and_says_timm_cannot_build_it(tmp_path: Path) -> None:
    spec = BackboneSpec(name="resnet18", in_chans=1, width=8, stem="small", stem_stride=2)
    encoder = _trained_like(spec)
    encoder.save_pretrained(tmp_path)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(Encoder.from_pretrained(tmp_path)(x), encoder(x))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["ssl"]["timm_compatible"] is False
    assert "timm's own constructor cannot express" in (tmp_path / "README.md").read_text()


def test_torch_hub_builds_every_zoo_entry() -> None:
    """Every entry builds its architecture through torch.hub (on the meta device: shapes and
    module structure without spending CPU on random inits; one real build below)."""
    import hubconf

    for row in models():
        with torch.device("meta"):
            model = torch.hub.load(str(REPO), row.entry, source="local", pretrained=False)
            size = model.config["pretrained_cfg"]["input_size"][1]
            out = model(torch.empty(2, 3, size, size))
        assert isinstance(model, Encoder) and model.spec == row.spec
        assert out.shape == (2, model.num_features)
        assert row.headline in getattr(hubconf, row.entry).__doc__
    real = torch.hub.load(str(REPO), "simsiam_resnet50", source="local", pretrained=False)
    with torch.no_grad():
        assert real.eval()(torch.randn(1, 3, 64, 64)).isfinite().all()


def test_a_folder_that_is_not_an_encoder_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(EncoderLoadError, match="names no architecture"):
        Encoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(EncoderLoadError, match="no config.json"):
        Encoder.from_pretrained(tmp_path)


def test_plain_timm_config_loads(tmp_path: Path) -> None:
    """A timm hub folder without the ssl block (e.g. a supervised timm model) loads too."""
    model = timm.create_model("resnet18", num_classes=0).eval()
    timm.models.save_for_hf(model, tmp_path, safe_serialization=True)  # timm's own writer
    loaded = Encoder.from_pretrained(tmp_path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.slow
def test_torch_hub_builds_every_zoo_entry_for_real() -> None:
    """The same entries with real storage and random inits (ViT-B alone takes seconds)."""
    for row in models():
        model = torch.hub.load(str(REPO), row.entry, source="local", pretrained=False).eval()
        size = model.config["pretrained_cfg"]["input_size"][1]
        with torch.no_grad():
            out = model(torch.randn(1, 3, size, size))
        assert out.shape == (1, model.num_features) and out.isfinite().all()
