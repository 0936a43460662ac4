"""Model cards: the README.md of an encoder folder / Hub repo, generated from its ``config.json``.

The card has the Hub's YAML header (license, tags, datasets, pipeline tag, ``library_name:
timm`` only when timm alone can load the repo, a model-index of the results), what was trained
(method and paper, architecture, data, recipe, trained length, batch, git sha), one results row
per metric (short protocol, link to the result record), intended use and limitations, usage
that works before a push (the folder's path) and after it (the repo id), and the paper's
BibTeX (``hub/citations.py``). The results rows are ``hub/card_results.py``'s, the usage
section ``hub/card_usage.py``'s.

A card says only what is known: a file that does not record its pretraining data (a
backbone-only state dict) has no ``datasets`` in its header and no dataset in its text, never
``null``, ``None`` or a default guessed for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hub import card_links
from hub.card_results import DATASET_NAMES, cell, result_rows, results_table
from hub.card_usage import timm_loadable, usage
from hub.citations import paper
from hub.method_keys import own_recipe
from records.length import length_of
from records.methods import display_name

LICENSE = "apache-2.0"  # siamhub's own license: weights it trains are published under it
DATASETS = {  # dataset name in the recipe -> Hub dataset id
    "imagenet": "ILSVRC/imagenet-1k",
    "imagefolder": "ILSVRC/imagenet-1k",
    "fashion_mnist": "zalando-datasets/fashion_mnist",
}
POOLS = {"avg": "global average pool", "token": "class token"}
TRAIN_IMAGES = {"imagenet": "1.28M", "imagefolder": "1.28M", "fashion_mnist": "60,000"}


def pretraining_dataset(ssl: dict[str, Any]) -> str | None:
    """The recipe's dataset name (``fashion_mnist``, ``imagefolder``, ``imagenet``), or None when
    the encoder's metadata does not record it: never a default."""
    dataset = ssl.get("dataset")
    return dataset if isinstance(dataset, str) and dataset else None


def model_card(
    config: dict[str, Any], repo_id: str | None = None, folder: str | Path | None = None
) -> str:
    """The README.md text for an encoder whose ``config.json`` is ``config``.

    ``repo_id`` (default: ``ssl.repo_id``) is where the folder is pushed; ``folder`` is the
    path the "before the push" snippet loads (a placeholder when not given).
    """
    ssl = config.get("ssl") or {}
    repo = repo_id or ssl.get("repo_id")
    rows = result_rows(ssl.get("results") or [], ssl.get("method", ""))
    name = ssl.get("name") or repo or config["architecture"]
    header = _front_matter(config, rows, name, repo)
    method = ssl.get("method") or "unknown"
    lines = [
        f"# {name}",
        "",
        _summary(config),
        "",
        "## Model details",
        "",
        *details(config),
        "",
        "## Results",
        "",
        *results_table(rows),
        "",
        "## Intended use and limitations",
        "",
        *intended_use(config, rows),
        "",
        "## How to use",
        "",
        *usage(config, repo, folder),
        "",
        *_recipe(own_recipe(ssl.get("recipe") or {}, ssl.get("method"))),
        *_citation(method),
    ]
    return header + "\n" + "\n".join(lines) + "\n"


def _front_matter(
    config: dict[str, Any], rows: list[dict[str, Any]], name: str, repo: str | None
) -> str:
    ssl = config.get("ssl") or {}
    method = ssl.get("method") or "unknown"
    dataset = pretraining_dataset(ssl)
    arch = config["architecture"]
    tags = ["self-supervised", "image-feature-extraction", "siamhub", method, arch]
    tags += ["timm"] if timm_loadable(config) else ["pytorch_model_hub_mixin", "model_hub_mixin"]
    evals = [_eval_result(r, repo) for r in rows if r["dataset"] in DATASETS and not r["baseline"]]
    data = ModelCardData(
        license=weights_license(ssl),
        library_name="timm" if timm_loadable(config) else None,
        pipeline_tag="image-feature-extraction",
        tags=list(dict.fromkeys(tags)),
        datasets=[DATASETS[dataset]] if dataset in DATASETS else None,  # Hub ids only
        model_name=name if evals else None,
        eval_results=evals or None,
    )
    card = ModelCard.from_template(card_data=data, template_str="---\n{{ card_data }}\n---\n")
    return str(card).rstrip("\n") + "\n"


def _eval_result(row: dict[str, Any], repo: str | None) -> EvalResult:
    detection = row["task"].endswith("_det")
    result = EvalResult(
        task_type="object-detection" if detection else "image-classification",
        task_name=row["task_label"],
        dataset_type=DATASETS[row["dataset"]],
        dataset_name=DATASET_NAMES[row["dataset"]],
        dataset_split="test",
        metric_type="mAP" if detection else "accuracy",
        metric_name=f"{row['task_label']} {row['metric_label']}",
        metric_value=row["value"],
    )
    if repo and row["record"]:
        result.source_name = f"siamhub result record {row['record']}"
        result.source_url = f"https://huggingface.co/{repo}/blob/main/{row['record']}"
    return result


def weights_license(ssl: dict[str, Any]) -> str:
    """siamhub's license for weights it trained; the authors' for a converted release."""
    source = str(ssl.get("source") or "")
    pub = paper(ssl.get("method", ""))
    converted = source.startswith(("http://", "https://")) or "converted_with" in ssl
    if converted and pub is not None:  # a release's URL, or a file hub/publish.py imported
        return pub.weights_license
    return LICENSE


def _summary(config: dict[str, Any]) -> str:
    ssl = config.get("ssl") or {}
    method = ssl.get("method") or "unknown"
    pub = paper(method)
    cited = f"[{display_name(method)}]({pub.url}) ({pub.short})" if pub else method
    dataset = pretraining_dataset(ssl)
    return (
        f"A {config['architecture']} image encoder (backbone only: {config['num_features']}-d "
        f"pooled features, no projector or predictor) pretrained without labels with {cited} "
        f"on {DATASET_NAMES.get(dataset, dataset) if dataset else 'unrecorded data'}, "
        + (
            f"{ssl['source']} by {_siamhub()}"  # "imported from <file> (...)"
            if "converted_with" in ssl  # hub/publish.py on a checkpoint siamhub did not train
            else f"by {_siamhub()}"
        )
        + "."
    )


def _siamhub() -> str:
    """siamhub, linked to its repository when it has a public one (``hub.card_links``)."""
    url = card_links.repository_url()
    return f"[siamhub]({url})" if url else "siamhub"


def length_text(ssl: dict[str, Any]) -> str:
    """``12 ep``, or the trained length of a run stopped early and the recipe's."""
    length = length_of(ssl)
    if length.stopped_early:
        span = f"{length.configured:g}" if length.configured is not None else "?"
        return f"trained {length.label}, stopped early (the recipe's schedules span {span} epochs)"
    if length.configured is None and length.epochs is None:
        return "not recorded"
    return length.label


def _citation(method: str) -> list[str]:
    pub = paper(method)
    if pub is None:
        return []
    return [
        "",
        "## Citation",
        "",
        f"{display_name(method)}: [{pub.title}]({pub.url}) ({pub.short}); code: {pub.code}",
        "",
        "```bibtex",
        pub.bibtex(),
        "```",
    ]


def _recipe(recipe: dict[str, Any]) -> list[str]:
    if not recipe:
        return []
    flat = _flatten(recipe)
    rows = [f"| `{k}` | `{cell(v)}` |" for k, v in flat.items() if v not in (None, "")]
    return [
        "## Full recipe",
        "",
        "<details><summary>Every configuration value of the run (siamhub's recipe "
        "format)</summary>",
        "",
        "| key | value |",
        "|---|---|",
        *rows,
        "",
        "</details>",
    ]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ---------------------------------------------------------------------------- sections


def details(config: dict[str, Any]) -> list[str]:
    """What was trained, how long, on what, from which commit: a two-column table."""
    ssl = config.get("ssl") or {}
    method = ssl.get("method")
    pub = paper(method or "")
    dataset = pretraining_dataset(ssl)
    c, h, w = config["pretrained_cfg"]["input_size"]
    pre = config["pretrained_cfg"]
    stats = f"mean {_nums(pre.get('mean'))}, std {_nums(pre.get('std'))}"
    crop = "whole image" if pre.get("crop_pct", 1.0) >= 1.0 else f"crop_pct {pre['crop_pct']}"
    recipe = ssl.get("recipe_name")
    pool = config.get("global_pool", "avg")
    fields = [
        ("method", f"[{display_name(method)}]({pub.url}) ({pub.short})" if pub else method),
        ("architecture", _architecture(config)),
        ("output", f"{config['num_features']}-d features, {POOLS.get(pool, pool)}"),
        ("input", f"{c}×{h}×{w}, {stats}, {crop}"),
        ("pretraining data", _data(dataset)),
        ("recipe", f"`{recipe}`" if recipe else None),
        ("trained length", length_text(ssl)),
        ("global batch", ssl.get("batch_size") or None),
        ("code", _commit(ssl.get("git_sha"))),
        ("source", ssl.get("source")),
        ("weights license", weights_license(ssl)),
    ]
    rows = [f"| {k} | {cell(v if v not in (None, '') else 'not recorded')} |" for k, v in fields]
    return ["| field | value |", "|---|---|", *rows]


def _architecture(config: dict[str, Any]) -> str:
    arch = f"`{config['architecture']}` (timm)"
    b = (config.get("ssl") or {}).get("backbone")
    if not isinstance(b, dict):
        return arch
    notes = []
    if b.get("in_chans", 3) != 3:
        notes.append(f"{b['in_chans']}-channel input")
    if b.get("name", "").startswith("resnet"):
        if b.get("width", 64) != 64:
            notes.append(f"width {b['width']} (timm's is 64)")
        if b.get("stem") == "small":
            notes.append(f"small-image stem (3×3 conv, stride {b.get('stem_stride', 1)}, no pool)")
    else:
        if b.get("pos_embed") == "sincos":
            notes.append("2-D sin-cos position embedding")
        if b.get("freeze_patch_embed"):
            notes.append("patch projection frozen in training")
    return f"{arch}, siamhub variant: {', '.join(notes)}" if notes else arch


def _data(dataset: str | None) -> str | None:
    if not dataset:
        return None
    name = DATASET_NAMES.get(dataset, dataset)
    n = TRAIN_IMAGES.get(dataset)
    images = f", {n} images" if n else ""
    return f"{name} train split{images}, labels unused"


def _commit(sha: Any) -> str | None:
    """The commit it was trained and published from (``hub.provenance.git_sha``; ``+dirty``:
    with uncommitted changes to tracked files, which the card says): a link only when the
    commit is published (``hub.card_links.commit_text``)."""
    return card_links.commit_text(sha)


def _nums(values: Any) -> str:
    if not isinstance(values, list | tuple):
        return "?"
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def intended_use(config: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Bullets: what the encoder is for, what it saw, and what was not measured."""
    ssl = config.get("ssl") or {}
    dataset = pretraining_dataset(ssl)
    c, h, _ = config["pretrained_cfg"]["input_size"]
    length = length_of(ssl)
    like = f" ({DATASET_NAMES.get(dataset, dataset)})" if dataset else ""
    batch = ssl.get("batch_size")
    out = [
        f"- **Intended use**: frozen features (kNN, linear probes) or an initialisation for "
        f"fine-tuning, on images like its pretraining data{like}; research on "
        "self-supervised learning. Its output is an unlabelled feature vector, not a class.",
        f"- **Trained on** {_data(dataset) or 'an unrecorded dataset'}, for "
        f"{length.label if length.configured or length.epochs else 'an unrecorded length'}"
        + (f" at global batch {batch}" if batch else "")
        + ".",
    ]
    if dataset == "fashion_mnist":
        out.append(
            f"- **Small-image encoder**: it takes {c}-channel {h}×{h} px grayscale images of "
            "single centred clothing items. These are not ImageNet features: do not expect "
            "them to transfer to natural photos, larger images or RGB input."
        )
    elif dataset is None:
        out.append(
            f"- **Unrecorded pretraining data**: it takes {c}-channel {h}×{h} px images after "
            "the preprocessing above, but what it was pretrained on is not recorded with its "
            "weights, so neither that data's biases nor its terms of use are known here: ask "
            "whoever trained it (its source above) before relying on it."
        )
    elif c == 3 and dataset in ("imagenet", "imagefolder"):
        out.append(
            f"- **Input**: RGB images at {h}×{h} px after the preprocessing above; ImageNet-1k "
            "carries its own biases (object-centric photos, its label set) and terms of access "
            "(non-commercial research): check them before other uses."
        )
    if length.stopped_early:
        out.append(
            f"- **Shorter than its recipe**: it stopped after {length.label} of the "
            f"{length.configured or 0:g} epochs its recipe's schedules span; its numbers "
            "measure this short run, not the recipe."
        )
    if not rows:
        out.append("- **Unmeasured**: no transfer result is recorded for it.")
    elif any(r["task"].endswith("_det") for r in rows):
        out.append(
            "- **Evaluation**: the results above; fine-tuning was evaluated only through the "
            "detection rows (each at the scale its protocol gives), nothing else."
        )
    else:
        out.append(
            "- **Evaluation**: only the frozen-feature results above (one run each); "
            "fine-tuning was not evaluated."
        )
    out.append(
        "- **Not for** decisions about people or any safety-critical use: it was neither "
        "designed nor tested for them."
    )
    return out
