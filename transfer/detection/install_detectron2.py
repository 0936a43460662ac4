"""Build detectron2 from a source you name, once per machine, and install it into this Python.

``python -m transfer.detection.install_detectron2 [--source SRC] [--if-present]``

detectron2 publishes no wheels and no official PyPI package (the forks there are broken:
sources missing, or one wheel for another Python); upstream's own route is a build from source
after torch: ``pip install --no-build-isolation <source>``. This does that build as
``pip wheel`` (``FORCE_CUDA=0 MAX_JOBS=2`` unless set, ``--no-build-isolation``: the torch
of this environment, unchanged) and keeps the wheel in a cache outside any clone,
``$SIAMHUB_WHEEL_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/siamhub/wheels/``, in a folder keyed by

- the source's identity: an archive's SHA-256, a git URL's pinned commit, a git checkout's
  commit (a checkout with uncommitted changes: the SHA-256 of its files);
- the torch version, the Python tag and the platform;
- ``cpu`` or ``cuda``: whether the build compiles the CUDA ops (detectron2's setup.py does
  when torch sees a GPU and a CUDA toolkit, or ``FORCE_CUDA=1``).

A machine therefore builds a given source once (about 3 CPU-minutes); a fresh virtual
environment installs the cached wheel (and detectron2's dependencies, through pip) in seconds,
and an environment that already has that very wheel installed is left alone. Concurrent runs
wait on one lock; a build is moved into the cache only once it is whole.

``SRC`` is a git URL (``git+https://...@<ref>``), a source archive (``.tar.gz`` / ``.zip``) or
a source folder; default ``$SIAMHUB_DETECTRON2_SOURCE``, else upstream's repository at the
commit siamhub is tested with. ``--if-present`` (what ``make test`` uses with the vendored
archive): a local source that does not exist is a one-line note, exit 0, and detectron2's
tests skip.

This file imports only the standard library (torch is asked through the target interpreter),
so it runs before anything else works.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

UPSTREAM = "https://github.com/facebookresearch/detectron2.git"
# the commit siamhub's detectron2 engine is tested with (version string 0.6)
TESTED_COMMIT = "02b5c4e295e990042a714712c21dc79b731e8833"
DEFAULT_SOURCE = f"git+{UPSTREAM}@{TESTED_COMMIT}"
ARCHIVES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
_SKIP_PARTS = {".git", "build", "__pycache__", ".eggs", "dist"}


class InstallError(RuntimeError):
    """A source that cannot be built or installed (the message says why and what to do)."""


def cache_root() -> Path:
    """``$SIAMHUB_WHEEL_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/siamhub/wheels``."""
    if os.environ.get("SIAMHUB_WHEEL_CACHE"):
        return Path(os.environ["SIAMHUB_WHEEL_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "siamhub" / "wheels"


def is_git_url(source: str) -> bool:
    return source.startswith("git+")


def local_path(source: str) -> Path | None:
    """The local file or folder ``source`` names (a plain path or ``file://``), else None."""
    if is_git_url(source):
        return None
    parsed = urlparse(source)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("", None) or len(parsed.scheme) == 1:  # a path (or a drive letter)
        return Path(source).expanduser()
    return None


def _sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _sha256_tree(root: Path) -> str:
    """SHA-256 over the relative paths and contents of a source folder's files (build output,
    caches and .git left out)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if _SKIP_PARTS & set(rel.parts) or path.suffix in (".so", ".pyc", ".o"):
            continue
        h.update(str(rel).encode() + b"\0")
        h.update(_sha256_file(path).encode())
    return h.hexdigest()


def _git(*args: str, cwd: Path | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def source_identity(source: str) -> str | None:
    """What identifies the source's content: ``sha256-<hex>``, ``commit-<hex>``; None when
    it cannot be pinned (a git branch that cannot be resolved): then nothing is cached."""
    if is_git_url(source):
        url, _, ref = source[4:].partition("@")
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            return f"commit-{ref[:16]}"
        try:
            line = _git("ls-remote", url, ref or "HEAD").splitlines()
        except (OSError, subprocess.CalledProcessError):
            return None
        return f"commit-{line[0].split()[0][:16]}" if line else None
    path = local_path(source)
    if path is None:
        raise InstallError(f"{source}: not a git URL (git+https://...), an archive or a folder")
    if path.is_file():
        return f"sha256-{_sha256_file(path)[:16]}"
    if path.is_dir():
        try:
            if not _git("status", "--porcelain", cwd=path):
                return f"commit-{_git('rev-parse', 'HEAD', cwd=path)[:16]}"
        except (OSError, subprocess.CalledProcessError):
            pass  # not a git checkout
        return f"sha256-{_sha256_tree(path)[:16]}"
    raise InstallError(f"{source}: no such file or folder")


def build_environment() -> dict[str, str]:
    """The build's environment: ``FORCE_CUDA=0`` and ``MAX_JOBS=2`` unless already set."""
    env = dict(os.environ)
    env.setdefault("FORCE_CUDA", "0")
    env.setdefault("MAX_JOBS", "2")
    return env


def target_facts(python: str, env: dict[str, str]) -> dict[str, str]:
    """torch's version, the Python tag, the platform and the ops flavour (cpu / cuda) of the
    interpreter the wheel is built for, asked from that interpreter."""
    probe = (
        "import json, os, sys, sysconfig, torch\n"
        "from torch.utils.cpp_extension import CUDA_HOME\n"
        "rocm = getattr(torch.version, 'hip', None) is not None\n"
        "cuda = (torch.cuda.is_available() and (CUDA_HOME is not None or rocm)) "
        "or os.environ.get('FORCE_CUDA', '0') == '1'\n"
        "print(json.dumps({'torch': torch.__version__, "
        "'python': f'cp{sys.version_info[0]}{sys.version_info[1]}', "
        "'platform': sysconfig.get_platform(), 'ops': 'cuda' if cuda else 'cpu'}))\n"
    )
    try:
        out = subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, check=True, env=env
        )
    except subprocess.CalledProcessError as e:
        raise InstallError(
            f"torch is not importable in {python} ({e.stderr.strip().splitlines()[-1:]}): "
            "detectron2 builds against the installed torch; install the project first"
        ) from e
    return json.loads(out.stdout.strip().splitlines()[-1])


def cache_key(identity: str, facts: dict[str, str]) -> str:
    """The cache folder's name: source identity + torch + Python tag + platform + ops."""
    raw = f"detectron2-{identity}-torch{facts['torch']}-{facts['python']}-{facts['platform']}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{raw}-{facts['ops']}")


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """One build at a time per cache (other installers wait here)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_wheel(folder: Path) -> Path | None:
    wheels = sorted(folder.glob("detectron2-*.whl")) if folder.is_dir() else []
    return wheels[0] if len(wheels) == 1 and (folder / "build.json").is_file() else None


def build_wheel(source: str, folder: Path, python: str, env: dict[str, str]) -> Path:
    """``pip wheel --no-build-isolation --no-deps`` into a temporary folder beside ``folder``,
    moved into place once whole; ``build.json`` records the source and the build time."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        print(
            f"detectron2: building a wheel from {source} (FORCE_CUDA={env['FORCE_CUDA']} "
            f"MAX_JOBS={env['MAX_JOBS']}; a few CPU-minutes, once per machine)",
            flush=True,
        )
        started = time.perf_counter()
        cmd = [python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
               "--progress-bar", "off", "-w", str(tmp), source]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            raise InstallError(f"building detectron2 from {source} failed:\n{tail}")
        wheels = list(tmp.glob("detectron2-*.whl"))
        if len(wheels) != 1:
            raise InstallError(f"pip wheel left {[w.name for w in wheels]} in {tmp}")
        info = {"source": source, "seconds": round(seconds, 1), "wheel": wheels[0].name,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        (tmp / "build.json").write_text(json.dumps(info, indent=1) + "\n")
        if folder.exists():  # a stale, incomplete folder (no build.json)
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"detectron2: built {folder / info['wheel']} in {seconds:.0f} s", flush=True)
    return folder / info["wheel"]


def installed_from(wheel: Path) -> bool:
    """Whether the installed detectron2 is that very wheel (pip's ``direct_url.json``)."""
    try:
        direct = importlib.metadata.distribution("detectron2").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return False
    return bool(direct) and json.loads(direct).get("url") == wheel.resolve().as_uri()


def pip_install(wheel: Path, python: str) -> None:
    """Install the wheel and detectron2's dependencies (pip resolves them from the index)."""
    cmd = [python, "-m", "pip", "install", "--quiet", "--progress-bar", "off", str(wheel)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise InstallError(f"installing {wheel} failed:\n{tail}")


def check_import(python: str) -> str:
    """Import detectron2 and its compiled ops in the target interpreter; its version."""
    code = "import detectron2, detectron2._C; print(detectron2.__version__)"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise InstallError(f"detectron2 was installed but does not import: {last}")
    return proc.stdout.strip()


def install(source: str, python: str = sys.executable, cache: Path | None = None) -> dict:
    """Build (or reuse) and install detectron2 from ``source``; what was done, as a dict."""
    env = build_environment()
    started = time.perf_counter()
    path = local_path(source)
    if path is not None:
        source = str(path.resolve())  # what build.json records; pip gets the same file
    facts = target_facts(python, env)
    identity = source_identity(source)
    if identity is None:  # an unpinned ref nobody can resolve: build, install, cache nothing
        with tempfile.TemporaryDirectory() as tmp:
            wheel = build_wheel(source, Path(tmp) / "wheel", python, env)
            pip_install(wheel, python)
        return {"action": "built (not cached: unpinned source)", "version": check_import(python)}
    root = cache or cache_root()
    folder = root / cache_key(identity, facts)
    with locked(root):
        wheel = cached_wheel(folder)
        action = "reused the cached wheel"
        if wheel is None:
            wheel = build_wheel(source, folder, python, env)
            action = "built"
        build = json.loads((folder / "build.json").read_text())
        if python == sys.executable and installed_from(wheel):
            action += ", already installed"
        else:
            pip_install(wheel, python)
            action += ", installed"
    version = check_import(python)
    seconds = time.perf_counter() - started
    print(
        f"detectron2 {version}: {action} ({wheel}; its build took {build['seconds']:.0f} s) "
        f"in {seconds:.0f} s",
        flush=True,
    )
    return {"action": action, "wheel": str(wheel), "version": version, "seconds": seconds,
            "build_seconds": build["seconds"], "key": folder.name}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--source",
        default=os.environ.get("SIAMHUB_DETECTRON2_SOURCE") or DEFAULT_SOURCE,
        help="git URL, source archive or folder (default: upstream at the tested commit)",
    )
    p.add_argument("--cache", type=Path, help="wheel cache (default: see above)")
    p.add_argument(
        "--if-present",
        action="store_true",
        help="a local source that does not exist is a note and exit 0 (what make test uses)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = local_path(args.source)
    if args.if_present and path is not None and not path.exists():
        print(
            f"detectron2: no source at {args.source}; detectron2's tests will "
            f"be skipped (install it with: {Path(sys.executable).name} -m "
            "transfer.detection.install_detectron2 --source <git URL | archive | folder>)"
        )
        return 0
    try:
        install(args.source, cache=args.cache)
    except InstallError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
