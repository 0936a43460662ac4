"""Sweeps (``experiments/sweep.py``): the points and their lr rule, resumability, and a batch-size
sweep as one job array on the real dev Slurm cluster, interrupted and completed."""

from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from experiments import sweep, sweep_plan
from leaderboards.build import build
from pretrain.config import ConfigError, load_config

BATCH = sweep_plan.BATCH_KEY

TINY_SWEEP = [
    "model.width=8",
    "method.proj_dim=32",
    "method.proj_hidden_dim=32",
    "method.pred_hidden_dim=8",
    "train.epochs=1",
    "train.precision='fp32'",
    "train.threads=1",
    "train.log_every=2",
    "train.ckpt_every=2",
    "monitor.every=2",
    "monitor.knn_every_epochs=0",
    "data.num_workers=0",
    "eval.final_knn=false",
]


def cli(root: Path, folder: Path, results: Path, *extra: str) -> list[str]:
    return [
        "--recipe", "simsiam_resnet18_fmnist", "--transfer", "knn",
        "--sweep-dir", str(folder), "--results-dir", str(results),
        *extra, *TINY_SWEEP, f"data.root={root}",
    ]  # fmt: skip


def records(results: Path, task: str) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((results / task).glob("*.json"))}


# ------------------------------------------------------------------------------ the points


def test_points_are_the_product_of_the_axes_for_each_recipe():
    spec = sweep_plan.SweepSpec(
        "s", ["a", "b"], {"train.batch_size": ["64", "128"], "optim.base_lr": ["0.1", "0.2"]}
    )
    points = spec.points()
    assert len(points) == 8 and len({p.slug for p in points}) == 8
    assert points[0].slug == "a-batch_size-64-base_lr-0.1"
    assert spec.axis_name() == "recipe,train.batch_size,optim.base_lr"


@pytest.mark.parametrize(
    ("per_process", "micro", "accum"), [(256, 0, 1), (256, 256, 1), (256, 100, 4), (96, 40, 3)]
)
def test_accumulation_uses_the_fewest_even_micro_batches(per_process, micro, accum):
    assert sweep_plan.accum_steps_for(per_process, micro) == accum
    assert per_process % accum == 0 and (micro == 0 or per_process // accum <= micro)


@pytest.mark.parametrize("scaling", ["linear", "sqrt"])
def test_lr_rule_per_batch_size(scaling):
    """Linear: lr = base × B/256 (SimSiam Table 2); sqrt: base × √(B/256)."""
    spec = sweep_plan.SweepSpec(
        "s", ["simsiam_resnet18_fmnist"], {"train.batch_size": ["64", "1024"]}
    )
    spec.lr_scaling = scaling
    base = load_config("simsiam_resnet18_fmnist").optim.base_lr
    for point in spec.points():
        cfg = load_config(point.recipe, sweep_plan.point_overrides(spec, point, world_size=1))
        batch = cfg.train.batch_size
        expected = base * (batch / 256 if scaling == "linear" else math.sqrt(batch / 256))
        assert cfg.init_lr == pytest.approx(expected)
        # the recipe's large-batch warmup (SimSiam §4.2: from batch 1024)
        assert (cfg.warmup_epochs > 0) == (batch >= 1024)


def test_a_batch_that_does_not_fit_becomes_gradient_accumulation():
    spec = sweep_plan.SweepSpec(
        "s", ["simsiam_resnet18_fmnist"], {"train.batch_size": ["512"]}, micro_batch=128
    )
    (point,) = spec.points()
    cfg = load_config(point.recipe, sweep_plan.point_overrides(spec, point, world_size=2))
    assert cfg.train.accum_steps == 2  # 256 per process, at most 128 per forward


def test_bad_sweeps_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(sweep_plan.SweepError, match="nothing to sweep"):
        sweep.main(["--recipe", "simsiam_resnet18_fmnist", "--sweep-dir", str(tmp_path)])
    with pytest.raises(sweep_plan.SweepError, match="positive integers"):
        sweep.main(["--recipe", "simsiam_resnet18_fmnist", "--batch-sizes", "64,big"])
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        sweep.main(["--recipe", "simsiam_resnet18_fmnist", "--batch-sizes", "64",
                    "--transfer", "nope"])  # fmt: skip
    with pytest.raises(sweep_plan.SweepError, match="linear.*epochs|epochs"):
        sweep.main(["--recipe", "simsiam_resnet18_fmnist", "--batch-sizes", "64",
                    "--transfer", "linear", "--transfer-opt", "linear:epochs=many"])  # fmt: skip
    with pytest.raises(sweep_plan.SweepError, match="TASK:KEY=VALUE"):
        sweep.main(["--recipe", "simsiam_resnet18_fmnist", "--batch-sizes", "64",
                    "--transfer", "knn", "--transfer-opt", "linear:epochs=2"])  # fmt: skip
    with pytest.raises(ConfigError, match="optim.no_such_key"):
        sweep.main(["--recipe", "simsiam_resnet18_fmnist", "--set", "optim.no_such_key=1,2",
                    "--sweep-dir", str(tmp_path / "s")])  # fmt: skip
    assert not list(tmp_path.rglob("point.json"))


# ------------------------------------------------------------------------------ in process


def test_in_process_sweep_writes_records_and_resumes_only_what_is_missing(tiny_fmnist, tmp_path):
    folder, results = tmp_path / "sweep", tmp_path / "results"
    args = cli(tiny_fmnist, folder, results, "--batch-sizes", "32,64")
    first = sweep.main(args)
    assert first["submitted"] == ["batch_size-32", "batch_size-64"]
    pre, knn = records(results, "pretrain"), records(results, "knn")
    assert len(pre) == 2 and len(knn) == 2
    by_batch = {r["sweep"]["value"]: r for r in pre.values()}
    assert sorted(by_batch) == [32, 64]
    r = by_batch[64]
    assert r["sweep"]["axis"] == "train.batch_size" and r["sweep"]["values"] == [32, 64]
    assert r["protocol"]["batch_size"] == 64 and r["protocol"]["steps"] == 512 // 64
    assert r["protocol"]["lr"] == pytest.approx(0.1 * 64 / 256)
    assert {k["sweep"]["point"] for k in knn.values()} == {"batch_size-32", "batch_size-64"}

    again = sweep.main(args)  # nothing left to do
    assert again["submitted"] == [] and sorted(again["done"]) == sorted(first["submitted"])

    # an interrupted point: its kNN record and done-marker never got written
    point = folder / "batch_size-64"
    progress = json.loads((point / sweep_plan.PROGRESS).read_text())
    Path(progress.pop("knn")).unlink()
    (point / sweep_plan.PROGRESS).write_text(json.dumps(progress))
    (point / sweep_plan.DONE).unlink()
    kept = {p: p.stat().st_mtime_ns for p in results.rglob("*.json")}
    third = sweep.main(args)
    assert third["submitted"] == ["batch_size-64"] and third["done"] == ["batch_size-32"]
    assert len(records(results, "pretrain")) == 2  # the pretraining was not redone
    assert len(records(results, "knn")) == 2
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # nothing rewritten


def test_another_sweep_in_the_same_folder_is_refused(tiny_fmnist, tmp_path):
    folder, results = tmp_path / "sweep", tmp_path / "results"
    sweep_plan.plan(
        sweep.spec_from_args(
            sweep.parse_args(cli(tiny_fmnist, folder, results, "--batch-sizes", "32"))
        ),
        folder,  # fmt: skip
    )
    with pytest.raises(sweep_plan.SweepError, match="train.batch_size.*another --name"):
        sweep.main(cli(tiny_fmnist, folder, results, "--batch-sizes", "64"))


# ------------------------------------------------------------------------------ on Slurm


def squeue(job_ids: list[str]) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True, text=True
    ).stdout
    return [line for line in out.split() if line]


@pytest.mark.slurm
def test_batch_size_sweep_as_one_slurm_array_interrupted_and_completed(
    slurm_cluster, tiny_fmnist, tmp_path
):
    folder, results = tmp_path / "sweep", tmp_path / "results"
    args = cli(
        tiny_fmnist, folder, results, "--batch-sizes", "16,32,64,128",
        "--slurm", "cpu", "--partition", "debug", "--cpus", "1", "--mem", "1G", "--time", "10",
        "--parallelism", "1",
    )  # fmt: skip
    first = sweep.main([*args, "--no-wait"])
    ids = first["job_ids"]
    assert len(ids) == 4 and len({i.split("_")[0] for i in ids}) == 1  # one job array
    script = next((folder / "submitit").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-3%1" in script

    # interrupt the sweep once its first point is done: cancel the whole array
    deadline = time.time() + 240
    while not sweep_plan.is_done(folder / "batch_size-16"):
        assert time.time() < deadline, (folder / "submitit").rglob("*.err")
        time.sleep(0.5)
    subprocess.run(["scancel", ids[0].split("_")[0]], check=True)
    while squeue(ids):
        time.sleep(0.5)
    done_before = [
        p for p in ("16", "32", "64", "128") if sweep_plan.is_done(folder / f"batch_size-{p}")
    ]
    assert "16" in done_before and len(done_before) < 4
    kept = {p: p.read_bytes() for p in results.rglob("*.json")}

    second = sweep.main(args)  # the same command resumes: only the missing points run
    missing = [f"batch_size-{b}" for b in ("16", "32", "64", "128") if b not in done_before]
    assert second["submitted"] == missing
    assert sorted(second["done"]) == sorted(f"batch_size-{b}" for b in done_before)
    assert all(sweep_plan.is_done(folder / p) for p in missing)

    pre, knn = records(results, "pretrain"), records(results, "knn")
    assert sorted(r["sweep"]["value"] for r in pre.values()) == [16, 32, 64, 128]
    assert sorted(r["sweep"]["value"] for r in knn.values()) == [16, 32, 64, 128]
    assert all(p.read_bytes() == b for p, b in kept.items())  # done points untouched
    assert all(r["hardware"]["device"] and r["finished_at"] for r in pre.values())
    assert {r["protocol"]["steps"] for r in pre.values()} == {512 // b for b in (16, 32, 64, 128)}

    # ... and the leaderboard build renders the sweep: one row per batch size, with its kNN
    built = build(results, tmp_path / "boards")
    assert not built.flagged
    page = (tmp_path / "boards" / "batch_size_sweep.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith(("| 16 |", "| 32 |", "| 64 |",
                                                                    "| 128 |"))]  # fmt: skip
    assert len(rows) == 4
    for r in knn.values():
        assert f"{r['metrics']['top1_k20']:.1f}" in next(
            row for row in rows if row.startswith(f"| {r['sweep']['value']} |")
        )
    assert (tmp_path / "boards" / "batch_size_sweep.png").stat().st_size > 0


def test_two_swept_keys_run_their_product_and_render(tiny_fmnist, tmp_path):
    folder, results = tmp_path / "sweep", tmp_path / "results"
    args = cli(tiny_fmnist, folder, results, "--batch-sizes", "32,64", "--set",
               "optim.base_lr=0.05,0.2")  # fmt: skip
    report = sweep.main(args)
    assert len(report["submitted"]) == 4
    pre = records(results, "pretrain")
    seen = {(r["protocol"]["batch_size"], r["protocol"]["base_lr"]) for r in pre.values()}
    assert seen == {(32, 0.05), (32, 0.2), (64, 0.05), (64, 0.2)}
    r = next(iter(pre.values()))
    assert r["sweep"]["axis"] == "train.batch_size,optim.base_lr"
    assert r["sweep"]["value"] in r["sweep"]["values"] and len(r["sweep"]["values"]) == 4
    built = build(results, tmp_path / "boards")
    assert not built.flagged
    rows = "".join(p.read_text() for p in (tmp_path / "boards" / "rows").glob("sweep-*.md"))
    assert all(f"results/pretrain/{name}" in rows for name in pre)  # every point: its row page


def test_local_submitit_sweep_runs_each_point_as_a_job(tiny_fmnist, tmp_path):
    """``--cluster local``: the same job objects as on Slurm, as subprocesses of this machine."""
    folder, results = tmp_path / "sweep", tmp_path / "results"
    report = sweep.main(
        cli(
            tiny_fmnist,
            folder,
            results,
            "--batch-sizes",
            "32,64",
            "--cluster",
            "local",
            "--parallelism",
            "2",
            "--cpus",
            "1",
            "--time",
            "10",
        )  # fmt: skip
    )
    assert sorted(report["results"]) == ["batch_size-32", "batch_size-64"]
    assert len(list((folder / "submitit").rglob("*_result.pkl"))) == 2  # two submitit jobs
    assert sorted(r["sweep"]["value"] for r in records(results, "knn").values()) == [32, 64]


# ------------------------------------------------------------------------------ identity


def test_sweep_id_is_the_whole_spec():
    """Name + hash of the canonical spec: the length, an override or the lr rule make another
    sweep; the order of the shared overrides and a repeated key's earlier value do not."""
    base = sweep_plan.SweepSpec("s", ["simsiam_resnet18_fmnist"], {BATCH: ["32", "64"]})
    assert base.sweep_id().startswith("s-") and len(base.sweep_id()) == len("s-") + 8
    ids = {
        base.sweep_id(),
        replace(base, overrides=["train.max_steps=20"]).sweep_id(),
        replace(base, overrides=["train.epochs=1"]).sweep_id(),
        replace(base, axes={BATCH: ["32", "128"]}).sweep_id(),
        replace(base, lr_scaling="sqrt").sweep_id(),
        replace(base, name="mine").sweep_id(),
    }
    assert len(ids) == 6
    assert base.sweep_id() == sweep_plan.SweepSpec(**asdict(base)).sweep_id()  # stable
    a = replace(base, overrides=["train.max_steps=4", "optim.base_lr=0.1"])
    b = replace(base, overrides=["optim.base_lr=0.2", "optim.base_lr=0.1", "train.max_steps=4"])
    assert a.sweep_id() == b.sweep_id()


def test_two_sweeps_of_different_lengths_stay_apart_and_each_resumes(
    tiny_fmnist, tmp_path, monkeypatch
):
    """The default sweep name for both: each gets its own id, folder and board table; the
    same command again resumes its own sweep (nothing runs)."""
    monkeypatch.chdir(tmp_path)  # the default folder runs/sweeps/<id> lands here
    results = tmp_path / "results"

    def args(steps: int) -> list[str]:
        return [
            "--recipe", "simsiam_resnet18_fmnist", "--transfer", "knn", "--batch-sizes", "32,64",
            "--results-dir", str(results), *TINY_SWEEP, f"train.max_steps={steps}",
            f"data.root={tiny_fmnist}",
        ]  # fmt: skip

    first = sweep.main(args(2))
    second = sweep.main(args(3))
    assert len(first["submitted"]) == 2 and len(second["submitted"]) == 2
    pre = records(results, "pretrain")
    ids = {r["sweep"]["id"] for r in pre.values()}
    assert len(ids) == 2 and all(i.startswith("simsiam_resnet18_fmnist-batch_size-") for i in ids)
    for r in pre.values():
        steps = r["protocol"]["steps"]
        assert r["pretrain"]["trained"] == {
            "steps": steps,
            "epochs": pytest.approx(steps / (512 // r["protocol"]["batch_size"])),
            "stopped_early": True,
        }
    assert sorted(p.name for p in (tmp_path / "runs" / "sweeps").iterdir()) == sorted(ids)

    built = build(results, tmp_path / "boards")
    assert not built.flagged
    page = (tmp_path / "boards" / "batch_size_sweep.md").read_text()
    for sweep_id in ids:
        assert page.count(f"sweep `{sweep_id}`") == 1
    sections = page.split("### `train.batch_size`, sweep ")[1:]
    assert len(sections) == 2
    for section in sections:  # each table: its two points, with its own step count
        rows = [line for line in section.splitlines() if line.startswith(("| 32 |", "| 64 |"))]
        assert len(rows) == 2
        steps = {row.split(" | ")[3] for row in rows}
        assert len(steps) == 1 and steps <= {"2", "3"}

    again = sweep.main(args(2))
    assert again["submitted"] == [] and sorted(again["done"]) == sorted(first["submitted"])
    assert len(records(results, "pretrain")) == 4
