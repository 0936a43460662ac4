"""torch.hub entry points.

The zoo's entries (``simsiam_resnet50``, ``mocov3_vit_small``, ...) arrive with the hub issue;
until then torch.hub exposes the backbone factory so the architectures load by name.
"""

dependencies = ["torch", "timm"]

from hub.backbones import BackboneSpec, create_backbone  # noqa: E402


def backbone(name: str = "resnet50", **spec):
    """An untrained backbone by name (``resnet18``, ``resnet50``, ``vit_small``, ``vit_base``)."""
    return create_backbone(BackboneSpec(name=name, **spec))
