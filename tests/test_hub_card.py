"""Model cards: the YAML header the Hub reads, one results row per metric with its protocol and
record, the trained length and provenance, limitations, BibTeX, and usage code that runs."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from hub.backbones import BackboneSpec
from hub.card import model_card
from hub.card_usage import BEFORE_PUSH, PLACEHOLDER
from hub.citations import PAPERS
from hub.encoder import Encoder, weights_sha256
from pretrain.methods import METHODS

REPO = Path(__file__).resolve().parents[1]
SMALL = BackboneSpec(name="resnet18", in_chans=1, width=8, stem="small", stem_stride=2)
KNN_PROTOCOL = {
    "dataset": "fashion_mnist",
    "data_root": "/somewhere/fashion-mnist",
    "eval_crop": "whole image, resized to 28 px",
    "bank": "fashion_mnist train (60000 images) from /somewhere/fashion-mnist",
    "queries": "fashion_mnist test (10000 images) from /somewhere/fashion-mnist",
    "similarity": "cosine",
    "ks": [20, 200],
    "t": 0.07,
}
DET_METRICS = {"box_AP": 17.7, "box_APl": None, "voc07_AP50": 38.0, "train_seconds": 97.9}


def _ssl(**extra: Any) -> dict[str, Any]:
    return {
        "name": "resnet18.simsiam_2ep_fmnist",
        "method": "simsiam",
        "dataset": "fashion_mnist",
        "epochs": 2.0,
        "batch_size": 64,
        "recipe_name": "simsiam_resnet18_fmnist",
        "git_sha": "0123456789abcdef0123456789abcdef01234567+dirty",
        **extra,
    }


def _front_matter(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _table_rows(card: str, header: str) -> list[list[str]]:
    """The cells of the table whose header row starts with ``header``."""
    lines = card.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def _code_block(card: str, heading: str) -> str:
    after = card.split(heading, 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_bibtex_entries_are_well_formed_and_cover_every_method() -> None:
    assert set(METHODS) <= set(PAPERS)
    keys = set()
    for method, paper in PAPERS.items():
        text = paper.bibtex()
        m = re.fullmatch(r"@(inproceedings|article)\{(\w+),\n(.*)\n\}", text, re.S)
        assert m, method
        assert m[1] == paper.kind and m[2] not in keys
        keys.add(m[2])
        fields = dict(re.findall(r"^  (\w+)\s*= \{(.*)\},?$", m[3], re.M))
        assert len(fields) == len(m[3].splitlines()), f"{method}: a line is not `name = {{v}}`"
        for value in fields.values():  # braces balance inside every value
            depth = 0
            for ch in value:
                depth += {"{": 1, "}": -1}.get(ch, 0)
                assert depth >= 0, method
            assert depth == 0, method
        venue = "booktitle" if paper.kind == "inproceedings" else "journal"
        assert {"title", "author", "year", venue} <= set(fields)
        assert fields["title"] == paper.title and re.fullmatch(r"20\d\d", fields["year"])
        assert all("," in a for a in fields["author"].split(" and ")), "Last, First names"
    facts = {  # method: (first author's surname, authors, venue, year, title start)
        "simsiam": ("Chen", 2, "CVPR", 2021, "Exploring Simple Siamese"),
        "byol": ("Grill", 14, "NeurIPS", 2020, "Bootstrap Your Own Latent"),
        "mocov3": ("Chen", 3, "ICCV", 2021, "An Empirical Study of Training Self-Supervised"),
        "dino": ("Caron", 7, "ICCV", 2021, "Emerging Properties in Self-Supervised"),
    }
    for method, (first, n, venue, year, title) in facts.items():
        paper = PAPERS[method]
        assert paper.authors[0].startswith(first + ",") and len(paper.authors) == n
        assert f"({venue})" in paper.venue and paper.year == year
        assert paper.title.startswith(title)
    assert PAPERS["mocov3"].authors[1:] == ("Xie, Saining", "He, Kaiming")


def test_results_rows_have_protocol_and_record_and_never_none() -> None:
    results = [
        {
            "task": "knn",
            "metrics": {"top1_k20": 82.4412, "top1_k200": 78.5, "raw_pixels_top1_k20": 80.1},
            "protocol": KNN_PROTOCOL,
            "source": "measured, knn/a.json",
            "record": "results/knn/a.json",
        },
        {
            "task": "linear",
            "metrics": {"top1": 82.1, "val_top1": 82.2, "best_lr": 0.3, "best_bn": True},
            "protocol": {"dataset": "fashion_mnist", "protocol": "fast", "grid": {"epochs": 10}},
            "source": "measured, linear/b.json",
            "record": "results/linear/b.json",
        },
        {"task": "fmnist_det", "metrics": DET_METRICS, "protocol": {}, "source": "measured"},
    ]
    card = model_card(Encoder.from_spec(SMALL, ssl=_ssl(results=results)).config)
    rows = _table_rows(card, "| task | metric |")
    assert card.count("| task | metric | value | raw pixels (same run) | protocol | record |") == 1
    assert [(r[0], r[1]) for r in rows] == [
        ("kNN", "top-1 (%), k=20"),
        ("kNN", "top-1 (%), k=200"),
        ("linear probe", "top-1 (%)"),
        ("detection (Fashion-MNIST scenes)", "box AP"),
        ("detection (Fashion-MNIST scenes)", "VOC07 AP50"),
    ]  # val_top1, best_lr / best_bn, train_seconds and the None box_APl are no rows; the
    # raw-pixels kNN stands beside the k=20 row it was measured with
    assert all(cell for row in rows for cell in row)
    assert rows[0][2] == "82.44" and rows[0][3] == "80.10"
    assert [r[3] for r in rows[1:]] == ["not measured"] * 4
    assert rows[0][4].startswith("kNN k=20 T=0.07 cosine, Fashion-MNIST test (10000 images)")
    assert "frozen backbone features" in rows[0][4] and "/somewhere" not in card
    assert "lr 0.3 with BN" in rows[2][4] and "fast protocol" in rows[2][4]
    assert rows[0][5] == "[a.json](results/knn/a.json)" and rows[2][5].endswith(
        "(results/linear/b.json)"
    )
    assert rows[3][5] == "measured"
    assert "None" not in card
    for header in ("| field | value |", "| task | metric |"):
        assert all(c for row in _table_rows(card, header) for c in row), header

    index = _front_matter(card)["model-index"][0]["results"]
    values = [m["value"] for r in index for m in r["metrics"]]
    assert values == [82.44, 78.5, 82.1]  # classification on a Hub dataset, no baseline
    assert "fine-tuning was evaluated only through the detection rows" in card


def test_details_length_provenance_and_limitations() -> None:
    trained = {"steps": 3, "epochs": 3 / 8, "stopped_early": True}
    card = model_card(Encoder.from_spec(SMALL, ssl=_ssl(trained=trained)).config)
    fields = dict(_table_rows(card, "| field | value |"))
    assert fields["trained length"] == (
        "trained 3 steps (0.38 ep), stopped early (the recipe's schedules span 2 epochs)"
    )
    assert fields["global batch"] == "64" and fields["recipe"] == "`simsiam_resnet18_fmnist`"
    assert fields["code"] == (  # no public repository yet (pyproject.toml): no link
        "siamhub commit `0123456789ab` (unpublished: the project's repository is not public "
        "yet) plus uncommitted changes"
    )
    assert "Chen & He, CVPR 2021" in fields["method"]
    assert "width 8" in fields["architecture"] and "small-image stem" in fields["architecture"]
    assert fields["source"] == "not recorded" and fields["weights license"] == "apache-2.0"
    assert "1-channel 28×28 px grayscale" in card and "not ImageNet features" in card
    assert "stopped after 3 steps (0.38 ep) of the 2 epochs" in card and "Unmeasured" in card
    assert "for 3 steps (0.38 ep) at global batch 64" in card
    assert "No transfer results are recorded" in card
    assert "@inproceedings{chen2021simsiam," in card

    complete = model_card(Encoder.from_spec(SMALL, ssl=_ssl()).config)
    assert dict(_table_rows(complete, "| field | value |"))["trained length"] == "2 ep"


def test_front_matter_names_timm_only_when_timm_alone_loads_it() -> None:
    small = _front_matter(model_card(Encoder.from_spec(SMALL, ssl=_ssl()).config))
    assert "library_name" not in small
    assert small["pipeline_tag"] == "image-feature-extraction"
    assert small["license"] == "apache-2.0"
    assert {"self-supervised", "simsiam", "resnet18"} <= set(small["tags"])
    assert "timm" not in small["tags"]
    assert small["datasets"] == ["zalando-datasets/fashion_mnist"]

    with torch.device("meta"):  # shapes only: the config is what the card reads
        vit = Encoder.from_spec(
            BackboneSpec(name="vit_small", num_heads=12, pos_embed="sincos"),
            ssl={"method": "dino", "dataset": "imagenet", "source": "https://example.org/x.pth"},
        )
    card = model_card(vit.config)
    meta = _front_matter(card)
    assert meta["library_name"] == "timm" and {"dino", "vit_small_patch16_224"} <= set(meta["tags"])
    assert meta["datasets"] == ["ILSVRC/imagenet-1k"]
    assert "@inproceedings{caron2021dino," in card
    assert "timm.create_model" in card
    # a converted release carries its authors' license
    simsiam = {"method": "simsiam", "source": "https://example.org/checkpoint_0099.pth.tar"}
    with torch.device("meta"):
        r50 = Encoder.from_spec(BackboneSpec(name="resnet50"), ssl=simsiam)
    assert _front_matter(model_card(r50.config))["license"] == "cc-by-nc-4.0"


def _tiny_run(path: Path) -> Path:
    from pretrain.config import load_config
    from pretrain.methods import build_method

    cfg = load_config(
        "simsiam_resnet18_fmnist",
        ["model.width=8", "method.proj_dim=16", "method.proj_hidden_dim=16",
         "method.pred_hidden_dim=8"],
    )  # fmt: skip
    ckpt = path / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    state = {"model": build_method(cfg).state_dict(), "config": cfg.to_dict()}
    torch.save({**state, "step": 3, "epoch": 0.1}, ckpt)
    return path


@pytest.mark.parametrize("timm_ok", [False, True])
def test_before_push_snippet_loads_the_published_folder(tmp_path: Path, timm_ok: bool) -> None:
    from hub import publish

    if timm_ok:  # a standard ResNet-18 folder: the timm line of the snippet runs too
        folder = tmp_path / "folder"
        Encoder.from_spec(BackboneSpec(name="resnet18"), ssl=_ssl()).save_pretrained(folder)
        card = model_card(json.loads((folder / "config.json").read_text()), folder=folder)
        assert (folder / "README.md").read_text().count(PLACEHOLDER) >= 1
    else:  # what publish.py writes: the run's record copied in, the card linking it
        run = _tiny_run(tmp_path / "run")
        results = tmp_path / "results"
        identity = weights_sha256(publish.build_encoder(run, None, results)[0])
        record = {"model": {"id": "run"}, "task": "knn", "metrics": {"top1_k20": 51.0}}
        record["pretrain"] = {"weights_sha256": identity}  # what transfer records carry
        (results / "knn").mkdir(parents=True)
        (results / "knn" / "r1.json").write_text(json.dumps({**record, "protocol": KNN_PROTOCOL}))
        folder = tmp_path / "out"
        publish.main([str(run), "--repo-id", "acme/tiny", "--out", str(folder),
                      "--results", str(results)])  # fmt: skip
        card = (folder / "README.md").read_text()
        assert (folder / "results" / "knn" / "r1.json").is_file()
        assert "[r1.json](results/knn/r1.json)" in card
        assert 'Encoder.from_pretrained("acme/tiny")' in card  # the after-push snippet
        assert "timm.create_model" not in card

    code = _code_block(card, BEFORE_PUSH)
    assert str(folder) in code
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert isinstance(scope["encoder"], Encoder)
    assert scope["features"].shape == (1, scope["encoder"].num_features)
    expected = Encoder.from_pretrained(folder)
    x = torch.randn(2, *expected.config["pretrained_cfg"]["input_size"])
    with torch.no_grad():
        assert torch.equal(scope["encoder"](x), expected(x))
        if timm_ok:
            assert torch.equal(scope["backbone"](x), expected(x))


def test_summary_and_reported_results_link_their_evidence() -> None:
    from hub.zoo import AUTHORS

    summary = {
        "task": "fashion_mnist knn",
        "metrics": {"top1": 71.234},
        "protocol": {"bank": "fashion_mnist train (60000)", "queries": "fashion_mnist test (10000)",
                     "features": "backbone, l2-normalized", "k": 20, "t": 0.1},
        "source": "measured, summary.json of the run",
        "record": "results/summary.json",
    }  # fmt: skip
    card = model_card(Encoder.from_spec(SMALL, ssl=_ssl(results=[summary])).config)
    (row,) = _table_rows(card, "| task | metric |")
    assert row == [
        "kNN (end of pretraining)",
        "top-1 (%)",
        "71.23",
        "kNN k=20 T=0.1 cosine, Fashion-MNIST test (10000 images) against a Fashion-MNIST train "
        "(60000 images) bank, frozen backbone features",
        "[summary.json](results/summary.json)",
    ]

    release = AUTHORS[0]  # the authors' SimSiam ResNet-50: a reported number, their license
    with torch.device("meta"):
        encoder = Encoder.from_spec(release.spec, ssl=release.ssl())
    card = model_card(encoder.config)
    (row,) = _table_rows(card, "| task | metric |")
    assert row[2] == "68.10" and "frozen pool5" in row[3]
    assert row[4] == (
        "[reported, SimSiam repository, batch 512](https://github.com/facebookresearch/simsiam)"
    )
    assert _front_matter(card)["license"] == "cc-by-nc-4.0"
    assert "model-index" not in _front_matter(card)  # its protocol names no dataset


# ---------------------------------------------------------------- the method's own recipe keys


class _Reads:
    """A config section that records which of its keys are read."""

    def __init__(self, section: Any) -> None:
        self._section, self.read = section, set()

    def __getattr__(self, key: str) -> Any:
        self.read.add(key)
        return getattr(self._section, key)


def _method_keys(cfg: Any) -> set[str]:
    """The ``method.*`` keys pretraining reads for ``cfg``'s method (the method's build, its
    views, the Trainer's EMA update), less the other methods' switches it reads only to
    insist on their defaults (a change of them is refused)."""
    from types import SimpleNamespace

    from pretrain.config import ConfigError, MethodConfig
    from pretrain.data import pretrain_dataset
    from pretrain.methods import build_method
    from pretrain.train import Trainer

    spy = _Reads(cfg.method)
    probe = dataclasses.replace(cfg, method=spy)
    model = build_method(probe)
    pretrain_dataset(probe)
    Trainer.momentum(SimpleNamespace(model=model, cfg=probe, step=0, schedule_steps=10))
    defaults = MethodConfig()
    keys = set(spy.read)
    for key in spy.read:
        value = getattr(cfg.method, key)
        if value != getattr(defaults, key) or not isinstance(value, int):
            continue
        changed = (not value) if isinstance(value, bool) else value + 1
        try:
            build_method(dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, **{
                key: changed})))  # fmt: skip
        except ConfigError:
            keys.discard(key)  # another method's switch, held at its default
    return keys


def test_method_keys_are_the_keys_each_method_reads(tiny_fmnist, tiny_imagefolder) -> None:
    from hub.method_keys import METHOD_KEYS
    from pretrain.config import MethodConfig, load_config
    from pretrain.methods import METHODS

    derived: dict[str, set[str]] = {}
    for path in sorted((REPO / "pretrain" / "recipes").glob("*.toml")):
        cfg = load_config(path.stem)
        root = tiny_fmnist if cfg.data.dataset == "fashion_mnist" else tiny_imagefolder / "train"
        small = ["model.width=8"] if cfg.model.name.startswith("resnet") else ["model.depth=1"]
        small += [f"method.{k}=16" for k in ("proj_dim", "proj_hidden_dim", "pred_hidden_dim")]
        small += ["method.out_dim=32"]  # small networks: what is read does not depend on size
        cfg = load_config(path.stem, [f"data.root={root}", "data.num_workers=0", *small])
        derived.setdefault(cfg.method.name, set()).update(_method_keys(cfg))
    assert set(derived) == set(METHODS) == set(METHOD_KEYS)
    assert {m: set(k) for m, k in METHOD_KEYS.items()} == derived
    fields = {f.name for f in dataclasses.fields(MethodConfig)}
    assert set().union(*METHOD_KEYS.values()) == fields  # every key is some method's


def test_full_recipe_lists_only_the_methods_own_keys() -> None:
    from pretrain.config import load_config

    def recipe_keys(recipe: str) -> set[str]:
        cfg = load_config(recipe)
        ssl = _ssl(method=cfg.method.name, recipe=cfg.to_dict())
        card = model_card(Encoder.from_spec(SMALL, ssl=ssl).config)
        return {row[0].strip("`") for row in _table_rows(card, "| key | value |")}

    simsiam = recipe_keys("simsiam_resnet18_fmnist")
    assert {"method.proj_dim", "method.stop_grad", "optim.base_lr", "model.width"} <= simsiam
    for key in ("teacher_temp", "momentum_base", "out_dim", "temperature", "center_momentum"):
        assert f"method.{key}" not in simsiam, key
    dino = recipe_keys("dino_resnet18_fmnist")
    assert {"method.teacher_temp", "method.out_dim", "method.momentum_base"} <= dino
    assert not {"method.stop_grad", "method.predictor", "method.pred_hidden_dim"} & dino
    byol = recipe_keys("byol_resnet18_fmnist")
    assert {"method.momentum_base", "method.proj_layers"} <= byol
    assert "method.mirror" not in byol and "method.temperature" not in byol


# ---------------------------------------------------------------- repository and commit links


def _git(repo: Path, *args: str) -> str:
    import subprocess

    from tests.hub_servers import GIT

    done = subprocess.run([*GIT, "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_repository_url_is_pyprojects_and_a_commit_links_only_once_published(
    tmp_path: Path,
) -> None:
    import tomllib

    from hub import card_links

    with (REPO / "pyproject.toml").open("rb") as f:
        urls = tomllib.load(f)["project"].get("urls", {})
    assert card_links.repository_url() == urls.get("Repository")  # the one source

    repo = tmp_path / "checkout"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text('[project]\nname = "siamhub"\n')
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    sha = _git(repo, "rev-parse", "HEAD")
    assert card_links.repository_url(repo) is None
    assert card_links.commit_text(sha, repo) == (
        f"siamhub commit `{sha[:12]}` (unpublished: the project's repository is not public yet)"
    )

    url = "https://github.com/acme/siamhub"
    (repo / "pyproject.toml").write_text(
        f'[project]\nname = "siamhub"\n[project.urls]\nRepository = "{url}.git"\n'
    )
    _git(repo, "commit", "-q", "-am", "urls")
    head = _git(repo, "rev-parse", "HEAD")
    _git(repo, "remote", "add", "origin", "git@github.com:acme/siamhub.git")
    _git(repo, "remote", "add", "fork", "https://github.com/someone/siamhub")
    _git(repo, "update-ref", "refs/remotes/fork/main", head)  # on a fork only: not published
    assert card_links.repository_url(repo) == url
    assert card_links.commit_text(head, repo) == (
        f"siamhub commit `{head[:12]}` (unpublished: on no branch of {url})"
    )
    _git(repo, "update-ref", "refs/remotes/origin/dev", sha)  # as `git fetch` leaves it
    assert card_links.published_branch(sha, url, repo) == "dev"
    assert card_links.commit_text(f"{sha}+dirty", repo) == (
        f"siamhub [`{sha[:12]}`]({url}/commit/{sha}) plus uncommitted changes"
    )
    assert card_links.published_branch(head, url, repo) is None
    _git(repo, "update-ref", "refs/remotes/origin/main", head)
    assert card_links.published_branch(sha, url, repo) == "main"  # main before other branches
    assert card_links.commit_text("f" * 40, repo).startswith("siamhub commit `ffffffffffff`")
