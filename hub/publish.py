"""Publish an encoder: ``python hub/publish.py <run dir | checkpoint> --repo-id <org>/<name>``
(or ``--out DIR`` alone: a local encoder folder, what ``transfer/run.py --model DIR`` loads).

Writes the repo folder (``model.safetensors`` with the backbone's own keys, ``config.json`` in
timm's format with the ``ssl`` block, ``README.md`` model card, ``results/``: copies of the
result records the card links) to ``--out`` (default
``hub_repos/<name>``). ``--push`` uploads it with the real ``huggingface_hub`` client
(``create_repo`` + ``upload_folder``; the token comes from the usual places: ``HF_TOKEN``,
``hf auth login``); ``--dry-run`` lists what would be uploaded and sends nothing. Every push is a
new commit (a new revision) on the Hub; the zoo (``hub/published.json``) records the row with
the latest revision and every revision pushed before it.

The source may also be a checkpoint of the papers' authors (``hub.importer``'s layouts): its
card then says what the file says of itself (the release file, method, epochs, DINO's args) and
nothing more. A DINO checkpoint (a siamhub DINO run, or the authors' full checkpoint) publishes
its teacher, the network DINO evaluates and releases; ``--network student`` publishes the
student. A backbone-only file does not say how it was trained: ``--method`` names it.

The checkpoint is read weights-only (``hub.importer.read_checkpoint_file``): a file that asks
to unpickle anything but tensors and plain containers is refused, and nothing of it runs.
Errors are one ``error:`` line (exit 2); a failed push leaves the folder intact, and the same
command pushes it again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.cli import clear_position, make_parser, note_position, run_cli
from common.errors import UserError
from common.files import atomic_write_bytes, atomic_write_text
from hub.card import model_card
from hub.card_results import attach_records, summary_result
from hub.encoder import Encoder
from hub.importer import (
    METHOD_UNKNOWN,
    NETWORKS,
    ImportReport,
    UnsafeCheckpointError,
    import_checkpoint,
    read_checkpoint_file,
)
from hub.provenance import git_sha
from hub.zoo import AUTHORS, ZooModel, published_path, record_published
from records.length import length_of, trained_from_epochs
from records.methods import DISPLAY

ROOT = Path(__file__).resolve().parents[1]
DATASET_TAGS = {"fashion_mnist": "fmnist", "imagefolder": "in1k", "imagenet": "in1k"}
RECORDS = "results"  # the folder's copies of the result records its card links
SUMMARY = "summary.json"  # the run's, copied beside them
RUN_ENCODER = "encoder"  # <run dir>/encoder/: the encoder folder every training run writes


class PublishError(UserError, ValueError):
    """A source, repo id or push that cannot be published as asked (says what to change)."""


def find_checkpoint(source: Path) -> Path:
    """``source`` itself when a file, else ``<run dir>/checkpoints/last.pt``."""
    if source.is_file():
        return source
    ckpt = source / "checkpoints" / "last.pt"
    if not ckpt.is_file():
        raise PublishError(
            f"{source} is neither a checkpoint file nor a run directory with checkpoints/last.pt; "
            "pass a run directory written by pretrain/run.py or a checkpoint file"
        )
    return ckpt


def run_results(run_dir: Path | None) -> list[dict[str, Any]]:
    """The main job's kNN evaluation from ``summary.json``, when the run made one."""
    summary = run_dir / "summary.json" if run_dir else None
    if summary is None or not summary.is_file():
        return []
    report = json.loads(summary.read_text()).get("knn_eval")
    if not report:
        return []
    return [summary_result(report, f"{RECORDS}/{SUMMARY}")]  # with its same-run baselines


def build_encoder(
    source: Path,
    repo_id: str | None,
    results_dir: Path,
    name: str | None = None,
    *,
    method: str | None = None,
    network: str | None = None,
) -> tuple[Encoder, ZooModel]:
    """The encoder of a run or checkpoint, with its ssl block and its zoo row (``method`` and
    ``network``: :func:`hub.importer.import_checkpoint`'s)."""
    ckpt = find_checkpoint(source)
    run_dir = ckpt.parents[1] if ckpt.parent.name == "checkpoints" else None
    content = read_training_checkpoint(ckpt)
    encoder, row = encoder_from_training(
        content, repo_id, run_results(run_dir), name, method=method, network=network,
        origin=ckpt.name,
    )  # fmt: skip
    return encoder, attach_records(encoder, row, results_dir, RECORDS)  # by weights, not name


def encoder_from_training(
    content: dict[str, Any],
    repo_id: str | None = None,
    results: list[dict[str, Any]] | None = None,
    name: str | None = None,
    log: Callable[[str], object] | None = print,
    *,
    method: str | None = None,
    network: str | None = None,
    origin: str | None = None,
) -> tuple[Encoder, ZooModel]:
    """The published Encoder (and its zoo row) of a training checkpoint's plain dicts
    (``model`` state, ``config``, ``step``, ``epoch``), as publish.py and every training run
    (``<run dir>/encoder/``) write it: a DINO run's teacher (``target_backbone``) unless
    ``network="student"``. Any other checkpoint the importer knows (an authors' release named
    ``origin``) is described by its own metadata (:func:`imported_encoder`). Without
    ``repo_id`` the torch.hub entry comes from the name."""
    encoder, report = import_checkpoint(content, method=method, network=network, origin=origin)
    if log is not None:
        log(report.summary())
    if report.layout != "siamhub":
        return imported_encoder(encoder, report, repo_id, results, name)
    recipe = encoder.ssl.get("recipe") or {}
    train, data = recipe.get("train", {}), recipe.get("data", {})
    dataset = data.get("dataset", "imagenet")
    spec = encoder.spec
    epochs = train.get("epochs", 0)
    trained = trained_length(content, epochs)
    data_tag = DATASET_TAGS.get(dataset, dataset)
    length = length_of({"epochs": epochs, "trained": trained})  # "12ep", or "20steps" if short
    tag = name or f"{spec.name}.{encoder.ssl['method']}_{length.tag}_{data_tag}"
    entry = _hub_entry(repo_id, tag)
    row = ZooModel(
        name=tag,
        entry=entry,
        spec=spec,
        method=encoder.ssl["method"],
        epochs=epochs,
        batch_size=train.get("batch_size", 0),
        dataset=dataset,
        repo_id=repo_id,
        results=tuple(results or ()),
    )
    ssl = {
        **encoder.ssl,
        **row.ssl(),
        "recipe_name": recipe.get("recipe"),
        "recipe": recipe,
        "git_sha": git_sha() or "unknown",
        "repo_id": repo_id,
        "checkpoint_step": content.get("step"),
    }
    if trained:  # how far the checkpoint got, beside the recipe's (configured) epochs
        ssl.update(
            trained=trained, trained_steps=trained["steps"], trained_epochs=trained["epochs"]
        )
    recipe_name = f" ({ssl['recipe_name']})" if ssl["recipe_name"] else ""
    network = f", its {report.network}" if report.network else ""  # DINO's teacher or student
    ssl["source"] = f"trained with siamhub{recipe_name}{network}"
    ssl.pop("backbone", None)
    ssl.pop("timm_compatible", None)
    published = Encoder.from_spec(spec, ssl=ssl, backbone=encoder.backbone)
    return published.eval(), row


def imported_encoder(
    encoder: Encoder,
    report: ImportReport,
    repo_id: str | None,
    results: list[dict[str, Any]] | None,
    name: str | None,
) -> tuple[Encoder, ZooModel]:
    """The published Encoder and zoo row of a checkpoint siamhub did not train: method, epochs,
    batch, dataset and source from what the file says of itself (``hub.importer``), and
    nothing it does not say (no recipe, no siamhub commit as its code). A file whose method its
    keys do not tell (a backbone-only state dict) needs ``--method``."""
    ssl = encoder.ssl
    if report.method == METHOD_UNKNOWN:
        raise PublishError(
            f"{ssl.get('source', 'the checkpoint')} does not say which method trained it: "
            f"{report.kind} carries no method; name it with --method "
            f"({', '.join(sorted(DISPLAY))})"
        )
    epochs, dataset = ssl.get("epochs"), ssl.get("dataset")
    parts = [report.method]
    if epochs is not None:
        parts[0] += f"_{length_of({'epochs': epochs}).tag}"
    if dataset:
        parts.append(DATASET_TAGS.get(dataset, dataset))
    tag = name or f"{encoder.spec.name}.{'_'.join(parts)}"
    entry = _hub_entry(repo_id, tag)
    row = ZooModel(
        name=tag,
        entry=entry,
        spec=encoder.spec,
        method=report.method,
        epochs=epochs,
        batch_size=ssl.get("batch_size"),
        dataset=dataset,
        repo_id=repo_id,
        results=tuple(results or ()),
    )
    published_ssl = {
        **ssl,
        **row.ssl(),
        "source": ssl["source"],  # the file it was converted from, not where it is pushed
        "repo_id": repo_id,
        "converted_with": f"siamhub {git_sha() or 'unknown'}",
    }
    published_ssl.pop("backbone", None)
    published_ssl.pop("timm_compatible", None)
    published = Encoder.from_spec(encoder.spec, ssl=published_ssl, backbone=encoder.backbone)
    return published.eval(), row


def _hub_entry(repo_id: str | None, tag: str) -> str:
    """The torch.hub entry of a published row: the repo's name, else the zoo name."""
    entry = (repo_id.split("/")[-1] if repo_id else tag).replace("-", "_").replace(".", "_")
    taken = {r.entry: r.name for r in AUTHORS}
    if repo_id and entry in taken:
        raise PublishError(
            f"the torch.hub entry {entry!r} (from the repo name) is the zoo's {taken[entry]}; "
            "choose another repo name"
        )
    return entry


def trained_length(content: dict[str, Any], epochs: float) -> dict[str, Any] | None:
    """``{steps, epochs, stopped_early}`` from the checkpoint's ``step`` and ``epoch``; None
    for a checkpoint that does not record them (an imported one)."""
    step, epoch = content.get("step"), content.get("epoch")
    if not isinstance(step, int) or not isinstance(epoch, int | float) or not epochs:
        return None
    return trained_from_epochs(step, float(epoch), epochs)


def read_training_checkpoint(ckpt: Path) -> dict[str, Any]:
    """The checkpoint's content, read weights-only; an older siamhub's training checkpoint
    (its numpy RNG state pickled as numpy arrays) is refused with the one-line conversion."""
    try:
        content = read_checkpoint_file(ckpt)
    except UnsafeCheckpointError as e:
        if not e.refused.startswith("numpy."):
            raise
        convert = (
            "from pathlib import Path; from pretrain.checkpoint import read_checkpoint, "
            f"set_rng_state, rng_state, atomic_save; p = Path('{ckpt}'); c = read_checkpoint(p); "
            "set_rng_state(c['rng']); c['rng'] = rng_state(); atomic_save(c, p)"
        )
        raise PublishError(
            f"{ckpt} holds numpy arrays ({e.refused}), as the RNG state of an older siamhub's "
            "training checkpoint did; publish.py loads only tensors and plain data. If the file "
            "is your own, rewrite it once in the current format (from the checkout): "
            f'python -c "{convert}"'
        ) from None
    if not isinstance(content, dict):
        raise PublishError(f"{ckpt} holds a {type(content).__name__}, not a checkpoint dict")
    return content


def write_card(folder: Path, encoder: Encoder, results_dir: Path, source: Path) -> None:
    """Copy the record of each result into ``folder/results/`` (the card links them there, so
    the links work in the folder and on the Hub) and write the card, whose "before the push"
    snippet loads ``folder``."""
    ckpt = find_checkpoint(source)
    run_dir = ckpt.parents[1] if ckpt.parent.name == "checkpoints" else None
    shutil.rmtree(folder / RECORDS, ignore_errors=True)  # a previous publish's copies
    for result in encoder.ssl.get("results", []):
        record = result.get("record")
        if not record:
            continue
        name = record.removeprefix(f"{RECORDS}/")
        origin = run_dir / SUMMARY if name == SUMMARY and run_dir else results_dir / name
        atomic_write_bytes(folder / record, origin.read_bytes())
    atomic_write_text(folder / "README.md", model_card(encoder.config, folder=folder))


def folder_files(folder: Path) -> list[tuple[str, int]]:
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file()
    )


def push(folder: Path, repo_id: str, message: str, private: bool = False) -> str:
    """Upload ``folder`` as one commit with the real client; returns the new revision."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
    info = api.upload_folder(
        repo_id=repo_id, repo_type="model", folder_path=str(folder), commit_message=message
    )
    return info.oid


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("source", type=Path, help="run directory or checkpoint file")
    p.add_argument(
        "--repo-id", help="<org>/<name> on the Hub (needed with --push, and without --out)"
    )
    p.add_argument("--out", type=Path, help="repo folder to write (default hub_repos/<name>)")
    p.add_argument("--name", help="zoo name arch.tag (default from the recipe)")
    p.add_argument(
        "--results",
        type=Path,
        default=ROOT / "leaderboards" / "results",
        help="result records whose transfer results go into the model card "
        "(default leaderboards/results)",
    )
    p.add_argument(
        "--method",
        choices=sorted(DISPLAY),
        help="the method that trained a checkpoint whose keys do not say it (a backbone-only "
        "state dict); a checkpoint that says another one is refused",
    )
    p.add_argument(
        "--network",
        choices=NETWORKS,
        help="of a DINO checkpoint (a siamhub DINO run or the authors' full checkpoint): the "
        "network to publish (default teacher, the one DINO evaluates and releases)",
    )
    p.add_argument("--push", action="store_true", help="upload with huggingface_hub")
    p.add_argument("--dry-run", action="store_true", help="with --push: list, upload nothing")
    p.add_argument("--private", action="store_true", help="with --push: create a private repo")
    p.add_argument("--message", default="", help="commit message of the push")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.repo_id is not None and args.repo_id.count("/") != 1:
        raise PublishError(f"--repo-id must be <org>/<name>, got {args.repo_id!r}")
    if args.repo_id is None and (args.push or args.out is None):
        raise PublishError(
            "give --repo-id <org>/<name>: a push needs it, and without --out the folder is "
            "named after it (a local encoder folder: --out DIR alone)"
        )
    encoder, row = build_encoder(
        args.source,
        args.repo_id,
        args.results,
        args.name,
        method=args.method,
        network=args.network,
    )
    folder = args.out or Path("hub_repos") / args.repo_id.split("/")[1]
    encoder.save_pretrained(folder)
    write_card(folder, encoder, args.results, args.source)
    files = folder_files(folder)
    print(f"wrote {folder}: " + ", ".join(f"{f} ({n:,} B)" for f, n in files))
    out: dict[str, Any] = {"folder": str(folder), "files": files, "row": row.name}
    if args.push and args.dry_run:
        print(f"dry run: would create {args.repo_id} if needed and upload in one commit:")
        for f, n in files:
            print(f"  {f}  {n:,} bytes")
        return out
    if args.push:
        from huggingface_hub.errors import HfHubHTTPError

        message = args.message or f"Publish {row.name} from {args.source.name}"
        note_position(f"pushing {folder} to {args.repo_id}")
        try:
            revision = push(folder, args.repo_id, message, private=args.private)
            clear_position()
        except HfHubHTTPError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PublishError(
                f"pushing {folder} to {args.repo_id} failed: {first}. The folder is intact; "
                "log in with `hf auth login` or set HF_TOKEN (a token with write access), then "
                "run the same command again."
            ) from None
        revisions = _revisions_of(row.name) + [revision]
        path = record_published(dataclasses.replace(row, revision=revision), revisions=revisions)
        print(f"pushed {args.repo_id} at revision {revision}; recorded in {path}")
        out["revision"] = revision
    return out


def _revisions_of(name: str) -> list[str]:
    path = published_path()
    if not path.is_file():
        return []
    for r in json.loads(path.read_text() or "[]"):
        if r["name"] == name:
            return list(r.get("revisions", []))
    return []


def cli() -> None:
    """The command: ``main`` with the project's error path (console script siamhub-publish)."""
    run_cli(main, "a push is one commit, so nothing half-pushed stays; re-run the same command")


if __name__ == "__main__":
    cli()
