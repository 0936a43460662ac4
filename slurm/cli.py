"""The cluster flags every submitting command shares (``pretrain/run.py``,
``experiments/sweep.py``): a preset, ``--cluster``, one flag per resource that overrides it,
and the requeue limit."""

from __future__ import annotations

import argparse

from slurm.presets import PRESETS, Resources, resolve

# flag -> (Resources field, type)
RESOURCE_FLAGS = {
    "--nodes": ("nodes", int),
    "--gpus-per-node": ("gpus_per_node", int),
    "--tasks-per-node": ("tasks_per_node", int),
    "--cpus": ("cpus_per_task", int),
    "--mem": ("mem", str),
    "--time": ("time", str),
    "--partition": ("partition", str),
    "--account": ("account", str),
    "--qos": ("qos", str),
    "--constraint": ("constraint", str),
}


def add_cluster_arguments(parser: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    """Add the "cluster" group: ``--slurm PRESET``, ``--cluster``, the resource flags and
    ``--max-requeues``; ``what`` says what is submitted (for the help)."""
    job = parser.add_argument_group(
        "cluster", f"submit {what} instead of running here (defaults: slurm/presets.py)"
    )
    job.add_argument(
        "--slurm", metavar="PRESET", help=f"submit to Slurm with a preset: {', '.join(PRESETS)}"
    )
    job.add_argument(
        "--cluster", choices=("slurm", "local"), help="local: submitit jobs on this machine"
    )
    for flag, (_, kind) in RESOURCE_FLAGS.items():
        job.add_argument(flag, type=kind, help="overrides the preset")
    job.add_argument("--max-requeues", type=int, default=10, help="preemption/time-out requeues")
    return job


def resources_from_args(args: argparse.Namespace) -> Resources:
    """The preset named by ``--slurm`` (default ``cpu``) with the resource flags given."""
    given = {
        field: getattr(args, flag.removeprefix("--").replace("-", "_"))
        for flag, (field, _) in RESOURCE_FLAGS.items()
    }
    return resolve(args.slurm or "cpu", **given)
