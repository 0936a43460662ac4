"""A model card says only what is known: no placeholder value (``None``, ``null``) anywhere in
the cards ``hub/publish.py`` writes, and a YAML header the Hub's own client reads back.

The cards, each published as a user publishes it:

- a siamhub run, with the kNN of its summary.json (the same run's baselines) and a transfer
  record measured on its weights;
- the authors' full DINO ResNet-50 checkpoint (``main_dino.py``'s ``save_dict``: it records
  its epochs, batch and data path);
- DINO's backbone-only ResNet-50 (``dino_resnet50_pretrain.pth``, torchvision's keys) with
  ``--method dino``: the file says nothing of its data, length or batch;
- DINO's backbone-only ViT-S/16 (``dino_deitsmall16_pretrain.pth``) with ``--method dino``, a
  ViT timm alone loads (``library_name: timm``);
- and every authors' release of the zoo (``hub.zoo.AUTHORS``), shapes only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from huggingface_hub import ModelCard, ModelCardData

from hub import publish
from hub.card import DATASETS, model_card
from hub.encoder import Encoder
from tests.conftest import make_tiny_fmnist, tiny_config
from tests.test_card_identity import _knn, _run_dir
from tests.test_dino_releases import build_release, fill, vit_small16_layout

KINDS = ("siamhub_run", "dino_full", "dino_backbone_only", "vit_backbone_only")
PLACEHOLDER = re.compile(r"\b(None|null|nan|NaN)\b")  # what str() / YAML make of a missing value


@pytest.fixture(scope="module")
def cards(tmp_path_factory) -> dict[str, Path]:
    """The published folder of each kind."""
    from pretrain.evaluate import final_knn_report
    from pretrain.methods import build_method

    tmp = tmp_path_factory.mktemp("cards")
    data = make_tiny_fmnist(tmp / "fmnist")
    run = _run_dir(tmp / "run", data, seed=11)
    cfg = tiny_config(data, "eval.knn_k=5")
    report = final_knn_report(build_method(cfg), cfg, torch.device("cpu"))
    (run / "summary.json").write_text(json.dumps({"knn_eval": report}))
    _knn(run, data, tmp)  # a transfer record of its weights, in tmp/results
    release = build_release(tmp, "resnet50")
    vit = tmp / "dino_deitsmall16_pretrain.pth"
    torch.save(fill(vit_small16_layout(), 30), vit)  # the released teacher backbone's keys
    sources = {
        "siamhub_run": [run, "--repo-id", "acme/tiny-run"],
        "dino_full": [release["full"]],
        "dino_backbone_only": [release["backbone_only"], "--method", "dino"],
        "vit_backbone_only": [vit, "--method", "dino", "--repo-id", "acme/dino-vits16"],
    }
    out = {}
    for kind, (source, *flags) in sources.items():
        out[kind] = tmp / "published" / kind
        argv = [str(source), "--out", str(out[kind]), "--results", str(tmp / "results")]
        publish.main([*argv, *flags])
    return out


def _header(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _nulls(value: Any, where: str = "") -> list[str]:
    """The paths of every null (or empty) value inside a parsed YAML header."""
    if value is None or value in ("", [], {}):
        return [where or "<root>"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{where}[{i}]")]
    return []


def _assert_states_no_placeholder(card: str, name: str) -> None:
    leaks = [line for line in card.splitlines() if PLACEHOLDER.search(line)]
    assert not leaks, f"{name}: {leaks}"
    assert _nulls(_header(card)) == [], name


def _assert_header_reads_back(card: str, name: str) -> ModelCardData:
    """``huggingface_hub.ModelCard`` parses the header into ``ModelCardData`` (model-index into
    ``EvalResult`` objects, which the client checks), and writes back the same metadata."""
    parsed = ModelCard(card, ignore_metadata_errors=False)
    data = parsed.data
    assert isinstance(data, ModelCardData), name
    assert data.to_dict() == _header(card), name
    assert data.license and data.pipeline_tag == "image-feature-extraction", name
    assert data.tags and all(isinstance(t, str) and t for t in data.tags), name
    assert data.datasets is None or set(data.datasets) <= set(DATASETS.values()), name
    for result in data.eval_results or []:
        assert result.dataset_type in DATASETS.values(), name
        assert isinstance(result.metric_value, float), name
    return data


@pytest.mark.parametrize("kind", KINDS)
def test_published_cards_state_no_placeholder(cards, kind) -> None:
    card = (cards[kind] / "README.md").read_text()
    _assert_states_no_placeholder(card, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_published_card_header_reads_back_with_the_hub_client(cards, kind) -> None:
    card = (cards[kind] / "README.md").read_text()
    data = _assert_header_reads_back(card, kind)
    ssl = json.loads((cards[kind] / "config.json").read_text())["ssl"]
    if kind in ("dino_backbone_only", "vit_backbone_only"):
        assert ssl["dataset"] is None and data.datasets is None  # the file does not say
    else:
        assert data.datasets == [DATASETS[ssl["dataset"]]]
    if kind == "siamhub_run":  # the summary's kNN and the transfer record, on Fashion-MNIST
        assert data.eval_results and len(data.eval_results) == 2
    if kind == "vit_backbone_only":
        assert data.library_name == "timm" and "vit_small_patch16_224" in data.tags


def test_a_file_that_does_not_record_its_data_is_described_without_it(cards) -> None:
    """Not "datasets: - null", not "its pretraining data (None)", and not ImageNet's biases
    claimed for a file that does not say it saw ImageNet."""
    for kind in ("dino_backbone_only", "vit_backbone_only"):
        card = (cards[kind] / "README.md").read_text()
        assert "datasets" not in _header(card), kind
        assert "on images like its pretraining data;" in card, kind
        assert "**Unrecorded pretraining data**" in card, kind
        assert "ImageNet" not in card, kind  # the preprocessing's numbers are only numbers
        assert "| pretraining data | not recorded |" in card, kind
    full = (cards["dino_full"] / "README.md").read_text()  # its args name the ImageNet path
    assert _header(full)["datasets"] == ["ILSVRC/imagenet-1k"]
    assert "on images like its pretraining data (ImageNet-1k);" in full
    assert "ImageNet-1k carries its own biases" in full
    assert "Unrecorded pretraining data" not in full


def test_zoo_release_cards_state_no_placeholder() -> None:
    from hub.zoo import AUTHORS

    for row in AUTHORS:
        with torch.device("meta"):  # shapes only: the card reads the config
            encoder = Encoder.from_spec(row.spec, ssl=row.ssl())
        card = model_card(encoder.config)
        _assert_states_no_placeholder(card, row.name)
        _assert_header_reads_back(card, row.name)


def test_no_dataset_key_is_unrecorded_not_imagenet() -> None:
    """A config.json whose ssl block has no ``dataset`` at all (written by hand, or by an older
    tool) is not taken for ImageNet either."""
    from hub.backbones import BackboneSpec

    with torch.device("meta"):
        encoder = Encoder.from_spec(BackboneSpec(name="resnet50"), ssl={"method": "byol"})
    card = model_card(encoder.config)
    _assert_states_no_placeholder(card, "no dataset key")
    assert "datasets" not in _assert_header_reads_back(card, "no dataset key").to_dict()
    assert "ImageNet" not in card and "**Unrecorded pretraining data**" in card
