"""The model zoo: every pretrained encoder siamhub can load, by ``arch.tag`` name.

The first rows are the authors' own released checkpoints (URLs in docs/recipes.md, "The
authors' released checkpoints"): downloaded from the authors' URL on first use, converted by
``hub.importer`` and cached as an encoder folder, so a second load reads the cache. Models this
project trains and publishes join as rows with a Hub repo id and the revision each push created
(``hub/published.json``, written by ``hub/publish.py --push``; ``SIAMHUB_PUBLISHED`` points
elsewhere). ``hubconf.py`` exposes one torch.hub entry per row.

The cache lives in ``$SIAMHUB_CACHE`` (default: ``<torch.hub.get_dir()>/siamhub``).

Integrity: a row's ``sha256`` is the SHA-256 of the authors' file; when set, a download (or a
file placed by hand in ``downloads/``) that does not match it is refused. The authors publish no
checksums and this project's machines cannot reach their URLs, so every authors' row carries
``sha256=None`` until someone downloads the file, checks it, and fills the value in. The file
is read weights-only either way (``hub.importer.read_checkpoint_file``: a pickle that would
build anything but tensors and plain containers is refused before any of it runs). Each cached
encoder folder records the URL and SHA-256 of the file it was converted from
(``source.json``); a different file placed in ``downloads/``, a changed URL, or a row whose
``sha256`` differs from the recorded one is converted again, with a message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError
from common.files import atomic_write_json
from common.progress import is_tty
from hub.backbones import BackboneSpec
from hub.encoder import Encoder, load_from_hub
from hub.provenance import write_json_atomic

PUBLISHED = Path(__file__).with_name("published.json")
LINEAR = "imagenet linear probe"

R50 = BackboneSpec(name="resnet50")
# MoCo v3 ViTs (§4.1 and Appendix): 2-D sin-cos position embedding, frozen random patch
# projection, 12 heads for ViT-S.
VIT_S = BackboneSpec(name="vit_small", num_heads=12, pos_embed="sincos", freeze_patch_embed=True)
VIT_B = BackboneSpec(name="vit_base", pos_embed="sincos", freeze_patch_embed=True)


SOURCE_RECORD = "source.json"  # in a cached encoder folder: the file it was converted from


class ZooError(UserError, RuntimeError):
    """A zoo model that cannot be found, downloaded or converted (says what to do)."""


@dataclass(frozen=True)
class ZooModel:
    """One row: where the weights come from, what architecture, what it scores."""

    name: str  # arch.tag, e.g. resnet50.simsiam_100ep_in1k
    entry: str  # torch.hub entry point, e.g. simsiam_resnet50
    spec: BackboneSpec
    method: str
    epochs: int | None  # None: not recorded (an imported file that does not say)
    batch_size: int | None
    dataset: str | None = "imagenet"
    url: str | None = None  # authors' release: downloaded, converted, cached
    repo_id: str | None = None  # published to the Hugging Face Hub
    revision: str | None = None  # the Hub commit this row pins
    results: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    sha256: str | None = None  # of the file at ``url``; None: not known yet (module docstring)

    @property
    def source(self) -> str:
        return self.url or f"hf://{self.repo_id}@{self.revision or 'main'}"

    @property
    def headline(self) -> str:
        parts = [
            f"{r['task']} top-1 {v}% ({r['source']})"
            for r in self.results
            for k, v in r["metrics"].items()
            if k == "top1"
        ]
        return "; ".join(parts) or "no results recorded yet"

    def ssl(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "dataset": self.dataset,
            "source": self.source,
            "hub_entry": self.entry,
            "results": [dict(r) for r in self.results],
        }


def _linear(top1: float, source: str) -> tuple[dict[str, Any], ...]:
    protocol = {"features": "frozen pool5 / class token", "eval_crop": "resize 256, center 224"}
    return ({"task": LINEAR, "metrics": {"top1": top1}, "protocol": protocol, "source": source},)


_FB = "https://dl.fbaipublicfiles.com"
AUTHORS: tuple[ZooModel, ...] = (
    ZooModel(
        "resnet50.simsiam_100ep_in1k",
        "simsiam_resnet50",
        R50,
        "simsiam",
        100,
        512,
        url=f"{_FB}/simsiam/models/100ep/pretrain/checkpoint_0099.pth.tar",
        results=_linear(68.1, "reported, SimSiam repository, batch 512"),
    ),
    ZooModel(
        "resnet50.simsiam_100ep_bs256_in1k",
        "simsiam_resnet50_bs256",
        R50,
        "simsiam",
        100,
        256,
        url=f"{_FB}/simsiam/models/100ep-256bs/pretrain/checkpoint_0099.pth.tar",
        results=_linear(68.3, "reported, SimSiam repository, batch 256"),
    ),
    *(
        ZooModel(
            f"resnet50.mocov3_{ep}ep_in1k",
            "mocov3_resnet50" if ep == 1000 else f"mocov3_resnet50_{ep}ep",
            R50,
            "mocov3",
            ep,
            4096,
            url=f"{_FB}/moco-v3/r-50-{ep}ep/r-50-{ep}ep.pth.tar",
            results=_linear(top1, f"reported, MoCo v3 repository, {ep} epochs"),
        )
        for ep, top1 in ((100, 68.9), (300, 72.8), (1000, 74.6))
    ),
    ZooModel(
        "vit_small.mocov3_300ep_in1k",
        "mocov3_vit_small",
        VIT_S,
        "mocov3",
        300,
        4096,
        url=f"{_FB}/moco-v3/vit-s-300ep/vit-s-300ep.pth.tar",
        results=_linear(73.2, "reported, MoCo v3 repository"),
    ),
    ZooModel(
        "vit_base.mocov3_300ep_in1k",
        "mocov3_vit_base",
        VIT_B,
        "mocov3",
        300,
        4096,
        url=f"{_FB}/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar",
        results=_linear(76.7, "reported, MoCo v3 repository"),
    ),
    ZooModel(
        "resnet50.mocov2_800ep_in1k",
        "mocov2_resnet50",
        R50,
        "mocov2",
        800,
        256,
        url=f"{_FB}/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
        results=_linear(71.1, "reported, MoCo repository README, 800 epochs"),
    ),
)


def published_path() -> Path:
    return Path(os.environ.get("SIAMHUB_PUBLISHED", PUBLISHED))


def published_models(path: Path | None = None) -> tuple[ZooModel, ...]:
    """The rows ``hub/publish.py --push`` recorded (one per repo id, latest revision)."""
    path = path or published_path()
    if not path.is_file():
        return ()
    rows = json.loads(path.read_text() or "[]")
    return tuple(_row_from_json(r) for r in rows)


def _row_from_json(row: dict[str, Any]) -> ZooModel:
    fields = {f.name for f in dataclasses.fields(ZooModel)}
    kwargs = {k: v for k, v in row.items() if k in fields}
    kwargs["spec"] = BackboneSpec(**row["spec"])
    kwargs["results"] = tuple(row.get("results", ()))
    return ZooModel(**kwargs)


def record_published(row: ZooModel, revisions: list[str], path: Path | None = None) -> Path:
    """Add or update ``row`` in the published rows (atomic write); keeps every revision pushed."""
    path = path or published_path()
    rows = json.loads(path.read_text() or "[]") if path.is_file() else []
    rows = [r for r in rows if r["name"] != row.name]
    entry = dataclasses.asdict(row)
    entry["results"] = list(row.results)
    entry["revisions"] = revisions
    rows.append(entry)
    return write_json_atomic(path, sorted(rows, key=lambda r: r["name"]))


def models() -> tuple[ZooModel, ...]:
    """Every zoo row: the authors' releases first, then the published models."""
    return AUTHORS + published_models()


def get(name: str) -> ZooModel:
    """A row by ``arch.tag`` name or torch.hub entry name."""
    for row in models():
        if name in (row.name, row.entry):
            return row
    raise ZooError(
        f"no zoo model {name!r}; available: {', '.join(r.name for r in models())} "
        "(or their torch.hub entries)"
    )


def cache_dir() -> Path:
    return Path(os.environ.get("SIAMHUB_CACHE", Path(torch.hub.get_dir()) / "siamhub"))


def load(row: ZooModel | str, pretrained: bool = True, cache: Path | None = None) -> Encoder:
    """Build a zoo model; ``pretrained`` loads its weights (download-convert-cache or Hub)."""
    row = get(row) if isinstance(row, str) else row
    if not pretrained:
        return Encoder.from_spec(row.spec, ssl=row.ssl())
    if row.repo_id:
        return load_from_hub(row.repo_id, revision=row.revision)
    return _load_release(row, cache or cache_dir())


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file (``hashlib.file_digest``: read in blocks, never whole)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def converted_from(folder: Path) -> dict[str, Any]:
    """What ``source.json`` of a cached encoder folder records (url, sha256); {} if nothing."""
    try:
        record = json.loads((folder / SOURCE_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _load_release(row: ZooModel, cache: Path) -> Encoder:
    """Authors' checkpoint: cached encoder folder, else download, verify, convert, cache.

    A file in ``downloads/`` (placed by hand, or left by an interrupted conversion) is used
    instead of a download; when the cache was converted from another file, it is converted again.
    """
    assert row.url is not None
    folder = cache / row.name
    raw = cache / "downloads" / Path(row.url).name
    cached = (folder / "model.safetensors").is_file()
    source = converted_from(folder) if cached else {}
    if raw.is_file():
        digest = _verified(row, raw, placed=True)
        if cached and source.get("sha256") == digest:
            raw.unlink()  # the very file the cache was made from
            return Encoder.from_pretrained(folder)
        if cached:
            print(
                f"{row.name}: {raw} is not the file the cache was converted from (SHA-256 "
                f"{_short(source.get('sha256'))} there, {_short(digest)} here); converting it again"
            )
        return _convert(row, raw, folder, digest)
    if cached:
        stale = []
        if source and source.get("url") != row.url:
            stale.append(f"converted from {source.get('url')}, the row now names {row.url}")
        if row.sha256 and source.get("sha256") != row.sha256.lower():
            stale.append(
                f"converted from a file with SHA-256 {_short(source.get('sha256'))}, the row "
                f"expects {_short(row.sha256)}"
            )
        if not stale:
            return Encoder.from_pretrained(folder)
        print(f"{row.name}: the cache is stale ({'; '.join(stale)}); downloading again")
    _download(row.url, raw)
    return _convert(row, raw, folder, _verified(row, raw, placed=False))


def _short(digest: str | None) -> str:
    return f"{digest[:12]}..." if digest else "unknown"


def _verified(row: ZooModel, raw: Path, placed: bool) -> str:
    """The file's SHA-256, checked against the row's when it has one."""
    digest = sha256_of(raw)
    if row.sha256 and digest != row.sha256.lower():
        if not placed:
            raw.unlink()  # an unverified download is never kept
        raise ZooError(
            f"{raw if placed else row.url} has SHA-256 {digest}, but {row.name} expects "
            f"{row.sha256}: it is not the authors' file (or it is damaged); "
            + (f"delete {raw} and download it again from {row.url}" if placed else
               "try again later, and check the URL's content if it persists")
        )  # fmt: skip
    return digest


def _convert(row: ZooModel, raw: Path, folder: Path, digest: str) -> Encoder:
    """Import ``raw`` (weights-only), save the encoder folder with its source record, then
    remove ``raw``: the converted folder is the cache."""
    from hub.importer import NotACheckpointError, UnsafeCheckpointError, import_checkpoint

    try:
        # the row names the method: a backbone-only file takes it, another layout is refused
        encoder, report = import_checkpoint(raw, spec=row.spec, ssl=row.ssl(), method=row.method)
    except NotACheckpointError as e:
        raise ZooError(
            f"{raw} is not a PyTorch checkpoint ({e.reason}); delete it and download it again "
            f"from {row.url}"
        ) from None
    except UnsafeCheckpointError as e:
        raise ZooError(
            f"{raw} is not the authors' checkpoint: its pickle asks for {e.refused}, which a "
            "weights-only load refuses (nothing of it was run); delete it and download it again "
            f"from {row.url}"
        ) from None
    print(f"{row.name}: {report.summary()}")
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    encoder.save_pretrained(partial)
    record = {"url": row.url, "sha256": digest, "bytes": raw.stat().st_size}
    atomic_write_json(partial / SOURCE_RECORD, {**record, "layout": report.layout})
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(partial, folder)
    raw.unlink()
    return Encoder.from_pretrained(folder)


def _download(url: str, dst: Path) -> None:
    """Download ``url`` to ``dst`` (through ``dst.part``); a failure is one short ZooError."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    try:
        torch.hub.download_url_to_file(url, str(tmp), progress=is_tty())
    except Exception as e:
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        text = str(reason).strip().splitlines()
        raise ZooError(
            f"could not download {url} ({type(e).__name__}: {text[0] if text else 'no reason'}). "
            f"Download it by hand and put it at {dst} (or set SIAMHUB_CACHE to a folder whose "
            "downloads/ holds it), then load again: the file is converted and cached on the "
            "next load."
        ) from None
    os.replace(tmp, dst)


def hub_entries() -> dict[str, Callable[..., Encoder]]:
    """One torch.hub entry function per zoo row, documented with its headline results."""
    entries = {}
    for row in models():
        entries[row.entry] = _entry(row)
    return entries


def _entry(row: ZooModel) -> Callable[..., Encoder]:
    def entry(pretrained: bool = False, **kwargs: Any) -> Encoder:
        return load(row, pretrained=pretrained, **kwargs)

    entry.__name__ = row.entry
    length = f"{row.epochs} epochs" if row.epochs is not None else "length not recorded"
    batch = f"batch {row.batch_size}" if row.batch_size else "batch not recorded"
    entry.__doc__ = (
        f"{row.name}: {row.method}, {row.spec.name}, {length}, {batch}, "
        f"{row.dataset or 'data not recorded'}. {row.headline}. Source: {row.source}. "
        "pretrained=False builds the architecture; pretrained=True loads the weights."
    )
    return entry
