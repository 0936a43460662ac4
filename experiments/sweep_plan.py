"""A sweep's plan: its spec and points, each point's config overrides (lr rule, gradient
accumulation) and ``sweep`` block, and which points are done, in flight or still to run in
the sweep folder. ``experiments/sweep.py`` is the CLI; ``experiments/sweep_job.py`` runs a
point.

lr rule over batch sizes: linear (lr = base_lr × batch/256, SimSiam §4.2 / Table 2) or sqrt
(base_lr × √(batch/256)); the recipe's large-batch warmup (``optim.large_batch``) applies.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from hub.provenance import write_json_atomic
from pretrain.config import load_config

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
