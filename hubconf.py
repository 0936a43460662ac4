"""torch.hub entry points: one per zoo model (``hub/zoo.py``), plus the backbone factory.

``torch.hub.load("<owner>/siamhub", "simsiam_resnet50", pretrained=True)`` downloads the authors'
checkpoint on first use, converts and caches it; ``pretrained=False`` builds the architecture.
``torch.hub.list`` shows every entry; each entry's docstring states its headline results.
"""

dependencies = ["torch", "timm", "huggingface_hub", "safetensors"]

from hub.backbones import BackboneSpec, create_backbone  # noqa: E402
from hub.zoo import hub_entries  # noqa: E402

globals().update(hub_entries())


def backbone(name: str = "resnet50", **spec):
    """An untrained backbone by name (``resnet18``, ``resnet50``, ``vit_small``, ``vit_base``)."""
    return create_backbone(BackboneSpec(name=name, **spec))
