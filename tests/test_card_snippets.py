"""Every code block a model card shows runs, and loads exactly the card's encoder.

Three cards: a published run (small-stem ResNet, no timm), a timm-loadable ViT with a repo id
(timm local-dir and hf-hub lines), and an authors' release converted by the zoo (timm,
torch.hub, detectron2 export). The blocks are taken from the generated README.md and run
unchanged in a subprocess: Hub downloads come from the olah mirror on 127.0.0.1
(``tests/hub_servers.py``), torch.hub finds this checkout as its cached copy of the card's
GitHub branch, the zoo finds its converted release in ``SIAMHUB_CACHE``. Nothing downloads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from hub import card_links, publish, zoo
from hub.backbones import BackboneSpec, create_backbone
from hub.card import model_card
from hub.card_usage import TORCH_HUB
from hub.encoder import Encoder
from tests.card_snippet_runner import code_blocks
from tests.hub_servers import REPO, client_env, commit_folder, olah_mirror, run_client
from tests.test_hub_server import _tiny_run_checkpoint

GITHUB = "https://github.com/acme/siamhub"  # the repository URL the cards are given here


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    with olah_mirror(tmp_path_factory.mktemp("olah")) as served:
        yield served


def _run_blocks(card: Path, reference: Path, tmp_path: Path, url: str, **env: str) -> dict:
    """Run the card's blocks in a client process; returns {"outputs", "ran"}."""
    out = tmp_path / "snippets" / "outputs.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    runner = str(REPO / "tests" / "card_snippet_runner.py")
    run_client(
        [runner, str(card), str(reference), str(out)], client_env(url, tmp_path / "hf", **env)
    )
    return torch.load(out)


def _all_equal_reference(result: dict) -> list[str]:
    outputs = dict(result["outputs"])
    reference = outputs.pop("reference")
    assert outputs, "no block left a model"
    for name, value in outputs.items():
        assert torch.equal(value, reference), name
    return sorted(outputs)


def test_published_run_card_blocks_run(mirror, tmp_path: Path) -> None:
    url, models = mirror
    run = _tiny_run_checkpoint(tmp_path / "run", seed=5)
    folder = tmp_path / "folder"
    publish.main([str(run), "--repo-id", "acme/tiny-card", "--out", str(folder),
                  "--results", str(tmp_path / "none")])  # fmt: skip
    commit_folder(models / "acme" / "tiny-card", folder, "publish")
    card = (folder / "README.md").read_text()
    assert [lang for lang, _ in code_blocks(card)] == ["python", "python"]  # before / after push
    assert "timm.create_model" not in card and "torch.hub" not in card  # small stem, no entry
    assert "git clone" not in card  # pyproject.toml names no public repository (yet)
    result = _run_blocks(folder / "README.md", folder, tmp_path, url)
    assert _all_equal_reference(result) == ["0:encoder", "1:encoder"]


def test_timm_loadable_card_blocks_run(mirror, tmp_path: Path) -> None:
    url, models = mirror
    spec = BackboneSpec(name="vit_tiny", img_size=32, patch_size=8, depth=2, pos_embed="sincos")
    torch.manual_seed(6)
    encoder = Encoder.from_spec(spec, ssl={"method": "mocov3"}, backbone=create_backbone(spec))
    folder = tmp_path / "vit"
    encoder.save_pretrained(folder)
    card = model_card(encoder.config, repo_id="acme/vit-card", folder=folder)
    (folder / "README.md").write_text(card)  # as publish.py writes it: the folder's own path
    commit_folder(models / "acme" / "vit-card", folder, "publish")
    result = _run_blocks(folder / "README.md", folder, tmp_path, url)
    assert _all_equal_reference(result) == [
        "0:backbone",  # timm.create_model("local-dir:<folder>")
        "0:encoder",
        "1:backbone",  # timm.create_model("hf-hub:acme/vit-card")
        "1:encoder",
    ]


def test_release_card_blocks_run_torch_hub_and_export(tmp_path: Path, monkeypatch) -> None:
    """An authors' SimSiam ResNet-50 (its layout, random weights) converted by the zoo: with
    a public GitHub repository whose branch holds this code, the card names the torch.hub
    entry, and the entry, timm and the detectron2 export run."""
    torch.manual_seed(8)
    src = torchvision.models.resnet50()
    src.fc = nn.Identity()
    state = {f"module.encoder.{k}": v for k, v in src.state_dict().items()}
    state["module.encoder.fc.0.weight"] = torch.randn(16, 2048)
    cache = tmp_path / "cache"
    row = zoo.get("simsiam_resnet50")
    placed = cache / "downloads" / Path(row.url).name
    placed.parent.mkdir(parents=True)
    torch.save({"epoch": 100, "state_dict": state}, placed)
    monkeypatch.setattr(card_links, "repository_url", lambda root=None: GITHUB)
    monkeypatch.setattr(card_links, "published_branch", lambda sha, url, root=None: "main")
    zoo.load(row, cache=cache)
    folder = cache / row.name
    card = (folder / "README.md").read_text()
    assert f"git clone {GITHUB} && pip install -e siamhub" in card
    assert f'torch.hub.load("acme/siamhub:main", "{row.entry}", pretrained=True)' in card
    (folder / "README.md").write_text(card.replace("path/to/this/folder", str(folder)))

    torch_home = tmp_path / "torch"
    (torch_home / "hub").mkdir(parents=True)
    (torch_home / "hub" / "acme_siamhub_main").symlink_to(REPO)  # torch.hub's cached branch
    result = _run_blocks(
        folder / "README.md", folder, tmp_path, "http://127.0.0.1:9",
        TORCH_HOME=str(torch_home), SIAMHUB_CACHE=str(cache),
    )  # fmt: skip
    assert _all_equal_reference(result) == ["0:backbone", "0:encoder", "1:model"]
    assert result["ran"] == ["0:python", "1:python", "2:bash"]
    assert (tmp_path / "snippets" / "encoder_d2.pkl").stat().st_size > 90e6  # R50's weights


def test_no_torch_hub_snippet_without_an_entry_for_these_weights(monkeypatch) -> None:
    """A published row's entry loads the revision it pins, not the weights the card is
    written with; an entry that hubconf does not export is never named."""
    monkeypatch.setattr(card_links, "repository_url", lambda root=None: GITHUB)
    monkeypatch.setattr(card_links, "published_branch", lambda sha, url, root=None: "main")
    row = zoo.get("simsiam_resnet50")
    with torch.device("meta"):
        release = Encoder.from_spec(row.spec, ssl=row.ssl())
        published = Encoder.from_spec(row.spec, ssl={**row.ssl(), "source": "trained with x"})
        missing = Encoder.from_spec(row.spec, ssl={**row.ssl(), "hub_entry": "no_such_entry"})
    assert TORCH_HUB in model_card(release.config)
    assert TORCH_HUB not in model_card(published.config)
    assert TORCH_HUB not in model_card(missing.config)
    import hubconf

    assert callable(getattr(hubconf, row.entry))  # what the release card names, exported
    monkeypatch.setattr(card_links, "published_branch", lambda sha, url, root=None: None)
    assert TORCH_HUB not in model_card(release.config)  # this code is on no public branch
    monkeypatch.setattr(card_links, "repository_url", lambda root=None: None)
    assert TORCH_HUB not in model_card(release.config)  # no public repository
