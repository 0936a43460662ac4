"""Named resource presets and where their defaults come from.

A preset says how many nodes and GPUs; the cluster-specific rest (partition, account, QoS,
constraint, time, memory, CPUs) comes, later source winning, from:

1. the preset itself,
2. the user config file ``$SIAMHUB_SLURM_CONFIG`` or ``~/.config/siamhub/slurm.toml``: top-level
   keys apply to every preset, a ``[presets.NAME]`` table to one (and may define new presets),
3. environment variables ``SIAMHUB_SLURM_<KEY>`` (e.g. SIAMHUB_SLURM_ACCOUNT=proj123),
4. command-line flags (``--account``, ``--partition``, ...).

Keys: nodes, gpus_per_node, tasks_per_node, cpus_per_task, mem, time, partition, account, qos,
constraint. ``time`` is minutes or any of Slurm's formats (1:30:00, 2-00:00:00); ``mem`` is
per node: "64G", "500M" or a number of GB.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from common.errors import UserError

ENV_PREFIX = "SIAMHUB_SLURM_"


class PresetError(UserError, ValueError):
    """A preset name, a user config file or a resource value that cannot be used."""


@dataclass(frozen=True)
class Resources:
    """What one job asks for; one process (task) per GPU, or ``tasks_per_node`` CPU processes."""

    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 0  # 0: one per GPU (1 without GPUs)
    cpus_per_task: int = 2
    mem: str = "8G"
    time: str = "60"
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""

    @property
    def tasks(self) -> int:
        return self.tasks_per_node or max(self.gpus_per_node, 1)

    @property
    def world_size(self) -> int:
        return self.nodes * self.tasks

    @property
    def timeout_min(self) -> int:
        return parse_time(self.time)

    @property
    def mem_gb(self) -> int:
        return parse_mem_gb(self.mem)


# A GPU node as most clusters have it: 8 GPUs, 10 CPUs and ~60 GB of memory per GPU.
PRESETS: dict[str, Resources] = {
    "cpu": Resources(cpus_per_task=2, mem="8G", time="60"),
    "1gpu": Resources(gpus_per_node=1, cpus_per_task=10, mem="60G", time="1440"),
    "4gpu": Resources(gpus_per_node=4, cpus_per_task=10, mem="240G", time="1440"),
    "8gpu": Resources(gpus_per_node=8, cpus_per_task=10, mem="480G", time="1440"),
    "2x8gpu": Resources(nodes=2, gpus_per_node=8, cpus_per_task=10, mem="480G", time="1440"),
    "4x8gpu": Resources(nodes=4, gpus_per_node=8, cpus_per_task=10, mem="480G", time="1440"),
}
KEYS = [f.name for f in fields(Resources)]


def parse_time(text: str | int) -> int:
    """Minutes (seconds rounded up) from Slurm's time formats: "M", "M:S", "H:M:S", "D-H",
    "D-H:M", "D-H:M:S" (``sbatch --time``)."""
    s = str(text).strip()
    days, sep, rest = s.rpartition("-")
    parts = rest.split(":")
    if not all(p.isdigit() for p in parts) or (sep and not days.isdigit()) or len(parts) > 3:
        raise PresetError(f"time {text!r} is not a Slurm time (90, 1:30:00, 2-00:00:00)")
    nums = [int(p) for p in parts]
    if sep:  # D-H, D-H:M, D-H:M:S
        h, m, sec = (nums + [0, 0])[:3]
        total_s = int(days) * 86400 + h * 3600 + m * 60 + sec
    else:  # M, M:S, H:M:S
        h, m, sec = ([0] * (3 - len(nums)) + nums) if len(nums) == 3 else (0, *(nums + [0])[:2])
        total_s = h * 3600 + m * 60 + sec
    if total_s <= 0:
        raise PresetError(f"time {text!r} must be longer than zero")
    return -(-total_s // 60)


def parse_mem_gb(text: str | int) -> int:
    """GB (rounded up) from ``"64G"``, ``"500M"``, ``"1T"`` or a number of GB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([MGT]?)B?", str(text).strip(), re.IGNORECASE)
    if not m:
        raise PresetError(f"mem {text!r} is not a size such as 64G, 500M or 1T")
    value, unit = float(m.group(1)), m.group(2).upper() or "G"
    return max(1, int(-(-value * {"M": 1 / 1024, "G": 1, "T": 1024}[unit] // 1)))


def user_config_path() -> Path:
    return Path(
        os.environ.get("SIAMHUB_SLURM_CONFIG") or Path.home() / ".config/siamhub/slurm.toml"
    )


def _checked(values: dict[str, Any], where: str) -> dict[str, str | int]:
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise PresetError(f"{where}: unknown keys {unknown}; valid keys: {', '.join(KEYS)}")
    out: dict[str, str | int] = {}
    for key, value in values.items():
        kind = type(getattr(Resources(), key))
        try:
            out[key] = kind(value)
        except (TypeError, ValueError) as e:
            raise PresetError(f"{where}: {key}={value!r} must be {kind.__name__}") from e
    return out


def resolve(preset: str = "cpu", **overrides: Any) -> Resources:
    """The resources of ``preset`` after the user file, the environment and ``overrides``."""
    path = user_config_path()
    user: dict[str, Any] = {}
    if path.is_file():
        try:
            user = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise PresetError(f"{path} is not valid TOML: {e}") from e
    user_presets = user.pop("presets", {})
    names = sorted(set(PRESETS) | set(user_presets))
    if preset not in names:
        raise PresetError(
            f"unknown Slurm preset {preset!r}; available: {', '.join(names)} "
            f"(define more as [presets.NAME] tables in {path})"
        )
    res = PRESETS.get(preset, Resources())
    res = replace(res, **_checked(user, str(path)))
    res = replace(res, **_checked(user_presets.get(preset, {}), f"{path} [presets.{preset}]"))
    env = {
        k: os.environ[ENV_PREFIX + k.upper()] for k in KEYS if ENV_PREFIX + k.upper() in os.environ
    }
    res = replace(res, **_checked(env, "environment"))
    given = {k: v for k, v in overrides.items() if v is not None}
    res = replace(res, **_checked(given, "command line"))
    res.timeout_min, res.mem_gb  # noqa: B018 - parse now, so a bad value fails before submission
    return res
