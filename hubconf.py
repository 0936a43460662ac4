"""torch.hub entry points: one per zoo model (``hub/zoo.py``), plus the backbone factory.

``torch.hub.load("<owner>/<name>:<branch>", "simsiam_resnet50", pretrained=True)`` (the GitHub
repository of ``pyproject.toml``'s ``[project.urls] Repository``, once the code is public; a
local checkout with ``source="local"`` meanwhile) downloads the authors' checkpoint on first
use, converts and caches it; ``pretrained=False`` builds the architecture. ``torch.hub.list``
shows every entry; each entry's docstring states its headline results. A model card names an
entry only when the entry loads that very encoder (``hub.card_usage.hub_entry``).

Without a network the download fails with one ``hub.zoo.ZooError`` naming the URL and where to
put the file by hand (``$SIAMHUB_CACHE/downloads/``); the file is read weights-only (a pickle
that would run code is refused) and checked against the row's SHA-256 when the row has one.
"""

dependencies = ["torch", "timm", "huggingface_hub", "safetensors"]

from hub.backbones import BackboneSpec, create_backbone  # noqa: E402
from hub.zoo import hub_entries  # noqa: E402

globals().update(hub_entries())


def backbone(name: str = "resnet50", **spec):
    """An untrained backbone by name (``resnet18``, ``resnet50``, ``vit_small``, ``vit_base``)."""
    return create_backbone(BackboneSpec(name=name, **spec))
