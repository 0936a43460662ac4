"""The usage section of a model card: loading code that works before a push (the folder's
path) and after it (the Hub repo id), with timm alone only where timm can rebuild the backbone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GITHUB_REPO = "siamhub/siamhub"  # owner/name of the code repository torch.hub loads from
GITHUB = f"https://github.com/{GITHUB_REPO}"
PLACEHOLDER = "path/to/this/folder"
BEFORE_PUSH = "### From this folder (before the push)"


def timm_loadable(config: dict[str, Any]) -> bool:
    """Whether ``timm.create_model("hf-hub:...")`` alone rebuilds this encoder: a plain timm
    config, or an ``ssl`` block that says so (``hub.encoder.timm_compatible``)."""
    ssl = config.get("ssl") or {}
    if "timm_compatible" in ssl:
        return bool(ssl["timm_compatible"])
    if ssl.get("backbone") is None:
        return True
    from hub.encoder import spec_from_config, timm_compatible

    spec = spec_from_config(config)
    return spec is not None and timm_compatible(spec)


def usage(config: dict[str, Any], repo: str | None, folder: str | Path | None) -> list[str]:
    """Loading code: the folder's path (before the push, or a downloaded copy), the repo id
    (after it), torch.hub, and detectron2's weights for a ResNet-50."""
    ssl = config.get("ssl") or {}
    timm_ok = timm_loadable(config)
    local = _display(folder)
    out = [
        "`Encoder` needs a checkout of siamhub on the Python path "
        f"(`git clone {GITHUB} && pip install -e siamhub`)"
        + ("; timm alone loads the weights too." if timm_ok else "."),
        "",
        BEFORE_PUSH,
        "",
        *_snippet(config, local, f"local-dir:{local}", timm_ok),
    ]
    if repo:
        out += [
            "",
            f"### From the Hub (after `python hub/publish.py <run> --repo-id {repo} --push`)",
            "",
            *_snippet(config, repo, f"hf-hub:{repo}", timm_ok),
            "",
            f"A local copy (`hf download {repo} --local-dir {local}`) loads with the first "
            "snippet.",
        ]
    if ssl.get("hub_entry"):
        out += [
            "",
            "### torch.hub (the zoo entry, once its row is in the repository's zoo)",
            "",
            "```python",
            "import torch",
            "",
            f'model = torch.hub.load("{GITHUB_REPO}", "{ssl["hub_entry"]}", pretrained=True)',
            "```",
        ]
    if not timm_ok:
        out += [
            "",
            "This backbone uses siamhub's small-image stem or width scaling, which timm's own "
            "constructor cannot express: load it with `Encoder.from_pretrained` or torch.hub.",
        ]
    if config["architecture"] == "resnet50" and timm_ok:
        out += [
            "",
            "detectron2 (R50-C4 / FPN; `MODEL.WEIGHTS` takes the .pkl, with `RESNETS.STRIDE_IN_1X1 "
            'False`, `INPUT.FORMAT "RGB"` and torchvision mean/std as pixel statistics):',
            "",
            "```bash",
            f"python hub/export.py {repo or local} encoder_d2.pkl",
            "```",
        ]
    return out


def _snippet(config: dict[str, Any], where: str, timm_name: str, timm_ok: bool) -> list[str]:
    c, h, w = config["pretrained_cfg"]["input_size"]
    lines = [
        "```python",
        "import torch",
        "",
        "from hub.encoder import Encoder",
        "",
        f'encoder = Encoder.from_pretrained("{where}")',
        f"features = encoder(torch.randn(1, {c}, {h}, {w}))  # (1, {config['num_features']})",
    ]
    if timm_ok:
        lines += [
            "",
            "import timm  # timm alone: the same backbone",
            "",
            f'backbone = timm.create_model("{timm_name}", pretrained=True).eval()',
        ]
    return [*lines, "```"]


def _display(folder: str | Path | None) -> str:
    """The folder as the snippet names it: relative to the working directory when inside it
    (no home directory in a pushed card), else as given; a placeholder when unknown."""
    if folder is None:
        return PLACEHOLDER
    path = Path(folder)
    if path.is_absolute():
        try:
            return path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix()
