"""Servers for the hub tests, started on 127.0.0.1 and stopped by pid even when a test fails.

- ``olah`` (PyPI), a real Hub-compatible mirror server, in offline mode serving local git
  repositories (``<mirrors>/models/<org>/<name>``) through the Hub's HTTP API;
- ``tests/hub_recording_endpoint.py``, a loopback stand-in for the Hub's upload API that records
  the requests and commits what it receives into the folder olah serves.

``huggingface_hub`` reads ``HF_ENDPOINT`` once, at import; the tests therefore run the client
in subprocesses with the environment set (``client_env``), never in the pytest process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
GIT = ["git", "-c", "user.name=siamhub-tests", "-c", "user.email=tests@siamhub.invalid"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers HTTP: up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(
        f"server at {url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}"
    )


@contextmanager
def server(cmd: list[str], port: int, cwd: Path, name: str) -> Iterator[str]:
    """Run ``cmd`` until the block ends; stop it by its pid whatever happens."""
    log = cwd / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/", proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def require_git() -> None:
    if shutil.which("git") is None:
        raise RuntimeError("the hub tests need git (Debian: apt-get install git)")


@contextmanager
def olah_mirror(root: Path) -> Iterator[tuple[str, Path]]:
    """olah in offline mode serving ``root/mirrors``; yields (url, models folder)."""
    require_git()
    port = free_port()
    models = root / "mirrors" / "models"
    models.mkdir(parents=True, exist_ok=True)
    config = root / "olah.toml"
    config.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{root / "cache"}"\n'
        f'mirrors-path = ["{root / "mirrors"}"]\n'
        "[accessibility]\n"
        "offline = true\n"
    )
    cmd = [sys.executable, "-m", "olah.server", "-c", str(config), "--log-path", str(root / "logs")]
    with server(cmd, port, root, "olah") as url:
        yield url, models


@contextmanager
def recording_endpoint(root: Path, repos: Path) -> Iterator[tuple[str, Path]]:
    """The upload stand-in; yields (url, request log)."""
    port = free_port()
    log = root / "requests.jsonl"
    log.touch()
    script = TESTS / "hub_recording_endpoint.py"
    cmd = [
        sys.executable,
        str(script),
        "--port",
        str(port),
        "--repos",
        str(repos),
        "--log",
        str(log),
    ]
    with server(cmd, port, root, "recorder") as url:
        yield url, log


def commit_folder(repo: Path, folder: Path, message: str) -> str:
    """Copy ``folder``'s files into the git repo ``repo`` and commit; returns the commit sha."""
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        subprocess.run([*GIT, "-C", str(repo), "init", "-q", "-b", "main"], check=True)
    for f in folder.iterdir():
        shutil.copy(f, repo / f.name)
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "-m", message], check=True)
    out = subprocess.run(
        [*GIT, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip()


def client_env(endpoint: str, hf_home: Path, **extra: str) -> dict[str, str]:
    """Environment for a huggingface_hub client subprocess talking to ``endpoint`` only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def run_client(args: list[str], env: dict[str, str], timeout: float = 240) -> str:
    proc = subprocess.run(
        [sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout
