"""``--model`` resolution: a path is never tried on the Hub, and a Hub id that cannot be fetched
fails at once with one line (no retry loop, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import UserError
from common.paths import closest_names, looks_like_path
from hub import encoder as hub_encoder
from tests.hub_servers import client_env, free_port
from transfer.models import ModelError, load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("value", "is_path"),
    [
        ("runs/short2", True),
        ("./encoder", True),
        ("../encoder", True),
        ("/abs/encoder", True),
        ("~/encoder", True),
        ("a/b/c", True),
        ("org/name/", True),
        ("last.pt", True),
        ("org/model.safetensors", True),
        ("org/name", False),
        ("timm/resnet50.a1_in1k", False),  # a dot, but no file extension
        ("encoder", False),
    ],
)
def test_what_looks_like_a_path(value: str, is_path: bool, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert looks_like_path(value) is is_path


def test_an_existing_parent_folder_makes_it_a_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not looks_like_path("exports/encoder")
    (tmp_path / "exports").mkdir()
    assert looks_like_path("exports/encoder")


def test_closest_names_look_at_the_first_missing_part(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("short", "short-3", "long"):
        (tmp_path / "runs" / name).mkdir(parents=True)
    assert Path("runs/short") in closest_names(Path("runs/short2"))
    assert Path("runs/long") not in closest_names(Path("runs/short2"))
    assert closest_names(Path("runz/short")) == [Path("runs")]
    assert closest_names(Path("runs/zzzzzz")) == []


def _no_hub(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a path was sent to the Hub")

    monkeypatch.setattr(hub_encoder.Encoder, "from_pretrained", refuse)
    monkeypatch.setattr("transfer.models.load_from_hub", refuse)


def test_a_mistyped_run_folder_is_never_tried_on_the_hub(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "short").mkdir(parents=True)
    _no_hub(monkeypatch)
    with pytest.raises(ModelError) as err:
        load_model("runs/short2")
    text = str(err.value)
    assert "no such file or folder: runs/short2" in text and "closest: runs/short" in text
    assert "\n" not in text
    with pytest.raises(ModelError, match="no such file or folder: ./enc"):
        load_model("./enc")
    with pytest.raises(ModelError, match="not a Hub repo id"):
        load_model("shrot")  # no slash: neither a folder here nor a repo id


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "transfer" / "run.py"), *args],
        cwd=cwd,
        env=client_env(f"http://127.0.0.1:{free_port()}", cwd / "hf", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Retrying" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_cli_typo_of_a_run_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "runs" / "short").mkdir(parents=True)
    line = _one_error_line(_cli(["--task", "knn", "--model", "runs/short2"], tmp_path))
    assert "runs/short2" in line and "closest: runs/short" in line


def test_cli_hub_id_offline_fails_at_once(tmp_path: Path) -> None:
    """HF_HUB_OFFLINE=1 and nothing cached: one line naming what was tried and the fix."""
    line = _one_error_line(
        _cli(["--task", "knn", "--model", "acme/encoder"], tmp_path, HF_HUB_OFFLINE="1")
    )
    assert "no folder acme/encoder here" in line and "HF_HUB_OFFLINE" in line
    assert "local encoder folder or run directory" in line


def test_cli_hub_id_with_the_hub_unreachable_fails_without_retrying(tmp_path: Path) -> None:
    """No offline flag, an endpoint where nothing listens: no backoff loop, one line."""
    line = _one_error_line(_cli(["--task", "knn", "--model", "acme/encoder"], tmp_path))
    assert "cannot be reached" in line and "HF_ENDPOINT" in line
    assert "not in the local Hugging Face cache" in line


def test_an_unreachable_hub_falls_back_to_the_cache(monkeypatch) -> None:
    calls = []

    def from_pretrained(repo_id, revision=None, **kwargs):
        calls.append(kwargs)
        return "cached encoder"

    monkeypatch.setattr(hub_encoder, "_hub_unreachable", lambda *a: "ConnectError: refused")
    monkeypatch.setattr(hub_encoder.Encoder, "from_pretrained", from_pretrained)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    assert hub_encoder.load_from_hub("acme/encoder") == "cached encoder"
    assert calls == [{"local_files_only": True}]


def test_model_errors_are_user_errors() -> None:
    assert issubclass(ModelError, UserError) and issubclass(ModelError, RuntimeError)
    assert issubclass(hub_encoder.HubUnavailable, hub_encoder.EncoderLoadError)


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("weights", "model.safetensors is not a readable safetensors file"),
        ("truncated", "model.safetensors is not a readable safetensors file"),
        ("config", "config.json is not valid JSON"),
    ],
)
def test_cli_damaged_encoder_folder_is_one_line(tmp_path: Path, damage: str, named: str) -> None:
    """A garbage or cut-off model.safetensors (or config.json) in an encoder folder: one
    `error:` line naming the file and how to write it again, never the parser's traceback."""
    from hub.backbones import BackboneSpec
    from hub.encoder import Encoder

    folder = tmp_path / "enc"
    spec = BackboneSpec(name="resnet18", in_chans=1, width=8, stem="small", stem_stride=2)
    Encoder.from_spec(spec, ssl={"method": "simsiam"}).save_pretrained(folder)
    weights = folder / "model.safetensors"
    if damage == "weights":
        weights.write_text("not a safetensors file\n")
    elif damage == "truncated":  # an interrupted copy: the header intact, the data cut short
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        (folder / "config.json").write_text('{"architecture": "resnet18",')
    with pytest.raises(hub_encoder.EncoderLoadError, match=named):
        load_model(str(folder))
    if damage != "weights":
        return  # the CLI's path is the same error (one process start is enough)
    line = _one_error_line(_cli(["--task", "knn", "--model", "enc"], tmp_path))
    assert line.startswith(f"error: enc/{named}")  # the path as the user gave it
    assert "write the folder again" in line
