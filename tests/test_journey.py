"""The chained journeys of the README, run as a user runs them: one command after another, each a
real process, down to the generated pages.

1. pretrain a tiny run (stopped early) → publish it → ``transfer/run.py`` with every task
   (knn, linear, lowshot, fmnist_det, and voc_det / coco_det on tiny trees in the official
   layouts) → ``leaderboards/build.py --strict``: exit 0, every record rendered, the trained
   length (not the configured one) on every board and in the model card → publish again: the
   card lists and links (copied beside it) exactly the records measured on these weights, by
   their ``weights_sha256``; neither lost because the run and the folder have different
   names, nor mixed with the record of another model whose folder has the same name.
2. two tiny 2-point batch-size sweeps of the same recipe and different lengths →
   ``leaderboards/build.py --strict``: each point is its own row, the two sweeps never merge.
3. ``experiments/ablate.py --matrix explanations`` (the alternation and a DINO ablation) →
   ``leaderboards/build.py --strict``: the explanations page with DINO's failure modes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from hub.encoder import Encoder, weights_sha256
from tests.conftest import TINY
from tests.journey_cli import ROOT, cli
from tests.trees import write_coco_tree, write_voc_tree
from transfer import run as transfer_run

TASKS = ("knn", "linear", "lowshot", "fmnist_det", "voc_det", "coco_det")
STEPS = 6  # of the tiny recipe's 16: the run stops early


def records(results: Path) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for path in sorted(results.glob("*/*.json")):
        found.setdefault(path.parent.name, []).append(json.loads(path.read_text()))
    return found


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_pretrain_publish_transfer_every_task_and_build_the_boards(tiny_fmnist, tmp_path):
    run, encoder, results = tmp_path / "run", tmp_path / "encoder", tmp_path / "results"
    cli("pretrain/run.py", "--run-dir", run, *TINY, f"data.root={tiny_fmnist}",
        f"train.max_steps={STEPS}", "train.threads=1", "eval.final_knn=false")  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert summary["trained"] == {
        "steps": STEPS,
        "epochs": pytest.approx(STEPS / 8),
        "stopped_early": True,
    }

    cli("hub/publish.py", run, "--out", encoder, "--results", results)
    assert json.loads((encoder / "config.json").read_text())["ssl"]["method"] == "simsiam"

    voc, coco = write_voc_tree(tmp_path / "voc"), write_coco_tree(tmp_path / "coco")
    det = ["--iters", "2", "--short-side", "64"]
    options = {
        "knn": [f"data_root={tiny_fmnist}"],
        "linear": [f"data_root={tiny_fmnist}", "epochs=3", "lrs=(0.3,)"],
        "lowshot": [f"data_root={tiny_fmnist}", "steps=5"],
        "fmnist_det": [
            *det,
            f"fmnist_root={tiny_fmnist}",
            "n_train=8",
            "n_test=4",
            f"data_dir={tmp_path / 'fmnist_det'}",
        ],  # fmt: skip
        "voc_det": [*det, f"data_root={voc}"],
        "coco_det": [*det, f"data_root={coco}"],
    }
    for task in TASKS:
        cli("transfer/run.py", "--task", task, "--model", encoder, "--results-dir", results,
            "--work-dir", tmp_path / "work", "--threads", "1", *options[task])  # fmt: skip
    written = records(results)
    assert sorted(written) == sorted(TASKS)
    for task, [record] in written.items():
        assert record["pretrain"]["trained"]["steps"] == STEPS, task
        for artifact in record.get("artifacts", []):  # the predictions it was computed from
            assert (results / task / artifact["path"]).is_file(), (task, artifact)
    assert written["voc_det"][0]["artifacts"] and written["coco_det"][0]["artifacts"]

    boards = tmp_path / "boards"
    built = cli("leaderboards/build.py", "--strict", "--results", results, "--out", boards)
    assert "not rendered" not in built.stderr
    for task in TASKS:
        page = (boards / f"{task}.md").read_text()
        assert f"{STEPS} steps" in page, task  # the trained length, not "2 ep"
        assert "2 ep" not in page, task

    # Another model whose folder is also named "encoder", measured into the same results (in
    # this process: it only sets the scene): its record carries the same model id as ours,
    # only its weights differ.
    other = tmp_path / "other" / "encoder"
    published = Encoder.from_pretrained(encoder)
    torch.manual_seed(1)
    Encoder.from_spec(published.spec, ssl=published.ssl).save_pretrained(other)
    transfer_run.main(["--task", "knn", "--model", str(other), "--results-dir", str(results),
                       "--work-dir", str(tmp_path / "work"), *options["knn"]])  # fmt: skip
    identity = weights_sha256(published)
    written = records(results)
    (decoy,) = [r for r in written["knn"] if r["pretrain"]["weights_sha256"] != identity]
    assert decoy["model"]["id"] == written["voc_det"][0]["model"]["id"] == encoder.name

    cli("hub/publish.py", run, "--out", encoder, "--results", results)  # now with results
    card = (encoder / "README.md").read_text()
    assert f"{STEPS} steps" in card and "None" not in card
    # The card lists the records measured on these very weights (the records' weights_sha256),
    # each copied beside it and linked: not the other "encoder"'s record, and not lost because
    # the run ("run") and the folder ("encoder") have different names.
    measured = {
        f"results/{path.relative_to(results).as_posix()}": json.loads(path.read_text())
        for path in sorted(results.glob("*/*.json"))
    }
    ours = {link for link, r in measured.items() if r["pretrain"]["weights_sha256"] == identity}
    assert sorted(measured[link]["task"] for link in ours) == sorted(TASKS)
    linked = re.findall(r"\[[^]]+\.json\]\((results/[^)]+\.json)\)", card)
    assert set(linked) == ours
    for link in ours:
        copied = (encoder / link).read_bytes()
        assert copied == (results / link.removeprefix("results/")).read_bytes(), link
        metrics = measured[link]["metrics"].values()
        values = {f"{round(float(v), 2):.2f}" for v in metrics if _number(v)}
        rows = [line.split(" | ") for line in card.splitlines() if f"]({link})" in line]
        assert rows and all(row[2] in values for row in rows), link  # its own numbers
    (decoy_link,) = set(measured) - ours
    assert decoy_link not in card and not (encoder / decoy_link).exists()


SWEEP = [
    "--recipe", "simsiam_resnet18_fmnist", "--transfer", "knn", "--batch-sizes", "32,64",
    "model.width=8", "method.proj_dim=32", "method.proj_hidden_dim=32",
    "method.pred_hidden_dim=8", "train.epochs=1", "train.precision='fp32'", "train.threads=1",
    "monitor.knn_every_epochs=0", "data.num_workers=0", "eval.final_knn=false",
]  # fmt: skip


def test_two_sweeps_of_one_recipe_become_their_own_rows_on_the_board(tiny_fmnist, tmp_path):
    """Both with the default sweep name and folder (runs/sweeps/<id> under the working
    directory), as the user who saw them merge ran them."""
    results, boards = tmp_path / "results", tmp_path / "boards"
    sweep = ROOT / "experiments" / "sweep.py"
    for steps in (2, 3, 2):  # the third command is the first again: it resumes, runs nothing
        cli(sweep, *SWEEP, f"train.max_steps={steps}", f"data.root={tiny_fmnist}",
            "--results-dir", results, cwd=tmp_path)  # fmt: skip
    pretrain = records(results)["pretrain"]
    assert len(pretrain) == 4 and len({r["sweep"]["id"] for r in pretrain}) == 2
    assert len(list((tmp_path / "runs" / "sweeps").iterdir())) == 2

    cli(ROOT / "leaderboards" / "build.py", "--strict", "--results", results, "--out", boards)
    page = (boards / "batch_size_sweep.md").read_text()
    sections = page.split("### `train.batch_size`, sweep ")[1:]
    assert len(sections) == 2, page  # one table per sweep
    for section in sections:  # each with its own two points
        rows = [line for line in section.splitlines() if line.startswith(("| 32 |", "| 64 |"))]
        assert len(rows) == 2, section
    assert "<br>" not in page  # no cell carries two runs' numbers


def test_the_explanations_matrix_becomes_the_explanations_board(tiny_fmnist, tmp_path):
    """``ablate.py --matrix explanations`` on a data folder of its own (512 images, not
    Fashion-MNIST's 60,000: the runs still take the steps asked for) → ``build.py --strict``:
    the alternation and a DINO ablation on the explanations page, DINO's failure-mode table
    and teacher plot, and both on the collapse-ablation page."""
    results, boards = tmp_path / "results", tmp_path / "boards"
    cli(ROOT / "experiments" / "ablate.py", "--matrix", "explanations",
        "--variants", "alternation_10,dino_no_sharpening", "--seeds", "0", "--steps", 3,
        "--data", tiny_fmnist, "--out", results / "ablation", "--work", tmp_path / "w")  # fmt: skip
    ablation = records(results)["ablation"]
    assert sorted(r["run_id"] for r in ablation) == [
        "dino-dino_no_sharpening-seed0-3steps",
        "simsiam-alternation_10-seed0-3steps",
    ]
    assert all(r["steps"] == 3 and r["curve"][-1]["step"] == 3 for r in ablation)

    cli(ROOT / "leaderboards" / "build.py", "--strict", "--results", results, "--out", boards)
    page = (boards / "explanations.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| `alternation_10` |"))
    assert "| control | 3 steps |" in row and "not run" not in row, row  # run, judged at 3 steps
    assert "of 1 seeds at 3 steps" in row  # what happened: its one seed's verdict
    assert "inconclusive at this scale" in row  # one seed decides nothing
    assert "**consistent**" not in row and "**inconsistent**" not in row
    assert "### DINO's failure modes" in page
    assert "| `dino_no_sharpening` | 0 | 3 |" in page
    assert (boards / "explanations_dino_teacher.png").stat().st_size > 10_000
    ablation_page = (boards / "collapse_ablation.md").read_text()
    assert "alternation_10" in ablation_page and "dino_no_sharpening" in ablation_page
