"""Every recipe's encoder through timm alone: where the card claims timm, plain
``timm.create_model("local-dir:<folder>", pretrained=True)`` (what the card tells users) builds
the same network and gives bitwise the Encoder's outputs; where it does not, timm really cannot
build it and the card says so."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

from hub.backbones import BackboneSpec, create_backbone
from hub.encoder import Encoder

RECIPES = Path(__file__).resolve().parents[1] / "pretrain" / "recipes"


def _specs() -> dict[BackboneSpec, list[str]]:
    """Each distinct ``[model]`` of the recipes, with the recipes that use it (the three
    MoCo v3 ResNet-50 lengths build one network: it is loaded once)."""
    specs: dict[BackboneSpec, list[str]] = {}
    for path in sorted(RECIPES.glob("*.toml")):
        with path.open("rb") as f:
            spec = BackboneSpec(**tomllib.load(f)["model"])
        specs.setdefault(spec, []).append(path.stem)
    return specs


SPECS = _specs()


def _trained_like(spec: BackboneSpec) -> Encoder:
    """Random init, then every floating tensor moved off its init (BN statistics included),
    so a tensor timm re-initialised instead of loading would show."""
    torch.manual_seed(0)
    backbone = create_backbone(spec)
    with torch.no_grad():
        for t in backbone.state_dict().values():
            if t.is_floating_point():
                t.add_(0.01 * torch.randn_like(t)).abs_() if t.ndim == 1 else t.add_(0.01)
    return Encoder.from_spec(spec, ssl={"method": "mocov3"}, backbone=backbone).eval()


@pytest.mark.parametrize("spec", list(SPECS), ids=["+".join(v) for v in SPECS.values()])
def test_every_recipe_encoder_loads_through_timm_where_the_card_says_so(
    spec: BackboneSpec, tmp_path: Path
) -> None:
    encoder = _trained_like(spec)
    encoder.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    card = (tmp_path / "README.md").read_text()
    claims_timm = config["ssl"]["timm_compatible"]
    assert claims_timm == ("library_name: timm" in card) == ("timm.create_model" in card)

    c, h, w = config["pretrained_cfg"]["input_size"]
    if spec.name.startswith("resnet"):
        h = w = min(h, 64)  # a ResNet takes any size: keep the check cheap
    torch.manual_seed(1)
    x = torch.randn(1, c, h, w)
    weights = load_file(str(tmp_path / "model.safetensors"))
    with torch.device("meta"):  # shapes only: the weights are assigned below
        plain = timm.create_model(config["architecture"], **config["model_args"])
    if not claims_timm:  # the card is right that timm cannot build it
        with pytest.raises(RuntimeError, match="size mismatch|Missing key|Unexpected key"):
            plain.load_state_dict(weights, strict=True, assign=True)
        assert "timm's own constructor cannot express" in card
        return

    plain.load_state_dict(weights, strict=True, assign=True)  # same tensors, same shapes
    via_timm = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    assert type(via_timm) is type(encoder.backbone)
    with torch.no_grad():
        ref = encoder(x)
        assert torch.equal(via_timm(x), ref)
        assert torch.equal(plain.eval()(x), ref)
    assert str(via_timm) == str(encoder.backbone)  # same modules, sizes and options
