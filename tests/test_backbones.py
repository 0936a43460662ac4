"""The backbone factory: ResNet stems and widths, ViT options, grayscale input."""

from __future__ import annotations

import pytest
import torch
import torchvision

from hub.backbones import BackboneSpec, available, create_backbone


def test_resnet_keys_equal_torchvision():
    ours = create_backbone(BackboneSpec(name="resnet50")).state_dict()
    theirs = {
        k: v
        for k, v in torchvision.models.resnet50().state_dict().items()
        if not k.startswith("fc.")
    }
    assert ours.keys() == theirs.keys()
    assert all(ours[k].shape == theirs[k].shape for k in ours)


@pytest.mark.parametrize("name,features", [("resnet18", 512), ("resnet50", 2048)])
def test_small_image_stem_keeps_resolution(name, features):
    model = create_backbone(BackboneSpec(name=name, stem="small", in_chans=1))
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model.forward_features(torch.randn(2, 1, 32, 32)).shape[-1] == 4  # 32 / 8
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, features)


def test_narrow_resnet18_matches_a_width_scaled_resnet18():
    model = create_backbone(
        BackboneSpec(name="resnet18", width=32, stem="small", stem_stride=2, in_chans=1)
    )
    assert model.num_features == 256
    assert model.layer1[0].downsample is None  # no projection shortcut, as in ResNet-18
    assert model.conv1.stride == (2, 2)
    n = sum(p.numel() for p in model.parameters())
    assert 2.7e6 < n < 2.9e6


def test_vit_small_with_mocov3_options():
    spec = BackboneSpec(
        name="vit_small", img_size=32, num_heads=12, pos_embed="sincos", freeze_patch_embed=True
    )
    model = create_backbone(spec)
    assert model.blocks[0].attn.num_heads == 12
    assert not model.pos_embed.requires_grad and not model.patch_embed.proj.weight.requires_grad
    assert torch.all(model.pos_embed[0, 0] == 0)  # class-token row
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 384)


def test_unknown_backbone_lists_the_available_ones():
    with pytest.raises(ValueError, match="resnet18"):
        create_backbone(BackboneSpec(name="resnet34"))
    assert "vit_base" in available()


def test_torch_hub_loads_a_backbone_from_this_checkout():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    model = torch.hub.load(
        str(root), "backbone", "resnet18", source="local", trust_repo=True, width=16
    )
    assert model.num_features == 128
