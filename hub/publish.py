"""Publish an encoder: ``python hub/publish.py <run dir | checkpoint> --repo-id <org>/<name>``.

Writes the repo folder (``model.safetensors`` with the backbone's own keys, ``config.json`` in
timm's format with the ``ssl`` block, ``README.md`` model card) to ``--out`` (default
``hub_repos/<name>``). ``--push`` uploads it with the real ``huggingface_hub`` client
(``create_repo`` + ``upload_folder``; the token comes from the usual places: ``HF_TOKEN``,
``hf auth login``); ``--dry-run`` lists what would be uploaded and sends nothing. Every push is a
new commit (a new revision) on the Hub; the zoo (``hub/published.json``) records the row with
the latest revision and every revision pushed before it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # `python hub/publish.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.encoder import Encoder  # noqa: E402
from hub.importer import import_checkpoint  # noqa: E402
from hub.provenance import git_sha  # noqa: E402
from hub.zoo import AUTHORS, ZooModel, published_path, record_published  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASET_TAGS = {"fashion_mnist": "fmnist", "imagefolder": "in1k", "imagenet": "in1k"}


def find_checkpoint(source: Path) -> Path:
    """``source`` itself when a file, else ``<run dir>/checkpoints/last.pt``."""
    if source.is_file():
        return source
    ckpt = source / "checkpoints" / "last.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"{source} is neither a checkpoint file nor a run directory with checkpoints/last.pt; "
            "pass a run directory written by pretrain/run.py or a checkpoint file"
        )
    return ckpt


def result_records(results_dir: Path, ids: set[str]) -> list[dict[str, Any]]:
    """Transfer results from result records (``leaderboards/results/**/*.json``) about ``ids``.

    A record names its model by ``model_id``, ``model`` (a string) or ``model.id``.
    """
    found = []
    for path in sorted(results_dir.glob("**/*.json")) if results_dir.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        model = record.get("model")
        names = {record.get("model_id"), model if isinstance(model, str) else None}
        if isinstance(model, dict):
            names.add(model.get("id"))
        if names & ids:
            found.append(
                {
                    "task": record.get("task", path.parent.name),
                    "metrics": record.get("metrics", {}),
                    "protocol": record.get("protocol", {}),
                    "source": f"measured, {path.relative_to(results_dir)}",
                }
            )
    return found


def run_results(run_dir: Path | None) -> list[dict[str, Any]]:
    """The main job's kNN evaluation from ``summary.json``, when the run made one."""
    summary = run_dir / "summary.json" if run_dir else None
    if summary is None or not summary.is_file():
        return []
    report = json.loads(summary.read_text()).get("knn_eval")
    if not report:
        return []
    return [
        {
            "task": "fashion_mnist knn",
            "metrics": {"top1": round(report["knn_top1"]["trained"], 2)},
            "protocol": report["protocol"],
            "source": "measured, summary.json of the run",
        }
    ]


def build_encoder(
    source: Path, repo_id: str, results_dir: Path, name: str | None = None
) -> tuple[Encoder, ZooModel]:
    """The encoder of a run or checkpoint, with its ssl block and its zoo row."""
    ckpt = find_checkpoint(source)
    run_dir = ckpt.parents[1] if ckpt.parent.name == "checkpoints" else None
    encoder, report = import_checkpoint(ckpt)
    print(report.summary())
    recipe = encoder.ssl.get("recipe") or {}
    train, data = recipe.get("train", {}), recipe.get("data", {})
    dataset = data.get("dataset", "imagenet")
    spec = encoder.spec
    epochs = train.get("epochs", 0)
    data_tag = DATASET_TAGS.get(dataset, dataset)
    tag = name or f"{spec.name}.{encoder.ssl['method']}_{epochs:g}ep_{data_tag}"
    ids = {repo_id, str(source), str(source.resolve()), source.name}
    results = run_results(run_dir) + result_records(results_dir, ids)
    entry = repo_id.split("/")[-1].replace("-", "_").replace(".", "_")
    taken = {r.entry: r.name for r in AUTHORS}
    if entry in taken:
        raise ValueError(
            f"the torch.hub entry {entry!r} (from the repo name) is the zoo's {taken[entry]}; "
            "choose another repo name"
        )
    row = ZooModel(
        name=tag,
        entry=entry,
        spec=spec,
        method=encoder.ssl["method"],
        epochs=epochs,
        batch_size=train.get("batch_size", 0),
        dataset=dataset,
        repo_id=repo_id,
        results=tuple(results),
    )
    ssl = {
        **encoder.ssl,
        **row.ssl(),
        "recipe_name": recipe.get("recipe"),
        "recipe": recipe,
        "git_sha": git_sha() or "unknown",
        "repo_id": repo_id,
        "checkpoint_step": _checkpoint_step(ckpt),
    }
    ssl["source"] = f"trained with siamhub ({ssl['recipe_name']})"
    ssl.pop("backbone", None)
    ssl.pop("timm_compatible", None)
    published = Encoder.from_spec(spec, ssl=ssl, backbone=encoder.backbone)
    return published.eval(), row


def _checkpoint_step(ckpt: Path) -> int | None:
    import torch

    obj = torch.load(ckpt, map_location="cpu", weights_only=False)
    return obj.get("step") if isinstance(obj, dict) else None


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="run directory or checkpoint file")
    p.add_argument("--repo-id", required=True, help="<org>/<name> on the Hub")
    p.add_argument("--out", type=Path, help="repo folder to write (default hub_repos/<name>)")
    p.add_argument("--name", help="zoo name arch.tag (default from the recipe)")
    p.add_argument("--results", type=Path, default=ROOT / "leaderboards" / "results")
    p.add_argument("--push", action="store_true", help="upload with huggingface_hub")
    p.add_argument("--dry-run", action="store_true", help="with --push: list, upload nothing")
    p.add_argument("--private", action="store_true")
    p.add_argument("--message", default="", help="commit message of the push")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.repo_id.count("/") != 1:
        raise SystemExit(f"error: --repo-id must be <org>/<name>, got {args.repo_id!r}")
    encoder, row = build_encoder(args.source, args.repo_id, args.results, args.name)
    folder = args.out or Path("hub_repos") / args.repo_id.split("/")[1]
    encoder.save_pretrained(folder)
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
        try:
            revision = push(folder, args.repo_id, message, private=args.private)
        except HfHubHTTPError as e:
            raise SystemExit(
                f"error: pushing {folder} to {args.repo_id} failed: {e}\nThe folder is intact; "
                "log in with `hf auth login` or set HF_TOKEN (a token with write access), then "
                "run the same command again."
            ) from e
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


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
