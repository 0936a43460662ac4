"""The usage section of a model card: loading code that works before a push (the folder's
path) and after it (the Hub repo id), with timm alone only where timm can rebuild the backbone,
torch.hub only where ``hubconf.py`` exports an entry that loads this very encoder, and the
clone line only where the project has a public repository (``hub.card_links``).
``tests/test_card_snippets.py`` runs every code block a card shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub import card_links

PLACEHOLDER = "path/to/this/folder"
BEFORE_PUSH = "### From this folder (before the push)"
TORCH_HUB = "### torch.hub"


def timm_loadable(config: dict[str, Any]) -> bool:
    """Whether ``timm.create_model("hf-hub:...")`` alone rebuilds this encoder: a plain timm
    config, or a siamhub backbone timm can express (``hub.encoder.timm_compatible``) whose
    ``architecture`` and ``model_args`` are the very ones it is built with (an older
    config.json that left arguments out does not qualify, whatever its ``timm_compatible``)."""
    ssl = config.get("ssl") or {}
    if ssl.get("backbone") is None:
        return "timm_compatible" not in ssl or bool(ssl["timm_compatible"])
    from hub.backbones import timm_call
    from hub.encoder import spec_from_config, timm_compatible

    spec = spec_from_config(config)
    if spec is None or not timm_compatible(spec):
        return False
    arch, args = timm_call(spec)
    return config.get("architecture") == arch and config.get("model_args") == args


def hub_entry(config: dict[str, Any]) -> str | None:
    """The torch.hub entry (``hubconf.py``, i.e. ``hub.zoo.hub_entries``) that loads this very
    encoder, else None: an authors' release converted from the entry's own URL. A published
    row's entry is never named: its card is written before the push that creates the revision
    the entry would pin."""
    ssl = config.get("ssl") or {}
    entry = ssl.get("hub_entry")
    if not entry:
        return None
    from hub.zoo import hub_entries, models

    if entry not in hub_entries():
        return None
    row = next(r for r in models() if r.entry == entry)
    return entry if row.url is not None and row.url == ssl.get("source") else None


def install_line(timm_ok: bool) -> str:
    """What ``Encoder`` needs; the clone command only when the repository is public."""
    url = card_links.repository_url()
    if url:
        how = f"`git clone {url} && pip install -e {card_links.clone_name(url)}`"
    else:
        how = "`pip install -e <siamhub checkout>`; its code is not public yet"
    timm = "; timm alone loads the weights too." if timm_ok else "."
    return f"`Encoder` needs siamhub installed ({how}){timm}"


def usage(config: dict[str, Any], repo: str | None, folder: str | Path | None) -> list[str]:
    """Loading code: the folder's path (before the push, or a downloaded copy), the repo id
    (after it), torch.hub, and detectron2's weights for a ResNet-50."""
    timm_ok = timm_loadable(config)
    local = _display(folder)
    out = [
        install_line(timm_ok),
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
    torch_hub = _torch_hub(config)
    out += torch_hub
    if not timm_ok:
        out += [
            "",
            "This backbone uses siamhub's small-image stem or width scaling, which timm's own "
            "constructor cannot express: load it with `Encoder.from_pretrained`"
            + (" or torch.hub." if torch_hub else "."),
        ]
    if config["architecture"] == "resnet50" and timm_ok:
        out += [
            "",
            "detectron2 (R50-C4 / FPN; `MODEL.WEIGHTS` takes the .pkl, with `RESNETS.STRIDE_IN_1X1 "
            'False`, `INPUT.FORMAT "RGB"` and torchvision mean/std as pixel statistics):',
            "",
            "```bash",
            f"siamhub-export {repo or local} encoder_d2.pkl",
            "```",
        ]
    return out


def _torch_hub(config: dict[str, Any]) -> list[str]:
    """The torch.hub snippet: an entry that loads this encoder, from a branch of the public
    GitHub repository that holds the code writing this card; nothing otherwise."""
    entry = hub_entry(config)
    url = card_links.repository_url()
    github = card_links.github_repo(url)
    if entry is None or github is None:
        return []
    branch = card_links.published_branch(card_links.head_commit() or "", url)
    if branch is None:
        return []
    return [
        "",
        TORCH_HUB,
        "",
        "```python",
        "import torch",
        "",
        f'model = torch.hub.load("{github}:{branch}", "{entry}", pretrained=True)',
        "```",
    ]


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
