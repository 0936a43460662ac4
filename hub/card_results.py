"""The results of a model card: one row per metric, each with a short protocol and a link to
the record that holds it.

A result (an item of ``ssl.results``) is ``{task, metrics, protocol, source}`` plus ``record``:
the path of its result record inside the encoder folder (``hub/publish.py`` copies records
there, so the link works in the folder and on the Hub). Rows keep the metrics a reader compares
(top-1, AP); numbers that only describe the protocol (the chosen lr, wall time) go into the
protocol text, and a metric without a number (``None``: no large boxes in the test set) is
left out. The baselines measured with the same protocol in the same run (``random_init_<m>``:
the same network at its initial weights; ``raw_pixels_<m>``: kNN on the pixels, no network)
are shown in their own columns, beside the metric ``<m>`` they belong to.

Which results belong to an encoder is decided by its identity, never by a name:
``records_for`` takes the result records whose ``pretrain.weights_sha256`` (written by
``transfer.models.load_model``) equals the encoder's (``hub.encoder.weights_sha256``), and
``summary_result`` reads the run's own ``summary.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hub.citations import paper

DATASET_NAMES = {
    "imagenet": "ImageNet-1k",
    "imagefolder": "ImageNet-1k",
    "fashion_mnist": "Fashion-MNIST",
}
TASK_LABELS = {
    "knn": "kNN",
    "fashion_mnist knn": "kNN (end of pretraining)",
    "linear": "linear probe",
    "lowshot": "low-shot linear probe",
    "fmnist_det": "detection (Fashion-MNIST scenes)",
    "voc_det": "detection (VOC2007)",
    "coco_det": "detection (COCO)",
}
AUX = re.compile(r"^(best_|val_)|seconds|_per_|^per_seed$")  # protocol numbers, not results
BASELINE = "raw_pixels_"  # a model-free baseline measured beside the encoder (kNN on pixels)
RANDOM_INIT = "random_init_"  # the same network at its initial weights, same protocol and run
BASELINES = {RANDOM_INIT: "random init", BASELINE: "raw pixels"}  # prefix -> column
DET_METRIC = re.compile(r"^(box|mask|voc07)_AP(50|75|s|m|l)?$")


def result_rows(results: list[dict[str, Any]], method: str = "") -> list[dict[str, Any]]:
    """One row per reported metric of ``results``: task, metric, value, the same-run baselines
    of that metric, protocol, link (``method``: whose authors' repository a reported number
    links to). A baseline whose metric is not reported is a row of its own."""
    rows = []
    for result in results:
        task = str(result.get("task") or "unknown task")
        protocol = result.get("protocol") if isinstance(result.get("protocol"), dict) else {}
        metrics = result.get("metrics") if isinstance(result.get("metrics"), dict) else {}
        for metric, value in metrics.items():
            if not _is_number(value) or AUX.search(metric):
                continue
            base = _baseline_of(metric)
            if base is not None and _is_number(metrics.get(base[1])):
                continue  # shown beside its metric
            baselines = {
                label: round(float(metrics[prefix + metric]), 2)
                for prefix, label in BASELINES.items()
                if base is None and _is_number(metrics.get(prefix + metric))
            }
            rows.append(
                {
                    "task": task,
                    "task_label": TASK_LABELS.get(task, task),
                    "metric": metric,
                    "metric_label": metric_label(metric),
                    "value": round(float(value), 2),
                    "baselines": baselines,
                    "protocol": protocol_text(task, metric, protocol, metrics),
                    "link": _link(result, method),
                    "dataset": _dataset(task, protocol),
                    "baseline": base is not None,
                    "record": result.get("record") or None,
                }
            )
    return rows


def _baseline_of(metric: str) -> tuple[str, str] | None:
    """(prefix, metric) of a baseline metric such as ``raw_pixels_top1_k20``, else None."""
    for prefix in BASELINES:
        if metric.startswith(prefix):
            return prefix, metric.removeprefix(prefix)
    return None


def results_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return [
            "No transfer results are recorded for this encoder yet: its quality is unmeasured. "
            "Measure it with `python transfer/run.py --task knn --model <this folder>`."
        ]
    columns = [label for label in BASELINES.values() if any(label in r["baselines"] for r in rows)]
    head = ["task", "metric", "value", *(f"{c} (same run)" for c in columns), "protocol", "record"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        shown = [r["baselines"].get(c) for c in columns]
        cells = (
            r["task_label"],
            r["metric_label"],
            f"{r['value']:.2f}",
            *(f"{v:.2f}" if v is not None else "not measured" for v in shown),
            r["protocol"],
        )
        lines.append("| " + " | ".join(cell(c) for c in cells) + f" | {r['link']} |")
    if columns:
        lines += [
            "",
            "Baselines measured with the same protocol in the same run: *random init* is the "
            "same network at its initial weights (what pretraining added is the difference), "
            "*raw pixels* the same kNN on the normalized pixels (no network).",
        ]
    return lines


def summary_result(report: dict[str, Any], record: str | None) -> dict[str, Any]:
    """The result of a run's ``summary.json`` ``knn_eval`` (``pretrain/evaluate.py``): the
    trained backbone's kNN top-1 with the same run's random-init and raw-pixels baselines."""
    knn = report.get("knn_top1") or {}
    metrics = {"top1": round(knn["trained"], 2)}
    for name, prefix in (("random_init", RANDOM_INIT), ("raw_pixels", BASELINE)):
        if _is_number(knn.get(name)):
            metrics[prefix + "top1"] = round(knn[name], 2)
    return {
        "task": "fashion_mnist knn",
        "metrics": metrics,
        "protocol": report["protocol"],
        "source": "measured, summary.json of the run",
        "record": record,
    }


def records_for(results_dir: Path, identity: str, prefix: str = "results") -> list[dict[str, Any]]:
    """The results of the transfer records (``<results_dir>/**/*.json``) measured on the
    encoder whose ``hub.encoder.weights_sha256`` is ``identity``: a record's
    ``pretrain.weights_sha256`` must equal it (a record without one, written before records
    carried it, matches nothing: measure the encoder again). ``record`` is the path the card
    links: ``<prefix>/<path below results_dir>``."""
    found = []
    for path in sorted(results_dir.glob("**/*.json")) if results_dir.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        pretrain = record.get("pretrain") if isinstance(record, dict) else None
        if not isinstance(pretrain, dict) or pretrain.get("weights_sha256") != identity:
            continue
        if pretrain.get("random_init"):
            continue  # a baseline's record, not a result of these weights
        relative = path.relative_to(results_dir).as_posix()
        found.append(
            {
                "task": record.get("task", path.parent.name),
                "metrics": record.get("metrics", {}),
                "protocol": record.get("protocol", {}),
                "source": f"measured, {relative}",
                "record": f"{prefix}/{relative}",
            }
        )
    return found


def metric_label(metric: str) -> str:
    """``top1_k20`` -> ``top-1 (%), k=20``, ``top1_1pct`` -> ``top-1 (%), 1% labels``, ``box_AP50``
    -> ``box AP50``."""
    if metric.startswith(BASELINE):
        return f"{metric_label(metric.removeprefix(BASELINE))}, raw pixels (no encoder)"
    if metric.startswith(RANDOM_INIT):
        return f"{metric_label(metric.removeprefix(RANDOM_INIT))}, random init (same network)"
    if m := re.fullmatch(r"top1_k(\d+)", metric):
        return f"top-1 (%), k={m[1]}"
    if metric == "top1":
        return "top-1 (%)"
    if m := re.fullmatch(r"top1_(\d+)pct", metric):
        return f"top-1 (%), {m[1]}% labels"
    if m := DET_METRIC.fullmatch(metric):
        kind = {"box": "box", "mask": "mask", "voc07": "VOC07"}[m[1]]
        return f"{kind} AP{m[2] or ''}"
    return metric


def protocol_text(task: str, metric: str, protocol: dict[str, Any], metrics: dict[str, Any]) -> str:
    """A one-line protocol, e.g. ``kNN k=20 T=0.07 cosine, Fashion-MNIST test (10000 images)
    against a train bank (60000 images), frozen backbone features``."""
    if task in ("knn", "fashion_mnist knn"):
        return _knn(metric, protocol)
    if task == "linear":
        return _linear(protocol, metrics)
    if task == "lowshot":
        return _lowshot(metric, protocol, metrics)
    if task.endswith("_det"):
        return _detection(metric, protocol)
    return _generic(protocol)


def _knn(metric: str, p: dict[str, Any]) -> str:
    m = re.search(r"top1_k(\d+)$", metric)
    k = m[1] if m else p.get("k", "?")
    t = p.get("t", "?")
    similarity = p.get("similarity", "cosine")
    text = f"kNN k={k} T={t} {similarity}, {_split(p.get('queries'), 'test')}"
    if p.get("bank"):
        text += f" against a {_split(p['bank'], 'train')} bank"
    features = "frozen backbone features"
    if metric.startswith(BASELINE):
        features = "normalized, flattened pixels instead of features"
    elif p.get("eval_crop"):
        features += f", {p['eval_crop']}"
    return f"{text}, {features}"


def _linear(p: dict[str, Any], metrics: dict[str, Any]) -> str:
    grid = p.get("grid") if isinstance(p.get("grid"), dict) else {}
    parts = ["linear head on frozen backbone features"]
    if p.get("protocol"):
        parts.append(f"{p['protocol']} protocol")
    if grid.get("epochs"):
        parts.append(f"{grid['epochs']} ep")
    parts += _choice(metrics, "")
    if p.get("selection"):
        parts.append(f"chosen by {p['selection']}")
    parts.append(_split(p.get("test_split"), "test"))
    return ", ".join(parts)


def _lowshot(metric: str, p: dict[str, Any], metrics: dict[str, Any]) -> str:
    pct = metric.removeprefix("top1_")
    subsets = p.get("subsets") if isinstance(p.get("subsets"), dict) else {}
    subset = subsets.get(pct) if isinstance(subsets.get(pct), dict) else {}
    parts = [f"linear head on frozen backbone features, trained on a {pct.replace('pct', '%')} "]
    if subset.get("size"):
        parts[0] += f"labelled subset ({subset['size']} images"
        parts[0] += f", {subset['epochs']} ep)" if subset.get("epochs") else ")"
    else:
        parts[0] += "labelled subset"
    parts += _choice(metrics, f"_{pct}")
    parts.append(_split(p.get("test_split"), "test"))
    return ", ".join(parts)


def _choice(metrics: dict[str, Any], suffix: str) -> list[str]:
    lr, bn = metrics.get(f"best_lr{suffix}"), metrics.get(f"best_bn{suffix}")
    if not _is_number(lr):
        return []
    return [f"lr {lr:g}" + (" with BN" if bn is True else "")]


def _detection(metric: str, p: dict[str, Any]) -> str:
    schedule = p.get("schedule") if isinstance(p.get("schedule"), dict) else {}
    arch = p.get("architecture", "detector")
    engine = f" ({p['engine']})" if p.get("engine") else ""
    parts = [f"{arch}{engine} fine-tuned end to end"]
    if schedule.get("iters"):
        parts.append(f"{schedule['iters']} iters")
    if p.get("train_images") and p.get("test_images"):
        parts.append(f"{p['train_images']} train / {p['test_images']} test images")
    kind = "VOC07 11-point AP" if metric.startswith("voc07") else "COCO-style AP (pycocotools)"
    parts.append(kind)
    return ", ".join(parts)


def _generic(p: dict[str, Any]) -> str:
    parts = [
        f"{k.replace('_', ' ')}: {v}"
        for k, v in p.items()
        if isinstance(v, str | int | float) and not _looks_like_path(v)
    ]
    return "; ".join(parts) or "protocol not recorded"


def _split(text: Any, default: str) -> str:
    """``fashion_mnist test (10000 images) from /data/x`` -> ``Fashion-MNIST test (10000
    images)``: the dataset's name, no local path."""
    if not isinstance(text, str) or not text:
        return default
    text = re.sub(r"\s+from\s+/\S*$", "", text)
    for name, label in DATASET_NAMES.items():
        text = re.sub(rf"\b{name}\b", label, text)
    return re.sub(r"\((\d+)\)", r"(\1 images)", text)


def _dataset(task: str, p: dict[str, Any]) -> str | None:
    """The Hub-known dataset a classification row was measured on, else None."""
    if task.endswith("_det"):
        return None
    dataset = p.get("dataset") if isinstance(p.get("dataset"), str) else None
    if dataset is None and task.startswith("fashion_mnist"):
        dataset = "fashion_mnist"
    return dataset if dataset in DATASET_NAMES else None


def _link(result: dict[str, Any], method: str) -> str:
    """A Markdown link to the result's record, else its source (the authors' repository)."""
    record = result.get("record")
    if isinstance(record, str) and record:
        return f"[{record.rsplit('/', 1)[-1]}]({record})"
    source = cell(result.get("source") or "not recorded")
    pub = paper(method)
    if source.startswith("reported") and pub is not None:
        return f"[{source}]({pub.code})"
    return source


def _looks_like_path(value: Any) -> bool:
    return isinstance(value, str) and (value.startswith(("/", "~")) or "\\" in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cell(value: Any) -> str:
    """A table cell's text: never empty, no ``|`` or newline that would break the row."""
    text = re.sub(r"\s+", " ", str(value)).replace("|", "\\|").strip()
    return text or "n/a"


def attach_records(encoder: Any, row: Any, results_dir: Path, prefix: str = "results") -> Any:
    """Add to ``encoder``'s ``ssl.results`` (what its card shows) and to its zoo ``row`` the
    transfer records measured on exactly these weights (:func:`records_for` with the
    encoder's ``weights_sha256``); returns the updated row."""
    import dataclasses

    from hub.encoder import weights_sha256

    found = records_for(results_dir, weights_sha256(encoder), prefix)
    ssl = encoder.config.setdefault("ssl", {})
    ssl["results"] = [*(ssl.get("results") or []), *found]
    return dataclasses.replace(row, results=(*row.results, *found))
