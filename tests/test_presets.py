"""Resource presets: preset < user file < environment < flags; bad values name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurm.presets import PresetError, parse_mem_gb, parse_time, resolve
from slurm.submit import make_executor


@pytest.fixture(autouse=True)
def _no_user_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("SIAMHUB_SLURM_CONFIG", str(tmp_path / "none.toml"))
    for key in ("ACCOUNT", "PARTITION", "QOS", "TIME", "MEM", "CONSTRAINT"):
        monkeypatch.delenv(f"SIAMHUB_SLURM_{key}", raising=False)


def test_presets_give_one_process_per_gpu():
    res = resolve("2x8gpu")
    assert (res.nodes, res.gpus_per_node, res.tasks, res.world_size) == (2, 8, 8, 16)
    assert resolve("cpu").world_size == 1


def test_later_sources_win(tmp_path, monkeypatch):
    user = tmp_path / "slurm.toml"
    user.write_text(
        'account = "lab"\npartition = "gpu"\ntime = "2-00:00:00"\n'
        '[presets.8gpu]\nconstraint = "volta32gb"\n[presets.big]\nnodes = 8\ngpus_per_node = 8\n'
    )
    monkeypatch.setenv("SIAMHUB_SLURM_CONFIG", str(user))
    monkeypatch.setenv("SIAMHUB_SLURM_PARTITION", "learnlab")
    res = resolve("8gpu", qos="high", time="90")
    assert (res.account, res.partition, res.qos, res.constraint) == (
        "lab",
        "learnlab",
        "high",
        "volta32gb",
    )
    assert res.timeout_min == 90
    assert resolve("8gpu").timeout_min == 2880
    assert resolve("big").world_size == 64  # a preset defined in the user file


def test_slurm_time_and_memory_formats():
    assert [parse_time(t) for t in ("90", "30:30", "1:30:00", "1-12", "2-1:30")] == [
        90,
        31,
        90,
        2160,
        2970,
    ]
    assert [parse_mem_gb(m) for m in ("64G", "500M", "1T", 8)] == [64, 1, 1024, 8]


def test_bad_inputs_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(PresetError, match="unknown Slurm preset '3gpu'; available: .*8gpu"):
        resolve("3gpu")
    with pytest.raises(PresetError, match="not a Slurm time"):
        resolve("1gpu", time="soon")
    with pytest.raises(PresetError, match="not a size"):
        resolve("1gpu", mem="lots")
    bad = tmp_path / "bad.toml"
    bad.write_text("acount = 'x'\n")
    monkeypatch.setenv("SIAMHUB_SLURM_CONFIG", str(bad))
    with pytest.raises(PresetError, match="unknown keys \\['acount'\\]; valid keys: .*account"):
        resolve("1gpu")


def fake_slurm_clients(folder: Path) -> str:
    """A PATH with stand-ins for srun and sbatch: what submitit looks for on a login node."""
    folder.mkdir()
    for name in ("srun", "sbatch"):
        (folder / name).write_text("#!/bin/sh\nexit 1\n")
        (folder / name).chmod(0o755)
    return str(folder)


def test_slurm_without_its_client_commands_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun here, whatever the machine has
    res = resolve("1gpu")
    with pytest.raises(PresetError, match="needs Slurm's client commands.*--cluster local"):
        make_executor(tmp_path, res, "slurm")


def test_the_executor_carries_the_resources(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_slurm_clients(tmp_path / "bin"))
    res = resolve("2x8gpu", account="lab", partition="gpu", time="60", mem="400G")
    ex = make_executor(tmp_path, res, "slurm", max_requeues=5, array_parallelism=3)
    p = ex._executor.parameters
    assert (p["nodes"], p["ntasks_per_node"], p["gpus_per_node"]) == (2, 8, 8)
    assert (p["account"], p["partition"], p["time"], p["mem"]) == ("lab", "gpu", 60, "400GB")
    assert p["array_parallelism"] == 3 and ex._executor.max_num_timeout == 5
    with pytest.raises(PresetError, match="--cluster local runs on this machine only"):
        make_executor(tmp_path, res, "local")
