"""Model cards: the README.md of an encoder repo, generated from its ``config.json``.

The card has the Hub's YAML header (library, license, tags, datasets, pipeline tag), the method
and paper links, the recipe as a table, the results the ``ssl`` block carries (each with the
protocol that produced it and where it comes from), and copy-paste usage for torch.hub,
``Encoder.from_pretrained``, timm and detectron2.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from records.length import length_of

GITHUB_REPO = "siamhub/siamhub"  # owner/name of the code repository torch.hub loads from

PAPERS = {
    "simsiam": ("Exploring Simple Siamese Representation Learning", "2011.10566"),
    "byol": ("Bootstrap Your Own Latent", "2006.07733"),
    "mocov3": ("An Empirical Study of Training Self-Supervised Vision Transformers", "2104.02057"),
    "mocov2": ("Improved Baselines with Momentum Contrastive Learning", "2003.04297"),
    "mocov1": ("Momentum Contrast for Unsupervised Visual Representation Learning", "1911.05722"),
}
DATASETS = {
    "imagenet": "imagenet-1k",
    "imagefolder": "imagenet-1k",
    "fashion_mnist": "fashion_mnist",
}


def model_card(config: dict[str, Any], repo_id: str | None = None) -> str:
    """The README.md text for an encoder whose ``config.json`` is ``config``."""
    ssl = config.get("ssl", {})
    method = ssl.get("method", "unknown")
    dataset = ssl.get("dataset", "imagenet")
    data = ModelCardData(
        library_name="timm",
        license="apache-2.0",
        pipeline_tag="image-feature-extraction",
        tags=sorted({"self-supervised", "siamhub", "image-feature-extraction", "timm", method}),
        datasets=[DATASETS.get(dataset, dataset)],
    )
    repo = repo_id or ssl.get("repo_id")
    title, arxiv = PAPERS.get(method, (method, None))
    paper = f"[{title}](https://arxiv.org/abs/{arxiv})" if arxiv else title
    lines = [
        f"# {ssl.get('name') or repo or config['architecture']}",
        "",
        f"A {config['architecture']} encoder (backbone only, {config['num_features']}-d pooled "
        f"features) pretrained with **{method}** ({paper}) on {dataset}.",
        "",
        f"- Source: {ssl.get('source', 'trained with siamhub')}",
        f"- Recipe: `{ssl.get('recipe_name', 'n/a')}`; {_length(ssl)}; "
        f"global batch {ssl.get('batch_size', 'n/a')}; git sha `{ssl.get('git_sha', 'n/a')}`",
        "",
        "## Results",
        "",
        *_results_table(ssl.get("results", [])),
        "",
        "## Recipe",
        "",
        *_recipe_table(ssl.get("recipe") or {}),
        "",
        "## Usage",
        "",
        *_usage(config, repo),
    ]
    card = ModelCard.from_template(card_data=data, template_str="---\n{{ card_data }}\n---\n\n")
    return str(card).rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"


def _length(ssl: dict[str, Any]) -> str:
    """``epochs 12``, or the trained length of a run stopped early and the recipe's."""
    length = length_of(ssl)
    if length.stopped_early:
        span = f"{length.configured:g}" if length.configured is not None else "n/a"
        return f"trained {length.label}, stopped early (the recipe's schedules span {span} epochs)"
    return f"epochs {ssl.get('epochs', 'n/a')}"


def _results_table(results: list[dict[str, Any]]) -> list[str]:
    if not results:
        return ["No transfer results recorded for this encoder yet."]
    rows = ["| task | metric | value | protocol | source |", "|---|---|---|---|---|"]
    for r in results:
        protocol = ", ".join(f"{k}={v}" for k, v in (r.get("protocol") or {}).items())
        for metric, value in (r.get("metrics") or {}).items():
            rows.append(
                f"| {r.get('task', '?')} | {metric} | {value} | {protocol or 'n/a'} | "
                f"{r.get('source', 'measured')} |"
            )
    return rows


def _recipe_table(recipe: dict[str, Any], prefix: str = "") -> list[str]:
    if not recipe:
        return ["The recipe is not recorded (an imported checkpoint: see the source's paper)."]
    flat = _flatten(recipe)
    return ["| key | value |", "|---|---|", *(f"| `{k}` | `{v}` |" for k, v in flat.items())]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _usage(config: dict[str, Any], repo: str | None) -> list[str]:
    """Copy-paste loading code; a folder not yet on the Hub is loaded by its path."""
    ssl = config.get("ssl", {})
    where = repo or "path/to/this/folder"
    timm_name = f"hf-hub:{repo}" if repo else "local-dir:path/to/this/folder"
    entry = ssl.get("hub_entry")
    c, h, w = config["pretrained_cfg"]["input_size"]
    lines = ["```python", "import torch", ""]
    if entry:
        lines += [
            "# torch.hub (the zoo entry; downloads and caches the weights)",
            f'model = torch.hub.load("{GITHUB_REPO}", "{entry}", pretrained=True)',
            "",
        ]
    lines += [
        "# Encoder.from_pretrained (a checkout of siamhub on the path)",
        "from hub.encoder import Encoder",
        f'model = Encoder.from_pretrained("{where}")',
        f"features = model(torch.randn(1, {c}, {h}, {w}))  # (1, {config['num_features']})",
    ]
    if ssl.get("timm_compatible", True):
        lines += [
            "",
            "# timm alone",
            "import timm",
            f'model = timm.create_model("{timm_name}", pretrained=True)',
        ]
    lines += ["```"]
    if not ssl.get("timm_compatible", True):
        lines += [
            "",
            "This backbone uses siamhub's small-image stem or width scaling, which timm's own "
            "constructor cannot express: load it with `Encoder.from_pretrained` or torch.hub.",
        ]
    if config["architecture"] == "resnet50" and ssl.get("timm_compatible", True):
        lines += [
            "",
            "detectron2 (R50-C4 / FPN; `MODEL.WEIGHTS` takes the .pkl, with `RESNETS.STRIDE_IN_1X1 "
            'False`, `INPUT.FORMAT "RGB"` and torchvision mean/std as pixel statistics):',
            "",
            "```bash",
            f"python hub/export.py {where} encoder_d2.pkl",
            "```",
        ]
    return lines
