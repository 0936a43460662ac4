"""The download and upload paths through the real huggingface_hub client and real HTTP servers.

Downloads go through olah, a real Hub-compatible mirror server (PyPI ``olah``), in offline mode
serving local git repositories on 127.0.0.1. Uploads go to ``tests/hub_recording_endpoint.py``,
a loopback stand-in for the Hub's upload API (not the Hub's server) that records every request
and commits the received files into the repositories olah serves, so what was pushed is then
downloaded and loaded through the mirror. ``test_real_hub_round_trip`` runs against the real
Hub only when ``HF_TOKEN`` is set.

The client runs in subprocesses because huggingface_hub reads ``HF_ENDPOINT`` at import.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from hub.backbones import BackboneSpec, create_backbone
from hub.encoder import Encoder
from hub.zoo import ZooModel, record_published
from tests.hub_servers import (
    client_env,
    commit_folder,
    free_port,
    olah_mirror,
    recording_endpoint,
    run_client,
)

VIT = BackboneSpec(name="vit_tiny", img_size=32, pos_embed="sincos", num_heads=3)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    with olah_mirror(tmp_path_factory.mktemp("olah")) as served:
        yield served


def _encoder(seed: int, spec: BackboneSpec = VIT) -> Encoder:
    torch.manual_seed(seed)
    return Encoder.from_spec(spec, ssl={"method": "mocov3"}, backbone=create_backbone(spec)).eval()


def _outputs(encoder: Encoder, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return encoder(x)


def test_download_three_ways_then_offline_from_cache(mirror, tmp_path: Path) -> None:
    url, models = mirror
    encoder = _encoder(seed=11)
    folder = tmp_path / "folder"
    encoder.save_pretrained(folder)
    revision = commit_folder(models / "acme" / "vit-tiny-mocov3", folder, "publish")
    repo_id = "acme/vit-tiny-mocov3"
    published = tmp_path / "published.json"
    row = ZooModel(
        name="vit_tiny.mocov3_test",
        entry="mocov3_vit_tiny_test",
        spec=VIT,
        method="mocov3",
        epochs=1,
        batch_size=8,
        repo_id=repo_id,
        revision=revision,
    )
    record_published(row, [revision], path=published)
    hf_home = tmp_path / "hf"
    args = ["tests/hub_client_load.py", repo_id, "--entry", row.entry, "--reference", str(folder)]

    env = client_env(url, hf_home, SIAMHUB_PUBLISHED=str(published))
    run_client([*args[:2], str(tmp_path / "online.pt"), *args[2:]], env)
    online = torch.load(tmp_path / "online.pt")
    # The published folder's outputs in the client process (same threads: bitwise comparable),
    # and, across processes, the outputs of the encoder that was published.
    expected = online["reference"]
    torch.testing.assert_close(expected, _outputs(encoder, online["x"]), rtol=1e-5, atol=1e-5)
    for way in ("from_pretrained", "timm", "torch_hub"):
        assert torch.equal(online[way], expected), way
    assert (hf_home / "hub" / "models--acme--vit-tiny-mocov3" / "snapshots" / revision).is_dir()

    # Offline, and the endpoint now points at a port where nothing listens: only the cache.
    dead = f"http://127.0.0.1:{free_port()}"
    env = client_env(dead, hf_home, HF_HUB_OFFLINE="1", SIAMHUB_PUBLISHED=str(published))
    run_client([*args[:2], str(tmp_path / "offline.pt"), *args[2:]], env)
    offline = torch.load(tmp_path / "offline.pt")
    for way in ("from_pretrained", "timm", "torch_hub"):
        assert torch.equal(offline[way], expected), way


def _tiny_run_checkpoint(path: Path, seed: int) -> Path:
    from pretrain.config import load_config
    from pretrain.methods import build_method

    cfg = load_config(
        "simsiam_resnet18_fmnist",
        [
            "model.width=8",
            "method.proj_dim=16",
            "method.proj_hidden_dim=16",
            "method.pred_hidden_dim=8",
        ],
    )
    torch.manual_seed(seed)
    model = build_method(cfg)
    path.mkdir(parents=True, exist_ok=True)
    ckpt = path / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(exist_ok=True)
    torch.save(
        {"model": model.state_dict(), "config": cfg.to_dict(), "step": 3, "epoch": 0.1}, ckpt
    )
    return path


def _requests(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_publish_push_records_the_commit_then_mirror_serves_it(mirror, tmp_path: Path) -> None:
    url, models = mirror
    repo_id = "acme/simsiam-fmnist"
    published = tmp_path / "published.json"
    with recording_endpoint(tmp_path, models) as (rec_url, log):
        env = client_env(rec_url, tmp_path / "hf-up", HF_TOKEN="hf_test_token_0000")
        env["SIAMHUB_PUBLISHED"] = str(published)

        # Dry run: lists the files, sends nothing.
        run_dir = _tiny_run_checkpoint(tmp_path / "run1", seed=1)
        out1 = tmp_path / "repo1"
        cli = ["hub/publish.py", str(run_dir), "--repo-id", repo_id, "--push"]
        printed = run_client([*cli, "--out", str(out1), "--dry-run"], env)
        assert "dry run" in printed and "model.safetensors" in printed
        assert _requests(log) == [] and not published.exists()

        run_client([*cli, "--out", str(out1)], env)
        run_dir2 = _tiny_run_checkpoint(tmp_path / "run2", seed=2)
        out2 = tmp_path / "repo2"
        run_client(
            ["hub/publish.py", str(run_dir2), "--repo-id", repo_id, "--push", "--out", str(out2)],
            env,
        )

    requests = _requests(log)
    paths = [r["path"].split("?")[0] for r in requests]
    one_push = [
        "/api/repos/create",
        "/api/validate-yaml",  # the client checks the card's YAML header before committing
        "/api/models/acme/simsiam-fmnist/preupload/main",
        "/api/models/acme/simsiam-fmnist/commit/main",
    ]
    # The client validates the card twice per push (upload_folder, then create_commit).
    distinct = [p for i, p in enumerate(paths) if i == 0 or p != paths[i - 1]]
    assert distinct == one_push * 2  # nothing else: no request the stand-in does not implement
    assert (
        requests[0]["json"]["name"] == "simsiam-fmnist" and requests[0]["json"]["type"] == "model"
    )
    header = requests[1]["json"]["content"]  # a small-stem ResNet: timm alone cannot load it
    assert "pipeline_tag: image-feature-extraction" in header
    assert "library_name" not in header
    assert all(r["authorized"] for r in requests)
    commits = [r["commit"] for r in requests if "commit" in r]
    assert len(commits) == 2
    for commit, folder in zip(commits, (out1, out2), strict=True):
        local = {p.name: {"sha256": _sha(p), "size": p.stat().st_size} for p in folder.iterdir()}
        assert commit["files"] == local  # exactly the folder's files, same bytes
        assert set(local) == {"model.safetensors", "config.json", "README.md"}

    # The zoo recorded both revisions, the latest pinned.
    rows = json.loads(published.read_text())
    assert len(rows) == 1 and rows[0]["repo_id"] == repo_id
    assert rows[0]["revisions"] == [commits[0]["oid"], commits[1]["oid"]]
    assert rows[0]["revision"] == commits[1]["oid"]

    # Both revisions are served by the mirror and load to the published weights.
    for i, (commit, folder) in enumerate(zip(commits, (out1, out2), strict=True)):
        out = tmp_path / f"loaded{i}.pt"
        env = client_env(url, tmp_path / "hf-down")
        run_client(
            [
                "tests/hub_client_load.py",
                repo_id,
                str(out),
                "--revision",
                commit["oid"],
                "--size",
                "28",
                "--channels",
                "1",
                "--no-timm",
            ],
            env,
        )
        loaded = torch.load(out)
        expected = _outputs(Encoder.from_pretrained(folder), loaded["x"])
        assert torch.equal(loaded["from_pretrained"], expected)
    first, second = (Encoder.from_pretrained(f) for f in (out1, out2))
    assert not torch.equal(first.backbone.conv1.weight, second.backbone.conv1.weight)
    config = json.loads((out2 / "config.json").read_text())
    assert config["ssl"]["recipe_name"] == "simsiam_resnet18_fmnist"
    assert config["ssl"]["recipe"]["model"]["width"] == 8
    assert config["ssl"]["batch_size"] == 256 and config["ssl"]["dataset"] == "fashion_mnist"


@pytest.mark.skipif(
    not os.environ.get("HF_TOKEN"), reason="opt-in: set HF_TOKEN to push to the real Hub"
)
def test_real_hub_round_trip(tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    from hub.publish import push

    api = HfApi()
    repo_id = f"{api.whoami()['name']}/siamhub-test-{uuid.uuid4().hex[:8]}"
    encoder = _encoder(seed=3)
    encoder.save_pretrained(tmp_path / "folder")
    try:
        api.create_repo(repo_id, private=True)
        revision = push(tmp_path / "folder", repo_id, "siamhub test push", private=True)
        loaded = Encoder.from_pretrained(repo_id, revision=revision, cache_dir=tmp_path / "cache")
        x = torch.randn(2, 3, 32, 32)
        assert torch.equal(_outputs(loaded, x), _outputs(encoder, x))
    finally:
        api.delete_repo(repo_id, missing_ok=True)


def test_row_round_trips_through_json(tmp_path: Path) -> None:
    row = ZooModel("vit_tiny.x", "x", VIT, "mocov3", 1, 8, repo_id="a/b", revision="0" * 40)
    path = record_published(row, ["0" * 40], path=tmp_path / "p.json")
    from hub.zoo import published_models

    (loaded,) = published_models(path)
    assert dataclasses.asdict(loaded) == dataclasses.asdict(row)
