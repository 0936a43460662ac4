"""The raw predictions behind a record's numbers, saved beside it so that anyone can recompute
them: ``<results>/<task>/<run_id>.json`` (the record) and ``<results>/<task>/<run_id>/`` (its
artifacts).

A task returns its artifacts as ``{name: data}`` in ``TaskOutput.artifacts`` (data: bytes, text,
or a JSON-able object); ``transfer/run.py`` writes them with ``save_artifact`` before the
record, which lists each as ``{"name", "path" (relative to the record's folder), "sha256",
"bytes"}`` under ``"artifacts"``. A file over 200 KB is gzipped (``.gz`` appended to its path;
the checksum is that of the file as stored). ``verify_artifacts(record_path)`` checks every
listed file against its size and checksum; ``read_artifact`` returns one verified payload.

What the tasks save:

- ``predictions.csv`` (knn, linear, lowshot): ``index,label,<prediction columns>``, one row per
  test image in the split's order; top-1 is ``100 * (label == prediction).sum() / rows``.
- ``coco_detections.json`` (COCO-style evaluation): the exact list of results given to
  pycocotools' ``loadRes``, ``{image_id, category_id, bbox [x, y, w, h], score}`` (and an RLE
  ``segmentation`` for Mask R-CNN).
- ``voc_detections.json`` (VOC07 AP): ``{class: [[image, score, xmin, ymin, xmax, ymax], ...]}``
  in the VOC devkit's convention (1-based pixel corners, as its comp4_det_test files).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from common.errors import UserError
from common.files import atomic_write_bytes
from records.write import results_root

GZIP_OVER = 200_000  # bytes; a larger artifact is stored gzipped


class ArtifactError(UserError, RuntimeError):
    """An artifact listed in a record is missing, outside the record's folder, or altered."""


def encode(data: Any) -> bytes:
    """An artifact's bytes: bytes as given, text as UTF-8, anything else as compact JSON."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_artifact(folder: Path, name: str, data: Any, base: Path | None = None) -> dict:
    """Write ``data`` as ``folder/name`` (gzipped as ``name.gz`` when over 200 KB) and return
    ``{"name", "path", "sha256", "bytes"}``; ``path`` is relative to ``base`` (default
    ``folder``'s parent, where the record lies) and uses ``/``."""
    if not name or PurePosixPath(name).name != name or name.startswith("."):
        raise ValueError(f"artifact name {name!r} must be a plain file name")
    payload = encode(data)
    file = name
    if len(payload) > GZIP_OVER:
        payload, file = gzip.compress(payload, mtime=0), f"{name}.gz"
    path = atomic_write_bytes(Path(folder) / file, payload)
    rel = path.relative_to(Path(base) if base is not None else Path(folder).parent)
    return {"name": name, "path": rel.as_posix(), "sha256": sha256(payload), "bytes": len(payload)}


def save_task_artifacts(
    folder: Path, per_seed: Sequence[Mapping[str, Any]], first_seed: int
) -> list[dict]:
    """Save the artifacts of a run's seeds (one task output each) into ``folder``; with
    several seeds each name is prefixed ``s<seed>_``."""
    entries = []
    for i, artifacts in enumerate(per_seed):
        prefix = f"s{first_seed + i}_" if len(per_seed) > 1 else ""
        for name, data in artifacts.items():
            entries.append(save_artifact(folder, prefix + name, data))
    return entries


def artifact_folder(task: str, run_id: str, root: Path | None = None) -> Path:
    """``<root>/<task>/<run_id>/``, beside the record ``<root>/<task>/<run_id>.json`` (``root``
    resolved as ``records.write.write_record`` does)."""
    return Path(root or results_root()) / task / run_id


@contextmanager
def saved_beside(
    record: Mapping[str, Any],
    per_seed: Sequence[Mapping[str, Any]],
    first_seed: int,
    root: Path | None = None,
) -> Iterator[list[dict]]:
    """Save a run's artifacts into its record's folder and yield their entries, for the record
    written inside the ``with``; if that write fails, the files are removed again (no folder of
    predictions without its record)."""
    folder = artifact_folder(record["task"], record["run_id"], root)
    entries = save_task_artifacts(folder, per_seed, first_seed)
    try:
        yield entries
    except BaseException:
        for entry in entries:
            (folder.parent / entry["path"]).unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


def _resolve(record_path: Path, entry: Mapping[str, Any]) -> Path:
    rel = PurePosixPath(str(entry.get("path", "")))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ArtifactError(
            f"{record_path}: artifact path {str(rel)!r} must be relative, inside the "
            "record's folder"
        )
    return record_path.parent.joinpath(*rel.parts)


def check_entry(record_path: Path, entry: Mapping[str, Any]) -> bytes:
    """The stored bytes of one artifact entry, after checking its size and checksum."""
    path = _resolve(record_path, entry)
    if not path.is_file():
        raise ArtifactError(f"{path}: artifact {entry.get('name')!r} of {record_path} is missing")
    data = path.read_bytes()
    if len(data) != entry.get("bytes") or sha256(data) != entry.get("sha256"):
        raise ArtifactError(
            f"{path}: {len(data)} bytes, sha256 {sha256(data)}; the record {record_path} lists "
            f"{entry.get('bytes')} bytes, sha256 {entry.get('sha256')}: the file was altered"
        )
    return data


def load_record(record_path: str | Path) -> dict:
    return json.loads(Path(record_path).read_text())


def verify_artifacts(record_path: str | Path) -> list[dict]:
    """Check every artifact of a record (present, inside its folder, size and sha256); return
    the entries, or raise ``ArtifactError`` naming each file that fails."""
    record_path = Path(record_path)
    entries = load_record(record_path).get("artifacts", [])
    problems = []
    for entry in entries:
        try:
            check_entry(record_path, entry)
        except ArtifactError as e:
            problems.append(str(e))
    if problems:
        raise ArtifactError("\n".join(problems))
    return entries


def read_artifact(record_path: str | Path, name: str) -> bytes:
    """The payload of the artifact ``name`` of a record (verified, un-gzipped)."""
    record_path = Path(record_path)
    for entry in load_record(record_path).get("artifacts", []):
        if entry.get("name") == name:
            data = check_entry(record_path, entry)
            return gzip.decompress(data) if str(entry["path"]).endswith(".gz") else data
    raise ArtifactError(f"{record_path} lists no artifact {name!r}")


def prediction_table(labels: Any, columns: Mapping[str, Any]) -> str:
    """CSV ``index,label,<columns>``: one row per test image (label and predicted classes)."""
    label_arr = np.asarray(labels).astype(np.int64).reshape(-1)
    cols = {k: np.asarray(v).astype(np.int64).reshape(-1) for k, v in columns.items()}
    for key, col in cols.items():
        if len(col) != len(label_arr):
            raise ValueError(f"column {key!r} has {len(col)} rows, labels {len(label_arr)}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "label", *cols])
    stacked = np.stack([np.arange(len(label_arr)), label_arr, *cols.values()], axis=1)
    writer.writerows(stacked.tolist())
    return out.getvalue()


def read_prediction_table(data: bytes | str) -> dict[str, np.ndarray]:
    """The columns of a ``prediction_table`` CSV as int64 arrays."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    values = np.array(body, dtype=np.int64).reshape(len(body), len(header))
    return {key: values[:, i] for i, key in enumerate(header)}


def top1_percent(predictions: Any, labels: Any) -> float:
    """Top-1 in percent, ``100 * correct / n`` in double precision (what an audit recomputes)."""
    pred = np.asarray(predictions).reshape(-1)
    lab = np.asarray(labels).reshape(-1)
    if len(pred) != len(lab) or len(lab) == 0:
        raise ValueError(f"{len(pred)} predictions for {len(lab)} labels")
    return 100.0 * int((pred == lab).sum()) / len(lab)
