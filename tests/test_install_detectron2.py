"""The detectron2 install route (``transfer/detection/install_detectron2.py``): what keys the
wheel cache, that a cached wheel is reused instead of built, and ``make test``'s note when the
vendored source is absent. (The real build is what ``make test`` runs; its figures are in
BENCHMARKS.md.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from transfer.detection import install_detectron2 as inst

FACTS = {"torch": "2.14.1+cu130", "python": "cp311", "platform": "linux-x86_64", "ops": "cpu"}


def test_the_cache_key_is_source_torch_python_platform_and_ops(tmp_path: Path) -> None:
    archive = tmp_path / "detectron2-x.tar.gz"
    archive.write_bytes(b"source bytes")
    digest = hashlib.sha256(b"source bytes").hexdigest()[:16]
    assert inst.source_identity(str(archive)) == f"sha256-{digest}"
    pinned = f"git+https://github.com/facebookresearch/detectron2.git@{inst.TESTED_COMMIT}"
    assert inst.source_identity(pinned) == f"commit-{inst.TESTED_COMMIT[:16]}"
    key = inst.cache_key(f"sha256-{digest}", FACTS)
    assert key == f"detectron2-sha256-{digest}-torch2.14.1_cu130-cp311-linux-x86_64-cpu"
    for field, other in (("torch", "2.15.0"), ("python", "cp312"), ("ops", "cuda")):
        assert inst.cache_key(f"sha256-{digest}", {**FACTS, field: other}) != key
    archive.write_bytes(b"other source")  # another archive under the same name: another key
    assert inst.source_identity(str(archive)) != f"sha256-{digest}"


def test_the_default_cache_is_outside_the_clone(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SIAMHUB_WHEEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert inst.cache_root() == tmp_path / "xdg" / "siamhub" / "wheels"
    monkeypatch.setenv("SIAMHUB_WHEEL_CACHE", str(tmp_path / "w"))
    assert inst.cache_root() == tmp_path / "w"


def test_a_cached_wheel_is_installed_not_built(monkeypatch, tmp_path: Path) -> None:
    archive = tmp_path / "src.tar.gz"
    archive.write_bytes(b"x")
    folder = tmp_path / "cache" / inst.cache_key(inst.source_identity(str(archive)), FACTS)
    folder.mkdir(parents=True)
    wheel = folder / "detectron2-0.6-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"wheel")
    (folder / "build.json").write_text(json.dumps({"seconds": 190.0, "wheel": wheel.name}))
    installed = []
    monkeypatch.setattr(inst, "target_facts", lambda python, env: FACTS)
    monkeypatch.setattr(inst, "build_wheel", lambda *a: pytest.fail("built although cached"))
    monkeypatch.setattr(inst, "installed_from", lambda w: False)
    monkeypatch.setattr(inst, "pip_install", lambda w, python: installed.append(w))
    monkeypatch.setattr(inst, "check_import", lambda python: "0.6")
    done = inst.install(str(archive), cache=tmp_path / "cache")
    assert installed == [wheel]
    assert done["action"] == "reused the cached wheel, installed"
    assert done["build_seconds"] == 190.0


def test_an_absent_vendored_source_is_a_note_and_exit_0(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "vendor" / "detectron2-*.tar.gz"
    assert inst.main(["--if-present", "--source", str(missing)]) == 0
    out = capsys.readouterr().out
    assert "no source at" in out and "detectron2's tests will be skipped" in out
