"""Hostile files: checkpoints are loaded weights-only everywhere (a pickle that would run code is
refused before it runs), zoo downloads are checked against the row's SHA-256, the cache notices
a changed source file, and a failed download is one short error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from common.errors import UserError
from hub import zoo
from hub.backbones import BackboneSpec
from hub.importer import NotACheckpointError, UnsafeCheckpointError, import_checkpoint
from hub.zoo import ZooError
from tests.hub_servers import free_port


class _CreatesAFile:
    """What an attacker pickles: unpickling it calls ``open(marker, "w")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _release_state(seed: int) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A SimSiam-layout release of a ResNet-18 (stands in for the authors' ResNet-50)."""
    torch.manual_seed(seed)
    src = torchvision.models.resnet18()
    src.fc = nn.Identity()
    state = {f"module.encoder.{k}": v for k, v in src.state_dict().items()}
    state["module.encoder.fc.0.weight"] = torch.randn(16, 512)
    state["module.predictor.0.weight"] = torch.randn(8, 16)
    return src.eval(), state


def _save_release(path: Path, seed: int, **extra) -> nn.Module:
    src, state = _release_state(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 100, "state_dict": state, **extra}, path)
    return src


def _row(url: str, sha256: str | None = None) -> zoo.ZooModel:
    return dataclasses.replace(
        zoo.get("simsiam_resnet50"), url=url, spec=BackboneSpec(name="resnet18"), sha256=sha256
    )


def _same(encoder: nn.Module, src: nn.Module) -> bool:
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        return torch.equal(encoder(x), src(x))


# ------------------------------------------------------------------ weights-only everywhere


def test_importer_refuses_a_pickle_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "release.pth.tar"
    _save_release(path, seed=1, args=_CreatesAFile(marker))
    with pytest.raises(UnsafeCheckpointError) as err:
        import_checkpoint(path)
    assert not marker.exists()
    assert "weights_only=True" in str(err.value) and "nothing of it was run" in str(err.value)
    assert isinstance(err.value, UserError)


def test_run_directory_with_a_malicious_checkpoint_is_refused(tiny_fmnist, tmp_path) -> None:
    from pretrain.methods import build_method
    from tests.conftest import tiny_config
    from transfer.models import load_model

    marker = tmp_path / "pwned"
    cfg = tiny_config(tiny_fmnist)
    run = tmp_path / "runs" / "simsiam_resnet18_fmnist-20260101-000000"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = {"model": build_method(cfg).state_dict(), "config": cfg.to_dict(), "step": 4}
    torch.save({**ckpt, "rng": _CreatesAFile(marker)}, run / "checkpoints" / "last.pt")
    # transfer reads a run's encoder/ folder (safetensors + JSON), never its pickled checkpoint;
    # publish.py, which the message suggests, reads it weights-only (the test below)
    with pytest.raises(UserError, match="no encoder folder"):
        load_model(str(run))
    assert not marker.exists()


def test_publish_refuses_a_malicious_checkpoint(tiny_fmnist, tmp_path) -> None:
    from hub.publish import build_encoder
    from pretrain.methods import build_method
    from tests.conftest import tiny_config

    marker = tmp_path / "pwned"
    cfg = tiny_config(tiny_fmnist)
    ckpt = tmp_path / "last.pt"
    bad = {"model": build_method(cfg).state_dict(), "config": cfg.to_dict(), "step": 4}
    torch.save({**bad, "optimizer": _CreatesAFile(marker)}, ckpt)
    with pytest.raises(UnsafeCheckpointError):
        build_encoder(ckpt, "acme/tiny", tmp_path / "results")
    assert not marker.exists()


def test_garbage_is_not_a_checkpoint(tmp_path: Path) -> None:
    files = {"html": b"<html>404 Not Found</html>", "empty": b"", "junk": b"\x80\x02junk"}
    for name, data in files.items():
        path = tmp_path / f"{name}.pth.tar"
        path.write_bytes(data)
        with pytest.raises(NotACheckpointError, match="is not a PyTorch checkpoint"):
            import_checkpoint(path)


# ------------------------------------------------------------------ the zoo's downloads


def test_replaced_release_file_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    row = _row((tmp_path / "server" / "checkpoint_0099.pth.tar").as_uri())
    cache = tmp_path / "cache"
    placed = cache / "downloads" / "checkpoint_0099.pth.tar"
    _save_release(placed, seed=2, payload=_CreatesAFile(marker))
    with pytest.raises(ZooError) as err:
        zoo.load(row, cache=cache)
    assert not marker.exists()
    assert "download it again from " + row.url in str(err.value)
    assert not (cache / row.name).exists()


def test_garbage_in_downloads_names_the_file_and_the_url(tmp_path: Path) -> None:
    row = _row("https://example.invalid/checkpoint_0099.pth.tar")
    cache = tmp_path / "cache"
    placed = cache / "downloads" / "checkpoint_0099.pth.tar"
    placed.parent.mkdir(parents=True)
    placed.write_text("<html>Service Unavailable</html>\n" * 3)
    with pytest.raises(ZooError) as err:
        zoo.load(row, cache=cache)
    text = str(err.value)
    assert text.startswith(f"{placed} is not a PyTorch checkpoint (")
    assert text.endswith(f"delete it and download it again from {row.url}")
    assert "invalid literal" not in text and "\n" not in text


def test_download_is_verified_against_the_rows_sha256(tmp_path: Path) -> None:
    server = tmp_path / "server" / "checkpoint_0099.pth.tar"
    src = _save_release(server, seed=3)
    digest = zoo.sha256_of(server)
    cache = tmp_path / "cache"

    wrong = _row(server.as_uri(), sha256="0" * 64)
    with pytest.raises(ZooError, match="has SHA-256 .* expects 0000"):
        zoo.load(wrong, cache=cache)
    assert not (cache / wrong.name).exists()
    assert not list((cache / "downloads").iterdir())  # an unverified download is not kept

    right = _row(server.as_uri(), sha256=digest)
    assert _same(zoo.load(right, cache=cache), src)
    assert zoo.converted_from(cache / right.name) == {
        "url": right.url,
        "sha256": digest,
        "bytes": server.stat().st_size,
        "layout": "simsiam",
    }


def test_a_hand_placed_file_with_the_wrong_sha256_is_refused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    placed = cache / "downloads" / "checkpoint_0099.pth.tar"
    _save_release(placed, seed=4)
    row = _row("https://example.invalid/checkpoint_0099.pth.tar", sha256="f" * 64)
    with pytest.raises(ZooError, match=f"delete {placed} and download it again"):
        zoo.load(row, cache=cache)
    assert placed.exists()  # the user's file is the user's to delete


def test_cache_notices_a_changed_source_file(tmp_path: Path, capsys) -> None:
    server = tmp_path / "server" / "checkpoint_0099.pth.tar"
    first = _save_release(server, seed=5)
    row, cache = _row(server.as_uri()), tmp_path / "cache"
    assert _same(zoo.load(row, cache=cache), first)
    first_sha = zoo.converted_from(cache / row.name)["sha256"]

    placed = cache / "downloads" / server.name  # the same file again: the cache is kept
    placed.write_bytes(server.read_bytes())
    capsys.readouterr()
    assert _same(zoo.load(row, cache=cache), first)
    assert "converting it again" not in capsys.readouterr().out and not placed.exists()

    second = _save_release(placed, seed=6)  # another file: converted again, with a message
    assert _same(zoo.load(row, cache=cache), second)
    out = capsys.readouterr().out
    assert "is not the file the cache was converted from" in out and first_sha[:12] in out
    assert zoo.converted_from(cache / row.name)["sha256"] != first_sha
    assert _same(zoo.load(row, cache=cache), second)  # and that is now the cache


def test_cache_of_another_file_than_the_row_expects_is_replaced(tmp_path: Path, capsys) -> None:
    server = tmp_path / "server" / "checkpoint_0099.pth.tar"
    _save_release(server, seed=7)
    cache = tmp_path / "cache"
    zoo.load(_row(server.as_uri()), cache=cache)
    newer = _save_release(server, seed=8)  # the authors' file changed; the row says so
    row = _row(server.as_uri(), sha256=zoo.sha256_of(server))
    assert _same(zoo.load(row, cache=cache), newer)
    assert "the cache is stale" in capsys.readouterr().out


def test_failed_download_is_one_short_error_without_the_urllib_chain(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/checkpoint_0099.pth.tar"
    cache = tmp_path / "cache"
    with pytest.raises(ZooError) as err:
        zoo.load(_row(url), cache=cache)
    text = str(err.value)
    assert url in text and str(cache / "downloads" / "checkpoint_0099.pth.tar") in text
    assert "\n" not in text and len(text) < 600
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_sha256_survives_the_published_rows_json(tmp_path: Path) -> None:
    row = dataclasses.replace(zoo.AUTHORS[0], name="resnet50.test", entry="t", sha256="ab" * 32)
    zoo.record_published(row, [], path=tmp_path / "published.json")
    (back,) = zoo.published_models(tmp_path / "published.json")
    assert back.sha256 == "ab" * 32 and back == row


def test_publish_names_the_one_time_conversion_of_an_older_checkpoint(tiny_fmnist, tmp_path):
    """An older siamhub pickled the numpy RNG state; publish refuses it (weights-only) and its
    message carries the conversion, which makes the file publishable."""
    import random

    import numpy as np

    from hub.publish import PublishError, build_encoder
    from pretrain.methods import build_method
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_fmnist)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    rng = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    old = {"model": build_method(cfg).state_dict(), "config": cfg.to_dict(), "step": 4, "rng": rng}
    torch.save(old, ckpt)
    with pytest.raises(PublishError, match="numpy arrays") as err:
        build_encoder(tmp_path / "run", "acme/tiny", tmp_path / "results")
    convert = str(err.value).split('python -c "', 1)[1].removesuffix('"')
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        exec(convert, {})  # what the message tells the owner of the file to run
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])
    encoder, row = build_encoder(tmp_path / "run", "acme/tiny", tmp_path / "results")
    assert encoder.ssl["checkpoint_step"] == 4 and row.repo_id == "acme/tiny"


# ------------------------------------------------------------------ the refusal's one line


class _RunsAShellCommand:
    """The classic malicious pickle: unpickling it calls ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


@pytest.mark.parametrize("form", ["zip", "legacy"])
def test_every_entry_point_names_the_refused_global_in_one_line(form, tmp_path, capsys) -> None:
    """A pickle asking for ``os.system``, built with the installed torch (its zip format and
    the legacy one): the importer, ``hub/publish.py`` and ``hub/export.py`` each say in one
    line that it was refused, naming the global (torch words a blocked module, posix, unlike
    any other global), never torch's advice to retry with weights_only=False; nothing ran."""
    import os

    from common.cli import run_cli
    from hub import export, publish

    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pth"
    payload = {"state_dict": {}, "args": _RunsAShellCommand(f"touch {marker}")}
    torch.save(payload, path, _use_new_zipfile_serialization=form == "zip")
    refused = f"{os.system.__module__}.system"  # posix.system (nt.system on Windows)

    with pytest.raises(UnsafeCheckpointError) as err:
        import_checkpoint(path)
    assert err.value.refused == refused
    messages = [str(err.value)]
    for main in (
        lambda: publish.main([str(path), "--out", str(tmp_path / "out")]),
        lambda: export.main([str(path), str(tmp_path / "out.pkl")]),
    ):
        with pytest.raises(SystemExit) as exit_:
            run_cli(main)
        assert exit_.value.code == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: refused to load {path}"), lines
        messages.append(lines[0])
    for message in messages:
        assert f"its pickle asks for {refused}," in message and "nothing of it was run" in message
        assert "weights_only=False" not in message and "weights_only` set to `False" not in message
        assert "Re-running" not in message and "not a PyTorch checkpoint" not in message
    assert not marker.exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.pkl").exists()
