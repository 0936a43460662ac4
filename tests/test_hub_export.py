"""detectron2 export: torchvision's and timm's resnet50, named as detectron2 expects."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision

from hub.export import D2_KEY, detectron2_name, main, save_detectron2, to_detectron2

# detectron2's ResNet-50 (build_resnet_backbone, R50): stem + res2..res5 with 3/4/6/3 blocks.
BLOCKS = {"res2": 3, "res3": 4, "res4": 6, "res5": 3}


def _expected_d2_names() -> set[str]:
    bn = ("weight", "bias", "running_mean", "running_var")
    names = {"stem.conv1.weight", *(f"stem.conv1.norm.{k}" for k in bn)}
    for stage, n in BLOCKS.items():
        for i in range(n):
            convs = ["conv1", "conv2", "conv3"] + (["shortcut"] if i == 0 else [])
            for c in convs:
                names.add(f"{stage}.{i}.{c}.weight")
                names.update(f"{stage}.{i}.{c}.norm.{k}" for k in bn)
    return names


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_every_resnet50_key_is_accounted_for(source: str) -> None:
    with torch.device("meta"):  # names and shapes only; no 25M-parameter init
        if source == "torchvision":
            state = torchvision.models.resnet50().state_dict()
        else:
            state = timm.create_model("resnet50").state_dict()  # with its classifier
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in state.items()}
    export = to_detectron2(state)
    assert set(export.renamed) | set(export.dropped) == set(state)  # nothing left over
    assert not set(export.renamed) & set(export.dropped)
    assert set(export.model) == _expected_d2_names()
    assert all(D2_KEY.match(k) for k in export.model)
    assert all(k.endswith("num_batches_tracked") or k.startswith("fc.") for k in export.dropped)
    assert {"fc.weight", "fc.bias"} <= set(export.dropped)


def test_known_names() -> None:
    assert detectron2_name("conv1.weight") == "stem.conv1.weight"
    assert detectron2_name("bn1.running_var") == "stem.conv1.norm.running_var"
    assert detectron2_name("layer1.0.bn3.bias") == "res2.0.conv3.norm.bias"
    assert detectron2_name("layer4.0.downsample.0.weight") == "res5.0.shortcut.weight"
    assert detectron2_name("layer4.0.downsample.1.weight") == "res5.0.shortcut.norm.weight"


def test_pickle_loads_back_into_the_same_tensors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    state = model.state_dict()
    path = tmp_path / "r50.pkl"
    export = save_detectron2(state, path)
    with path.open("rb") as f:
        obj = pickle.load(f)
    assert obj["matching_heuristics"] is True and obj["__author__"] == "siamhub"
    assert set(obj["model"]) == _expected_d2_names()
    for key, name in export.renamed.items():
        value = obj["model"][name]
        assert isinstance(value, np.ndarray)
        assert torch.equal(torch.from_numpy(value), state[key])


def test_vit_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="only ResNet encoders"):
        to_detectron2({"blocks.0.attn.qkv.weight": torch.zeros(3, 3)})


def test_cli_exports_an_encoder_folder(tmp_path: Path) -> None:
    from hub.backbones import BackboneSpec
    from hub.encoder import Encoder

    encoder = Encoder.from_spec(BackboneSpec(name="resnet18"))
    encoder.save_pretrained(tmp_path / "enc")
    export = main([str(tmp_path / "enc"), str(tmp_path / "out.pkl")])
    assert (tmp_path / "out.pkl").is_file()
    assert set(export.renamed) | set(export.dropped) == set(encoder.backbone.state_dict())
