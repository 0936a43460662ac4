"""Where a model card may point: the project's repository and the commit a model came from.

One source of truth for the repository: ``[project.urls] Repository`` in ``pyproject.toml``
(read from the checkout, else from the installed package's metadata). While it is unset (the
code is not public yet) a card shows no clone line, no torch.hub snippet and no commit link.
A commit is linked only when it is published: an ancestor of a branch of that repository as
this checkout's remote-tracking branches know it (``git fetch`` updates them); any other commit
is shown as its sha, marked unpublished.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
URL_KEY = "Repository"  # the [project.urls] entry cards read
PREFERRED = ("main", "master")  # the branch a snippet names when the commit is on several


def repository_url(root: Path | None = None) -> str | None:
    """``[project.urls] Repository`` (an https URL without a trailing ``.git``), or None."""
    pyproject = (root or REPO_ROOT) / "pyproject.toml"
    url = None
    if pyproject.is_file():
        with pyproject.open("rb") as f:
            url = ((tomllib.load(f).get("project") or {}).get("urls") or {}).get(URL_KEY)
    else:  # an installed copy without its source tree: the same table, from the metadata
        try:
            entries = metadata.metadata("siamhub").get_all("Project-URL") or []
        except metadata.PackageNotFoundError:
            entries = []
        for entry in entries:
            label, _, value = entry.partition(",")
            if label.strip() == URL_KEY:
                url = value.strip()
    if not isinstance(url, str) or not url.startswith("https://"):
        return None
    return _normalized(url)


def github_repo(url: str | None) -> str | None:
    """``owner/name`` of a GitHub repository URL (what ``torch.hub.load`` takes), else None."""
    m = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", url or "")
    return f"{m[1]}/{m[2]}" if m else None


def clone_name(url: str) -> str:
    """The folder ``git clone <url>`` creates."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def published_branch(sha: str, url: str | None, root: Path | None = None) -> str | None:
    """The branch of the repository at ``url`` that holds commit ``sha``, as this checkout's
    remote-tracking branches of the remote(s) with that URL know it; None when no such remote
    branch contains it (a local or unpushed commit, or no git)."""
    if not url or not re.fullmatch(r"[0-9a-f]{7,40}", sha):
        return None
    remotes = _git(root, "config", "--get-regexp", r"^remote\..*\.url$")
    names = [
        line.split()[0].removeprefix("remote.").removesuffix(".url")
        for line in (remotes or "").splitlines()
        if len(line.split()) == 2 and _normalized(line.split()[1]) == url
    ]
    branches: list[str] = []
    for name in names:
        refs = _git(
            root, "for-each-ref", "--contains", sha, "--format=%(refname)", f"refs/remotes/{name}/"
        )
        for ref in (refs or "").split():
            branch = ref.removeprefix(f"refs/remotes/{name}/")
            if branch != "HEAD":
                branches.append(branch)
    if not branches:
        return None
    return next((b for b in PREFERRED if b in branches), sorted(branches)[0])


def head_commit(root: Path | None = None) -> str | None:
    """The checkout's HEAD commit (the code writing a card), or None outside git."""
    out = _git(root, "rev-parse", "HEAD")
    return out.strip() if out else None


def commit_text(sha_field: object, root: Path | None = None) -> str | None:
    """The card's "code" cell: a link to the commit when it is published, else the sha with
    "unpublished" (``+dirty``: uncommitted changes to tracked files, which the cell says)."""
    if not isinstance(sha_field, str):
        return None
    m = re.fullmatch(r"([0-9a-f]{7,40})(\+dirty)?", sha_field)
    if m is None:
        return None
    sha, dirty = m[1], " plus uncommitted changes" if m[2] else ""
    url = repository_url(root)
    if published_branch(sha, url, root) is not None:
        return f"siamhub [`{sha[:12]}`]({url}/commit/{sha}){dirty}"
    where = f"on no branch of {url}" if url else "the project's repository is not public yet"
    return f"siamhub commit `{sha[:12]}` (unpublished: {where}){dirty}"


def _normalized(url: str) -> str:
    """``git@github.com:o/n.git``, ``https://github.com/o/n.git/`` -> ``https://github.com/o/n``."""
    url = url.strip()
    if m := re.fullmatch(r"(?:ssh://)?git@([^:/]+)[:/](.+)", url):
        url = f"https://{m[1]}/{m[2]}"
    return url.rstrip("/").removesuffix(".git")


def _git(root: Path | None, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root or REPO_ROOT), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
