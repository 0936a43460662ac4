"""A card's results are those measured on its very weights (the records' ``weights_sha256``),
never those of another model whose folder has the same name, and not lost when the folder is
renamed; the run's own baselines (random init, raw pixels from summary.json) stand beside the
trained number."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch

from hub import publish
from hub.card_results import records_for
from hub.encoder import Encoder, weights_sha256
from pretrain.hooks import write_encoder
from pretrain.methods import build_method
from tests.conftest import tiny_config
from transfer import run as transfer_run
from transfer.models import load_model


def _run_dir(path: Path, root: Path, seed: int) -> Path:
    """A pretraining run directory as a run leaves it: checkpoints/last.pt and encoder/."""
    cfg = tiny_config(root)
    torch.manual_seed(seed)
    state = {"model": build_method(cfg).state_dict(), "config": cfg.to_dict(), "step": 4}
    state["epoch"] = 0.5
    (path / "checkpoints").mkdir(parents=True)
    torch.save(state, path / "checkpoints" / "last.pt")
    write_encoder(state, path)
    return path


def _knn(model: Path, data: Path, tmp_path: Path) -> dict:
    (record,) = transfer_run.main(
        ["--task", "knn", "--model", str(model), f"data_root={data}", "ks=(20,)"]
        + ["--results-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path / "w")]
    )
    return record


def _linked_records(card: str) -> list[str]:
    return sorted(set(re.findall(r"\]\((results/knn/[^)]+\.json)\)", card)))


def test_results_follow_the_weights_not_the_folder_name(tmp_path: Path, tiny_fmnist) -> None:
    first = _run_dir(tmp_path / "a" / "ref", tiny_fmnist, seed=1)
    second = _run_dir(tmp_path / "b" / "ref", tiny_fmnist, seed=2)  # another model, same name
    record = _knn(first, tiny_fmnist, tmp_path)
    assert record["model"]["id"] == "ref"
    identity = weights_sha256(Encoder.from_pretrained(first / "encoder"))
    assert record["pretrain"]["weights_sha256"] == identity
    assert load_model(str(second)).pretrain["weights_sha256"] != identity
    copy = shutil.copytree(first / "encoder", tmp_path / "elsewhere" / "my-encoder")
    renamed_record = _knn(copy, tiny_fmnist, tmp_path)  # the same weights under another name
    assert renamed_record["model"]["id"] == "my-encoder"
    assert renamed_record["pretrain"]["weights_sha256"] == identity

    results = tmp_path / "results"
    out = {}
    for name, run in (("first", first), ("second", second)):
        out[name] = tmp_path / "out" / name
        publish.main([str(run), "--out", str(out[name]), "--results", str(results)])
    expected = sorted(f"results/knn/{r['run_id']}.json" for r in (record, renamed_record))
    first_card = (out["first"] / "README.md").read_text()
    assert _linked_records(first_card) == expected
    assert all((out["first"] / p).is_file() for p in expected)  # copied beside the card
    second_card = (out["second"] / "README.md").read_text()
    assert _linked_records(second_card) == []  # the other "ref" measured nothing
    assert "No transfer results are recorded" in second_card

    # The run directory renamed after its transfer runs: its results stay attached.
    moved = shutil.move(first, tmp_path / "a" / "final-name")
    publish.main([str(moved), "--out", str(tmp_path / "out" / "moved"), "--results", str(results)])
    assert _linked_records((tmp_path / "out" / "moved" / "README.md").read_text()) == expected


def test_records_without_the_identity_or_of_a_random_init_match_nothing(tmp_path: Path) -> None:
    identity = "ab" * 32
    knn = tmp_path / "knn"
    knn.mkdir()
    metrics = {"top1_k20": 50.0}
    base = {"task": "knn", "model": {"id": "ref", "kind": "run_dir"}, "metrics": metrics}
    (knn / "named.json").write_text(json.dumps({**base, "pretrain": {}}))  # an older record
    (knn / "random.json").write_text(
        json.dumps({**base, "pretrain": {"weights_sha256": identity, "random_init": True}})
    )
    (knn / "ours.json").write_text(json.dumps({**base, "pretrain": {"weights_sha256": identity}}))
    (knn / "ours").mkdir()
    (knn / "ours" / "predictions.json").write_text("[1, 2]")  # a record's artifact: no record
    found = records_for(tmp_path, identity)
    assert [r["record"] for r in found] == ["results/knn/ours.json"]
    assert found[0]["metrics"] == metrics


def test_summary_baselines_stand_beside_the_trained_number(tmp_path: Path, tiny_fmnist) -> None:
    """summary.json as a run writes it (pretrain.evaluate.final_knn_report): the trained
    backbone's kNN, the same network at its initial weights and raw pixels, one row."""
    from pretrain.evaluate import final_knn_report

    run = _run_dir(tmp_path / "run", tiny_fmnist, seed=3)
    cfg = tiny_config(tiny_fmnist, "eval.knn_k=5")
    torch.manual_seed(4)
    report = final_knn_report(build_method(cfg), cfg, torch.device("cpu"))
    (run / "summary.json").write_text(json.dumps({"knn_eval": report}))
    publish.main([str(run), "--out", str(tmp_path / "out"), "--results", str(tmp_path / "none")])
    card = (tmp_path / "out" / "README.md").read_text()
    head = "| task | metric | value | random init (same run) | raw pixels (same run) |"
    assert card.count(head) == 1
    row = next(line for line in card.splitlines() if line.startswith("| kNN (end of"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    knn = report["knn_top1"]
    assert cells[2:5] == [f"{knn[k]:.2f}" for k in ("trained", "random_init", "raw_pixels")]
    assert cells[6] == "[summary.json](results/summary.json)"
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    (result,) = config["ssl"]["results"]
    assert result["metrics"] == {
        "top1": round(knn["trained"], 2),
        "random_init_top1": round(knn["random_init"], 2),
        "raw_pixels_top1": round(knn["raw_pixels"], 2),
    }
