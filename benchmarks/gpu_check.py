"""The GPU check: every CUDA path of the project run once, every figure in one JSON and a table.

``python benchmarks/gpu_check.py --out runs/gpu_check`` on a machine with a CUDA device runs, in
under 8 minutes, one after the other:

- ``train_steps``: SimSiam, BYOL and MoCo v3 training steps (``Trainer.train_step`` on the
  Fashion-MNIST recipes, bf16 autocast, channels_last): ms/step, img/s, the loss (finite);
- ``ddp``: under ``torch.distributed.run --nproc_per_node 1``, ``pretrain/run.py``'s main for a
  few steps (``train.sync_bn=true``), then an NCCL process group of world size 1 with the model's
  BatchNorm converted by ``slurm/syncbn.py``, DDP-wrapped, stepped, and the project's gradient
  all-gather (NCCL all_gather + reduce_scatter);
- ``data_pipeline``: the ImageNet recipe's JPEG pipeline (a generated ImageFolder at ImageNet
  sizes) feeding the ResNet-50 step, against an in-memory loader of ready views;
- ``detection``: the torchvision Faster R-CNN engine on the embedded ``fmnist_det`` set: AP, it/s;
- ``throughput``: ``benchmarks/pretrain_throughput.py --model resnet50 --img-size 224`` (needs
  lightly, the ``bench`` extra; skipped without it).

Each path runs in its own process (a CUDA error or a hang cannot take the others down) under a
hard time budget; a failure is recorded with its error and the next path runs. The exit code is
1 when any path failed (a skipped path is not a failure). ``--dry-run`` runs every path on the
CPU at tiny sizes (gloo instead of NCCL) in about a minute: what the test suite runs.

Writes ``<out>/gpu_check.json``, ``<out>/gpu_check.md`` and one log per path in ``<out>/logs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hub.provenance import git_sha, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]

PATHS = ("train_steps", "ddp", "data_pipeline", "detection", "throughput")
BUDGET_S = {  # hard per-path limits (GPU: 400 s in all); a path over its budget is killed
    "gpu": {"train_steps": 50, "ddp": 80, "data_pipeline": 90, "detection": 80, "throughput": 100},
    "dry": dict.fromkeys(PATHS, 120),
}
FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")


def launch_command(name: str, result: Path, args: argparse.Namespace, work: Path) -> list[str]:
    """The command of one path's process; ``ddp`` starts under torchrun (one process)."""
    child = [str(Path(__file__).resolve()), "--path", name, "--result", str(result)]
    child += ["--work", str(work), "--fmnist", str(Path(args.fmnist).resolve())]
    child += ["--dry-run"] if args.dry_run else []
    if name == "ddp":
        torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
        return [sys.executable, *torchrun, *child]
    return [sys.executable, *child]


def run_path(command: list[str], budget_s: float, log: Path, result: Path) -> dict[str, Any]:
    """Run one path's process with a hard time limit; its record (status, figures, ...).

    The process writes its record to ``result``; a process that dies or runs over the budget
    (its whole process group is killed) is recorded as failed with the end of its log.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    result.unlink(missing_ok=True)
    started = time.perf_counter()
    with log.open("w") as out:
        env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=budget_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            rc = stop(proc)
        except KeyboardInterrupt:  # the path runs in a session of its own: end it too
            stop(proc)
            raise
    seconds = time.perf_counter() - started
    if timed_out:
        record = failed(f"over its budget of {budget_s:g} s: killed", log)
    elif result.is_file():
        record = json.loads(result.read_text())
    else:
        record = failed(f"the process exited with code {rc} and wrote no result", log)
    record.update(seconds=round(seconds, 2), budget_s=budget_s, log=str(log))
    return record


def stop(proc: subprocess.Popen, grace_s: float = 15.0) -> int:
    """End a path's process group: SIGTERM (torchrun then stops its workers, which it runs in
    sessions of their own), SIGKILL after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):  # it may have ended by itself meanwhile
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def failed(error: str, log: Path | None = None) -> dict[str, Any]:
    tail = log.read_text(errors="replace")[-2000:] if log and log.is_file() else ""
    return {"status": "failed", "error": error, "log_tail": tail, "figures": {}, "info": {}}


def check_figures(figures: dict[str, Any]) -> None:
    """Every figure is a finite number (a NaN loss or a missing AP is an error, not a figure)."""
    for key, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"figure {key!r} is {value!r}, not a number")
        if not math.isfinite(value):
            raise FloatingPointError(f"figure {key!r} is {value}, not finite")


def exit_code(results: dict[str, dict[str, Any]]) -> int:
    return int(any(r["status"] == "failed" for r in results.values()))


def fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"


def markdown_table(results: dict[str, dict[str, Any]], mode: str) -> str:
    lines = [
        f"GPU check ({mode})",
        "",
        "| path | status | seconds (budget) | figures |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        if r["status"] == "ok":
            cell = "; ".join(f"{k} {fmt(v)}" for k, v in r["figures"].items())
        else:
            reason = r.get("reason") or r.get("error") or ""
            cell = reason.splitlines()[0][:160] if reason else ""
        cell = cell.replace("|", "/")
        lines.append(
            f"| {name} | {r['status']} | {r['seconds']:.1f} ({r['budget_s']:g}) | {cell} |"
        )
    return "\n".join(lines) + "\n"


def child(args: argparse.Namespace) -> int:
    """One path, in this process: its record goes to ``args.result`` whatever happens."""
    import traceback

    try:
        # torch and the project: an import error is a failure
        from benchmarks import gpu_check_paths as paths

        ctx = paths.context(args.dry_run, Path(args.work) / args.path, Path(args.fmnist))
        figures, info = paths.PATH_FUNCTIONS[args.path](ctx)
        check_figures(figures)
        record = {"status": "ok", "figures": figures, "info": info}
    except Exception as e:  # the record says why: a Skip's reason, or the error
        if type(e).__name__ == "Skip":
            record = {"status": "skipped", "reason": str(e), "figures": {}, "info": {}}
        else:
            record = failed(f"{type(e).__name__}: {e}")
            record["traceback"] = traceback.format_exc()
            traceback.print_exc()
    if int(os.environ.get("RANK", 0)) == 0:
        write_json_atomic(Path(args.result), record)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/gpu_check"))
    p.add_argument("--dry-run", action="store_true", help="every path on the CPU at tiny sizes")
    p.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset to run")
    p.add_argument("--fmnist", default=FMNIST, help="Fashion-MNIST IDX folder (else synthetic)")
    p.add_argument("--path", choices=PATHS, help=argparse.SUPPRESS)  # a path's own process
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.paths.split(",")) - set(PATHS)
    if unknown:
        p.error(f"unknown path(s) {sorted(unknown)}; available: {', '.join(PATHS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.path:
        return child(args)
    mode = "dry-run" if args.dry_run else "gpu"
    budgets = BUDGET_S["dry" if args.dry_run else "gpu"]
    selected = [p for p in PATHS if p in args.paths.split(",")]
    out = args.out.resolve()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    started = time.perf_counter()
    print(
        f"GPU check ({mode}): {len(selected)} paths, budget {sum(budgets[p] for p in selected)} s"
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        for i, name in enumerate(selected, 1):
            log = out / "logs" / f"{name}.log"
            print(f"[{i}/{len(selected)}] {name}: running (budget {budgets[name]} s, log {log})")
            command = launch_command(name, work / f"{name}.result.json", args, work)
            r = run_path(command, budgets[name], log, work / f"{name}.result.json")
            results[name] = r
            why = r.get("reason") or r.get("error") or ""
            print(f"[{i}/{len(selected)}] {name}: {r['status']} in {r['seconds']:.1f} s {why}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {
        "mode": mode,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "git_sha": git_sha(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "total_seconds": round(time.perf_counter() - started, 2),
        "failed": [n for n, r in results.items() if r["status"] == "failed"],
        "paths": results,
    }
    write_json_atomic(out / "gpu_check.json", record)
    table = markdown_table(results, mode)
    (out / "gpu_check.md").write_text(table)
    print(f"\n{table}\nwrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
