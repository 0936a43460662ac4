"""Sweeps: ``python pretrain/sweep.py --recipe NAME --batch-sizes 64,128,...,4096 [--lr-scaling
linear|sqrt] [--transfer knn,linear] [--slurm PRESET | --cluster local] [key=value ...]``.

One pretraining per point, each followed by the requested transfer tasks, every point writing
one ``pretrain`` result record and one record per transfer task (all carrying the sweep's
``sweep`` block, which ``leaderboards/build.py`` groups by). Axes: ``--batch-sizes`` (with the
recipe's lr rule: lr = base_lr × batch/256, SimSiam §4.2 / Table 2, or ``--lr-scaling sqrt``:
base_lr × √(batch/256); the recipe's large-batch warmup, ``optim.large_batch``), any config key
with ``--set key=v1,v2,...`` (lr, weight decay, τ, epochs ...; repeatable: the product), and
several recipes with ``--recipe a,b,c`` (methods side by side on the same budget).

Where the points run: here, one after the other (no flag); as one Slurm job array with at most
``--parallelism`` points at once (``--slurm PRESET``); or as submitit jobs on this machine
(``--cluster local``, ``--parallelism`` at a time). Each point is a ``SweepPointJob``: a
``PretrainJob`` (preemption → checkpoint → requeue → exact resume) that then runs its transfer
tasks on rank 0.

Identity: a sweep is its whole spec (recipes, swept keys and values, every override, the
length each recipe trains, lr rule, micro-batch, transfer tasks and options). Its id, which
every record carries and the boards group by, is ``<name>-<8 hex digits of the SHA-1 of the
canonical spec>`` (name: ``--name``, default recipe and swept keys): two different sweeps never
share rows, and the same command finds its own sweep again.

Resumable: the sweep lives in ``--sweep-dir`` (default ``runs/sweeps/<id>``). A point is
done when its ``point.json`` lists records that exist; re-running the same command skips done
points, leaves points whose Slurm jobs are still queued or running alone, and resubmits the
rest, which resume from their last checkpoint and skip the transfer tasks already recorded.
``--micro-batch N`` splits a batch that does not fit into gradient-accumulation steps of at most
N images per process (``train.accum_steps``), recorded in the results.

Options and ``key=value`` overrides (config keys of every point, e.g. ``train.epochs=5``) may
come in any order. Errors are one ``error:`` line (exit 2); Ctrl-C stops at once (exit 130)
and says which point was running; the same command resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cli import clear_position, make_parser, note_position, run_cli  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.progress import progress  # noqa: E402
from hub.provenance import git_sha, write_json_atomic  # noqa: E402
from pretrain.config import available_recipes, load_config  # noqa: E402
from pretrain.job import PretrainJob  # noqa: E402
from records.length import trained_from_epochs  # noqa: E402
from slurm.cli import add_cluster_arguments, resources_from_args  # noqa: E402
from slurm.presets import Resources  # noqa: E402

BATCH_KEY = "train.batch_size"
LR_SCALINGS = ("linear", "sqrt")
SPEC = "sweep.json"
DONE = "point.json"
PROGRESS = "sweep_progress.json"


class SweepError(UserError, ValueError):
    """A sweep that cannot run as asked (its message says what to change)."""


@dataclass(frozen=True)
class Point:
    """One pretraining of the sweep: a recipe and the values of the swept keys."""

    recipe: str
    settings: tuple[tuple[str, str], ...]  # (key, value as typed) per swept key
    recipe_swept: bool = False  # several recipes: the recipe is part of the point's name

    @property
    def slug(self) -> str:
        """A folder name, e.g. ``batch_size-256`` or ``byol_resnet18_fmnist``."""
        parts = [self.recipe] if self.recipe_swept else []
        parts += [f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in self.settings]
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(parts))


@dataclass
class SweepSpec:
    """What defines a sweep; stored in ``sweep.json`` so that a re-run can check it is the same."""

    name: str
    recipes: list[str]
    axes: dict[str, list[str]]  # key -> values, in the order given
    lr_scaling: str = "linear"
    transfer: list[str] = field(default_factory=list)
    transfer_overrides: list[str] = field(default_factory=list)  # "task:key=value"
    overrides: list[str] = field(default_factory=list)  # every point
    micro_batch: int = 0  # max images per process per forward; 0: the whole share

    def points(self) -> list[Point]:
        keys = list(self.axes)
        return [
            Point(recipe, tuple(zip(keys, combo, strict=True)), len(self.recipes) > 1)
            for recipe in self.recipes
            for combo in itertools.product(*(self.axes[k] for k in keys))
        ]

    def identity(self) -> dict[str, Any]:
        """The canonical spec without its name: overrides as sorted ``key: value`` (the last
        of a repeated key wins, as in the config), transfer tasks and options sorted, and the
        length each recipe trains with the shared overrides (``train.epochs``, ``max_steps``)."""
        lengths = {}
        for recipe in self.recipes:
            cfg = load_config(recipe, self.overrides)
            lengths[recipe] = {"epochs": cfg.train.epochs, "max_steps": cfg.train.max_steps}
        return {
            "recipes": list(self.recipes),
            "axes": {k: list(v) for k, v in self.axes.items()},
            "overrides": dict(sorted(_pairs(self.overrides).items())),
            "lengths": lengths,
            "lr_scaling": self.lr_scaling,
            "micro_batch": self.micro_batch,
            "transfer": sorted(self.transfer),
            "transfer_overrides": dict(sorted(_pairs(self.transfer_overrides).items())),
        }

    def sweep_id(self) -> str:
        """``<name>-<8 hex digits>``: the name and a hash of :meth:`identity`."""
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return f"{self.name}-{hashlib.sha1(canonical.encode('utf-8')).hexdigest()[:8]}"

    def axis_name(self) -> str:
        """What the sweep varies, for records and pages: ``train.batch_size``, ``recipe`` ..."""
        names = (["recipe"] if len(self.recipes) > 1 else []) + list(self.axes)
        return ",".join(names) or "recipe"


def _pairs(items: list[str]) -> dict[str, str]:
    """``key=value`` strings as a dict (the last of a repeated key wins)."""
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in items)


def accum_steps_for(per_process: int, micro_batch: int) -> int:
    """The fewest micro-batches of at most ``micro_batch`` images that split ``per_process``
    evenly (1 when it fits or no limit is set)."""
    if micro_batch <= 0 or per_process <= micro_batch:
        return 1
    for accum in range(math.ceil(per_process / micro_batch), per_process + 1):
        if per_process % accum == 0:
            return accum
    return per_process


def point_overrides(spec: SweepSpec, point: Point, world_size: int) -> list[str]:
    """The config overrides of ``point``: shared overrides, the point's values, then what the
    lr rule and the micro-batch limit derive from them."""
    overrides = [*spec.overrides, *(f"{k}={v}" for k, v in point.settings)]
    cfg = load_config(point.recipe, overrides)  # validates keys and types before anything runs
    batch = cfg.train.batch_size
    if spec.lr_scaling == "sqrt":
        # lr = base × √(B/256) written as the linear rule's base_lr' × B/256
        overrides.append(f"optim.base_lr={cfg.optim.base_lr * math.sqrt(256 / batch)!r}")
    if batch % world_size:
        raise SweepError(
            f"{BATCH_KEY}={batch} does not split over {world_size} processes; "
            f"pick batch sizes that are multiples of {world_size}"
        )
    accum = accum_steps_for(batch // world_size, spec.micro_batch)
    if accum > 1:
        overrides.append(f"train.accum_steps={accum}")
    return overrides


def sweep_block(spec: SweepSpec, point: Point, cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """The ``sweep`` field of every record of ``point``."""
    axis = spec.axis_name()

    def combo(p: Point) -> dict[str, Any]:  # several swept keys (or recipes and keys)
        named = {"recipe": p.recipe} if len(spec.recipes) > 1 else {}
        return {**named, **{k: _literal(v) for k, v in p.settings}}

    if axis == "recipe":
        value: Any = point.recipe
        all_values: list[Any] = list(spec.recipes)
    elif axis in spec.axes:  # one swept key: its typed value, as the config holds it
        value = _typed(cfg_dict, axis)
        all_values = [_literal(v) for v in spec.axes[axis]]
    else:
        value = combo(point)
        all_values = [combo(p) for p in spec.points()]
    return {
        "id": spec.sweep_id(),
        "axis": axis,
        "value": value,
        "values": all_values,
        "point": point.slug,
        "lr_scaling": spec.lr_scaling,
    }


def _typed(cfg_dict: dict[str, Any], key: str) -> Any:
    section, name = key.split(".", 1)
    return cfg_dict[section][name]


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip("'\"")


# ---------------------------------------------------------------------------------- the job


class SweepPointJob(PretrainJob):
    """A sweep point as one (Slurm) job: pretrain (resumable), then the transfer tasks on rank
    0, each writing its record once; ``point.json`` last, which marks the point done."""

    def __call__(  # type: ignore[override]
        self, config: dict[str, Any], run_dir: str, point: dict[str, Any]
    ) -> dict[str, Any] | None:
        summary = super().__call__(config, run_dir)
        if summary is None:  # not rank 0
            return None
        return finish_point(Path(run_dir), summary, point)


def finish_point(run: Path, summary: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """Write the point's pretraining record and run its transfer tasks (skipping those a
    previous attempt recorded), then ``point.json``; returns the point's result."""
    import torch

    from transfer import records
    from transfer.models import load_model
    from transfer.run import run_task
    from transfer.tasks import RunContext

    progress_path = run / PROGRESS
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else {}
    results_root = Path(point["results_dir"]) if point.get("results_dir") else None
    annotations = {"sweep": point["sweep"]}
    if "pretrain" not in progress:
        record = pretrain_record(run, summary, point)
        progress["pretrain"] = str(records.write_record(record, results_root))
        write_json_atomic(progress_path, progress)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = RunContext(
        seed=point.get("seed", 0), device=device, results_root=results_root, work_dir=run / "work"
    )
    model = None
    for task in point["transfer"]:
        if task in progress:
            continue
        if model is None:
            model = load_model(str(run))
            model = replace(model, model_id=f"{point['sweep']['id']}/{point['sweep']['point']}")
        overrides = task_overrides(task, point.get("transfer_overrides", []), summary["config"])
        record, path = run_task(task, model, overrides, ctx, annotations=annotations)
        progress[task] = str(path)
        write_json_atomic(progress_path, progress)
        print(f"[{point['sweep']['point']}] {task}: {record['metrics']}", flush=True)
    done = {"point": point["sweep"]["point"], "records": progress, "summary": summary["final"]}
    write_json_atomic(run / DONE, done)
    return done


def task_overrides(task: str, given: list[str], config: dict[str, Any]) -> list[str]:
    """``task:key=value`` options for ``task``; the pretraining data folder by default."""
    from transfer import tasks

    mine = [o.split(":", 1)[1] for o in given if o.split(":", 1)[0] == task]
    fields = tasks.get(task).Options.__dataclass_fields__
    given_root = any(o.startswith("data_root=") for o in mine)
    same_data = "dataset" in fields and config["data"]["dataset"] == fields["dataset"].default
    if "data_root" in fields and same_data and not given_root:
        mine.insert(0, f"data_root={config['data']['root']}")
    return mine


def pretrain_record(run: Path, summary: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The ``pretrain`` result record of a sweep point (``leaderboards/results/pretrain/``)."""
    from pretrain.config import from_dict
    from transfer import records

    cfg = from_dict(summary["config"])
    steps = summary["steps"]
    metrics = {k: v for k, v in summary["final"].items()}
    metrics["collapsed"] = bool(summary["collapsed"])
    metrics["train_seconds"] = summary["train_seconds"]
    metrics["images_per_second"] = (
        steps * cfg.train.batch_size / summary["train_seconds"] if summary["train_seconds"] else 0
    )
    if "knn_eval" in summary:
        metrics["final_knn"] = summary["knn_eval"]
    model_id = f"{point['sweep']['id']}/{point['sweep']['point']}"
    world = summary.get("world_size", 1)
    return {
        "run_id": records.run_id("pretrain", model_id, cfg.train.seed),
        "task": "pretrain",
        "model": {"id": model_id, "revision": None, "kind": "run_dir"},
        "pretrain": {
            "method": cfg.method.name,
            "recipe": cfg.recipe,
            "backbone": asdict(cfg.model),
            "epochs": cfg.train.epochs,  # configured: what the schedules span
            "trained_steps": steps,
            "trained_epochs": summary["epochs"],
            "trained": summary.get("trained")
            or trained_from_epochs(steps, summary["epochs"], cfg.train.epochs),
            "batch_size": cfg.train.batch_size,
            "dataset": cfg.data.dataset,
            "seed": cfg.train.seed,
            "source": f"sweep {point['sweep']['id']}, run directory {run.name}",
        },
        "protocol": {
            "recipe": cfg.recipe,
            "method": cfg.method.name,
            "batch_size": cfg.train.batch_size,
            "world_size": world,
            "accum_steps": cfg.train.accum_steps,
            "micro_batch": cfg.train.batch_size // world // cfg.train.accum_steps,
            "lr_scaling": point["sweep"]["lr_scaling"],
            "base_lr": cfg.optim.base_lr,
            "lr": cfg.init_lr,
            "warmup_epochs": cfg.warmup_epochs,
            "epochs": cfg.train.epochs,
            "steps": steps,
            "optimizer": cfg.optim.name,
            "overrides": point["overrides"],
        },
        "metrics": metrics,
        "sweep": point["sweep"],
        "seed": cfg.train.seed,
        "git_sha": git_sha(),
        "hardware": records.hardware(),
        "wall_seconds": summary.get("wall_seconds"),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "job": summary.get("job"),
    }


# ---------------------------------------------------------------------------------- driver


@dataclass
class Plan:
    """The points of a sweep and what each needs now."""

    spec: SweepSpec
    folder: Path
    todo: list[Point]
    done: list[Point]
    in_flight: list[Point]


def plan(spec: SweepSpec, folder: Path, active_jobs: set[str] | None = None) -> Plan:
    """Compare ``spec`` with the sweep folder: which points are done, in flight, or to run."""
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / SPEC
    if spec_path.exists():
        stored = json.loads(spec_path.read_text())
        now = asdict(spec)
        if stored["spec"] != now:
            diff = "; ".join(
                f"{k}: {stored['spec'].get(k)!r} there, {now.get(k)!r} now"
                for k in sorted(set(now) | set(stored["spec"]))
                if stored["spec"].get(k) != now.get(k)
            )
            raise SweepError(
                f"{folder} holds a different sweep ({diff}); re-run it with the same "
                "arguments to resume it, or give this one another --name or --sweep-dir"
            )
        jobs = stored.get("jobs", {})
    else:
        jobs = {}
        write_json_atomic(spec_path, {"spec": asdict(spec), "id": spec.sweep_id(), "jobs": jobs})
    todo, done, flying = [], [], []
    for point in spec.points():
        if is_done(folder / point.slug):
            done.append(point)
        elif active_jobs and jobs.get(point.slug) in active_jobs:
            flying.append(point)
        else:
            todo.append(point)
    return Plan(spec, folder, todo, done, flying)


def is_done(run: Path) -> bool:
    """A point is done when ``point.json`` exists and every record it lists exists."""
    marker = run / DONE
    if not marker.exists():
        return False
    listed = json.loads(marker.read_text())["records"]
    return all(Path(p).exists() for p in listed.values())


def remember_jobs(folder: Path, job_ids: dict[str, str]) -> None:
    stored = json.loads((folder / SPEC).read_text())
    stored["jobs"] = {**stored.get("jobs", {}), **job_ids}
    write_json_atomic(folder / SPEC, stored)


def active_slurm_jobs(folder: Path) -> set[str]:
    """The job ids of this sweep that Slurm still has queued or running."""
    spec_path = folder / SPEC
    if not spec_path.exists():
        return set()
    ids = set(json.loads(spec_path.read_text()).get("jobs", {}).values())
    if not ids:
        return set()
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(ids))],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {line.strip() for line in out.splitlines() if line.strip()} & ids


def point_args(
    spec: SweepSpec, point: Point, folder: Path, world: int, results_dir: Path | None, seed: int
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The (config, run dir, point) arguments of a ``SweepPointJob``."""
    overrides = point_overrides(spec, point, world)
    cfg = load_config(point.recipe, overrides).to_dict()
    info = {
        "sweep": sweep_block(spec, point, cfg),
        "transfer": spec.transfer,
        "transfer_overrides": spec.transfer_overrides,
        "overrides": overrides,
        "results_dir": str(results_dir.resolve()) if results_dir else None,
        "seed": seed,
    }
    return cfg, str((folder / point.slug).resolve()), info


def run_sweep(
    spec: SweepSpec,
    folder: Path,
    cluster: str | None = None,
    resources: Resources | None = None,
    parallelism: int = 1,
    results_dir: Path | None = None,
    wait: bool = True,
    max_requeues: int = 10,
) -> dict[str, Any]:
    """Run (or submit) the points that are not done; return what happened."""
    active = active_slurm_jobs(folder) if cluster == "slurm" else set()
    p = plan(spec, folder, active)
    world = resources.world_size if resources else 1
    # every point's config (and so every config error) before anything is submitted
    args = [point_args(spec, x, folder, world, results_dir, 0) for x in p.todo]
    print(
        f"sweep {spec.sweep_id()} ({spec.axis_name()}): {len(p.done)} done, "
        f"{len(p.in_flight)} queued or running, {len(p.todo)} to run -> {folder}",
        flush=True,
    )
    report: dict[str, Any] = {
        "done": [x.slug for x in p.done],
        "in_flight": [x.slug for x in p.in_flight],
        "submitted": [x.slug for x in p.todo],
        "results": {},
    }
    if not p.todo:
        return report
    points = spec.points()
    number = {x.slug: i for i, x in enumerate(points, start=1)}

    def at(point: Point, what: str = "point") -> str:
        return f"{what} {number[point.slug]}/{len(points)} ({point.slug})"

    if cluster is None:
        bar = progress(args, desc="sweep", unit="point")
        for point, (cfg, run_dir, info) in zip(p.todo, bar, strict=True):
            note_position(at(point))
            try:
                report["results"][point.slug] = SweepPointJob(max_requeues)(cfg, run_dir, info)
            except KeyboardInterrupt:
                note_position(at(point))  # the point, not the step inside it, is what resumes
                raise
        return report
    from slurm.submit import make_executor, submit_array

    assert resources is not None
    executor = make_executor(
        folder / "submitit", resources, cluster, f"sweep-{spec.name}", max_requeues,
        array_parallelism=parallelism if cluster == "slurm" else None,
    )  # fmt: skip
    columns = [list(c) for c in zip(*args, strict=True)]
    if cluster == "slurm":
        jobs = submit_array(
            executor, SweepPointJob(max_requeues), *columns, parallelism=parallelism
        )
        remember_jobs(folder, {x.slug: j.job_id for x, j in zip(p.todo, jobs, strict=True)})
        print(
            f"submitted job array {jobs[0].job_id.split('_')[0]} ({len(jobs)} points, at most "
            f"{parallelism} at once); follow with squeue; re-run this command to resume",
            flush=True,
        )
        if wait:
            for point, job in zip(p.todo, jobs, strict=True):
                note_position(f"{at(point, 'waiting for point')}, Slurm job {job.job_id}")
                report["results"][point.slug] = job.results()[0]
        else:
            report["job_ids"] = [j.job_id for j in jobs]
        return report
    # local: submitit jobs on this machine, `parallelism` at a time
    pending = list(zip(p.todo, args, strict=True))
    running: list[tuple[Point, Any]] = []
    while pending or running:
        while pending and len(running) < parallelism:
            point, (cfg, run_dir, info) = pending.pop(0)
            running.append(
                (point, executor.submit(SweepPointJob(max_requeues), cfg, run_dir, info))
            )
        point, job = running.pop(0)
        note_position(at(point, "waiting for point"))
        report["results"][point.slug] = job.results()[0]
    return report


def format_table(folder: Path, spec: SweepSpec) -> str:
    """One line per point: the swept values, pretraining figures, transfer headline metrics."""
    lines = []
    for point in spec.points():
        run = folder / point.slug
        if not is_done(run):
            lines.append(f"{point.slug:<48} not done")
            continue
        done = json.loads((run / DONE).read_text())
        s = done["summary"]
        cells = [f"z·√d {s['z_std_sqrt_d']:.3f}", f"loss {s['loss']:.3f}"]
        for task, path in done["records"].items():
            if task == "pretrain":
                continue
            m = json.loads(Path(path).read_text())["metrics"]
            cells += [f"{task} {k} {v:.2f}" for k, v in m.items() if k.startswith("top1")][:2]
        lines.append(f"{point.slug:<48} " + ", ".join(cells))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument(
        "--recipe",
        required=True,
        help=f"recipe name(s), comma-separated; available: {', '.join(available_recipes())}",
    )
    p.add_argument("--batch-sizes", help="global batch sizes, e.g. 64,128,256,512,1024,2048,4096")
    p.add_argument(
        "--lr-scaling",
        choices=LR_SCALINGS,
        default="linear",
        help="lr rule over batch sizes: linear (base_lr × B/256, default) or sqrt "
        "(base_lr × √(B/256))",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a config key over values (repeatable: all combinations)",
    )
    p.add_argument("--transfer", default="", help="transfer tasks per point, e.g. knn,linear")
    p.add_argument(
        "--transfer-opt",
        action="append",
        default=[],
        metavar="TASK:KEY=VALUE",
        help="a transfer task option, e.g. linear:epochs=5 (repeatable)",
    )
    p.add_argument(
        "--name",
        help="sweep name (default: recipe and swept keys); the id adds a hash of the whole spec",
    )
    p.add_argument("--sweep-dir", type=Path, help="the sweep's folder (default runs/sweeps/<id>)")
    p.add_argument("--results-dir", type=Path, help="result records (default leaderboards/results)")
    p.add_argument(
        "--micro-batch",
        type=int,
        default=0,
        help="at most N images per process per forward: larger batches accumulate gradients "
        "(default 0: no limit)",
    )
    add_cluster_arguments(p, "the points as one job array")
    p.add_argument(
        "--parallelism", type=int, default=4, help="points running at once (Slurm or local)"
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="Slurm: return after submitting (re-run the command later to collect and resume)",
    )
    p.add_argument("overrides", nargs="*", help="config overrides for every point, key=value")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    axes: dict[str, list[str]] = {}
    if args.batch_sizes:
        axes[BATCH_KEY] = [v.strip() for v in args.batch_sizes.split(",") if v.strip()]
        if not all(v.isdigit() and int(v) > 0 for v in axes[BATCH_KEY]):
            raise SweepError(f"--batch-sizes takes positive integers, got {args.batch_sizes!r}")
    for item in args.set:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise SweepError(f"--set takes KEY=V1,V2,..., got {item!r}")
        if key in axes:
            raise SweepError(f"{key} is swept twice")
        axes[key] = [v for v in values.split(",") if v]
    recipes = [r for r in args.recipe.split(",") if r]
    transfer = [t for t in args.transfer.split(",") if t]
    if transfer or args.transfer_opt:
        from transfer import tasks

        for opt in args.transfer_opt:
            if ":" not in opt or opt.split(":", 1)[0] not in transfer:
                raise SweepError(
                    f"--transfer-opt takes TASK:KEY=VALUE for a --transfer task: {opt!r}"
                )
        for t in transfer:  # an unknown task or option names the valid ones, before any run
            mine = [o.split(":", 1)[1] for o in args.transfer_opt if o.startswith(f"{t}:")]
            try:
                tasks.parse_options(tasks.get(t).Options, mine)
            except tasks.OptionError as e:
                raise SweepError(f"--transfer {t}: {e}") from e
    if not axes and len(recipes) < 2:
        raise SweepError("nothing to sweep: give --batch-sizes, --set KEY=V1,V2 or --recipe a,b")
    swept = [k.rsplit(".", 1)[-1] for k in axes]
    name = args.name or "-".join([recipes[0] if len(recipes) == 1 else "methods", *swept])
    return SweepSpec(
        name=name,
        recipes=recipes,
        axes=axes,
        lr_scaling=args.lr_scaling,
        transfer=transfer,
        transfer_overrides=list(args.transfer_opt),
        overrides=list(args.overrides),
        micro_batch=args.micro_batch,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    spec = spec_from_args(args)
    folder = args.sweep_dir or Path("runs/sweeps") / spec.sweep_id()
    cluster = args.cluster or ("slurm" if args.slurm else None)
    resources = resources_from_args(args) if cluster else None
    report = run_sweep(
        spec,
        folder,
        cluster,
        resources,
        args.parallelism,
        args.results_dir,
        wait=not args.no_wait,
        max_requeues=args.max_requeues,
    )
    clear_position()
    print(format_table(folder, spec))
    print("leaderboards: python leaderboards/build.py")
    return report


def cli() -> None:
    """``main`` with a failed point as one message (exit 1) instead of submitit's traceback."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        main()
    except (FailedJobError, UncompletedJobError) as e:
        print(f"error: a sweep point failed (re-run the command to resume):\n{e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    # through the module, so that the pickled jobs name pretrain.sweep.SweepPointJob, not __main__
    from pretrain.sweep import cli as sweep_cli

    run_cli(sweep_cli)
