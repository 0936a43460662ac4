"""One collapse-ablation run: a variant's narrow, short config, the training with the collapse
and kNN monitors, its judged result record; the table and scatter plot over runs.

Judgement: the run's collapse curve gets ``records.verdict``'s windowed verdict (the monitor
points of the last fifth of the run; z-std × √d, RankMe, m_o and, for DINO, KL(teacher ‖
student) voting on complete collapse; RankMe against the healthy reference of the same method
and length, ``records.references``, computed from the records already in ``--out``, for
dimensional collapse; the loss and kNN on h for "failed to converge"), and the run
*reproduced* its claim when that outcome is one of the variant's expected ones
(``records/explanations.py``). So the fixed random predictor (SimSiam §4.2, Table 1 (b): it
"does not converge", 1.5%, not collapsed) is judged on the loss and kNN, not on z-std. A
reference run written later changes the reference: ``experiments/rejudge.py`` (which
``experiments/ablate.py`` runs after its matrix) re-judges every record with the references of
the whole set. The record keeps the verdict block (``Verdict.as_record``), the curve with the
monitors of z, of the predictor's output p and of the eval-mode bank (``CURVE_KEYS``), the
bank z's last singular-value spectrum (``z_spectrum``, Jing et al., ICLR 2022, Fig. 1) and, for
reference, the final point's two-valued thresholds of the paper's claim (``judge``;
``endpoint_check``, not a verdict):
- ``collapse``: z-std × √d < 0.2 and kNN on z within 10 points of chance (10%);
- ``no_collapse``: z-std × √d > 0.5 and kNN on h above the same run's random-init kNN on h.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

from common.datasets import load_fashion_mnist
from common.hardware import hardware, precision_label
from experiments.ablation_matrix import Variant
from hub.provenance import git_sha
from pretrain.config import Config, load_config
from pretrain.hooks import CollapseMonitor, KnnMonitor, MetricsLog
from pretrain.train import Trainer
from records.references import judged
from records.schema import require_hardware
from records.verdict import Z_COLLAPSED_BELOW as COLLAPSED_BELOW
from records.write import write_record_at

CHANCE = 10.0  # Fashion-MNIST has 10 balanced classes
HEALTHY_ABOVE = 0.5
NEAR_CHANCE = 10.0  # points above chance still counted as "at chance"
# Residual / center ratio below which cosine kNN on z loses the residual to fp32 rounding
# (tests/test_monitors.py; on the no-stop-gradient run's z, 1.4e-4 read 18% and 4e-4 50%).
KNN_BLIND_BELOW = 1e-4
BATCH = 128
DEFAULT_STEPS = 300  # the matrix's length; other lengths get their own record names
TRAIN_IMAGES = 60000  # Fashion-MNIST's training split
DEFAULT_OUT = Path("leaderboards/results/ablation")
DEFAULT_WORK = Path("runs/ablation")  # run directories, the table and the scatter plot
CURVE_KEYS = (
    *("step", "loss", "z_std_sqrt_d", "rankme", "m_o", "m_r", "knn_z", "knn_h"),
    # the predictor's output p, l2-normalized like z (Zhang et al. ICLR 2022 §3-4), and the
    # predictor's eigen-alignment with the correlation of z (Tian et al. ICML 2021 §4)
    *("p_std_sqrt_d", "rankme_p", "m_o_p", "r_over_o_p"),
    *("pred_alignment", "pred_eig_spread", "pred_fit_dims"),
    # the kNN bank's z (and p), eval mode
    *("z_std_sqrt_d_eval", "m_o_eval", "m_r_eval", "r_over_o_eval", "rankme_eval"),
    *("p_std_sqrt_d_eval", "rankme_p_eval", "m_o_p_eval", "r_over_o_p_eval"),
    *("pred_alignment_eval", "pred_eig_spread_eval", "pred_fit_dims_eval"),
    *("teacher_entropy", "teacher_student_kl"),  # DINO (§5.3, Fig. 7): the verdict's KL
)
SPECTRUM_KEY = "z_spectrum_eval"  # the bank z's singular values / the largest: kept once, last

# The narrow, short version of each method's Fashion-MNIST recipe (one run ≈ 1 CPU-minute).
FAST = [
    "model.width=16",
    f"train.batch_size={BATCH}",
    "train.precision='bf16'",
    "train.threads=1",  # 2 threads on a shared 2-core machine ran 15x slower
    "train.log_every=50",
    "train.ckpt_every=0",
    "data.num_workers=0",
    "monitor.every=25",
    "monitor.knn_bank=5000",
    "monitor.knn_queries=1000",
]
KNN_EVERY_STEPS = 100  # kNN at step 0, every 100 steps and at the end: the collapse curves
HEADS = {
    "simsiam": ["method.proj_dim=256", "method.proj_hidden_dim=256", "method.pred_hidden_dim=64"],
    "byol": ["method.proj_dim=64", "method.proj_hidden_dim=256", "method.pred_hidden_dim=256"],
    "mocov3": ["method.proj_dim=64", "method.proj_hidden_dim=256", "method.pred_hidden_dim=256"],
    # DINO's head (§3.1: MLP -> bottleneck -> K prototypes), narrowed like the others
    "dino": ["method.proj_dim=64", "method.proj_hidden_dim=256", "method.out_dim=1024"],
}
RECIPE = {
    "simsiam": "simsiam_resnet18_fmnist",
    "byol": "byol_resnet18_fmnist",
    "mocov3": "mocov3_resnet18_fmnist",
    "dino": "dino_resnet18_fmnist",
}


def curve_row(row: dict) -> dict:
    """A metrics row's ``CURVE_KEYS``; a reading that is not a finite number (NaN: a
    predictor fit with no direction to fit, pretrain/monitors.py) is left out, not stored."""
    return {
        k: row[k]
        for k in CURVE_KEYS
        if k in row and not (isinstance(row[k], float) and not math.isfinite(row[k]))
    }


def build_config(
    variant: Variant,
    seed: int,
    steps: int,
    data_root: str | None,
    train_images: int | None = None,
) -> Config:
    """The variant's config: its method's recipe, made narrow and short, then its overrides;
    its schedules span exactly ``steps`` on a training split of ``train_images`` images
    (default Fashion-MNIST's)."""
    steps_per_epoch = (train_images or TRAIN_IMAGES) // BATCH
    overrides = [
        *FAST,
        *HEADS[variant.method],
        f"train.seed={seed}",
        f"train.epochs={steps / steps_per_epoch!r}",  # the schedules span exactly `steps`
        f"train.max_steps={steps}",
        f"monitor.knn_every_epochs={KNN_EVERY_STEPS / steps_per_epoch!r}",
        "optim.warmup_epochs=0.0",
        *variant.overrides,
    ]
    if data_root:
        overrides.append(f"data.root={data_root}")
    return load_config(RECIPE[variant.method], overrides)


def judge(expect: str, rec: dict) -> tuple[bool, list[str]]:
    """Whether the run agrees with the variant's claim, and the failed parts in words."""
    failed = []
    z, knn_z = rec["z_std_sqrt_d"], rec["knn_z"]
    if expect == "collapse":
        if not z < COLLAPSED_BELOW:
            failed.append(f"z-std x sqrt(d) {z:.3f} is not < {COLLAPSED_BELOW}")
        if not knn_z <= CHANCE + NEAR_CHANCE:
            why = f"kNN on z {knn_z:.1f}% is not within {NEAR_CHANCE:g} points of chance"
            r_over_o = rec.get("r_over_o_eval")
            if r_over_o is not None:  # why a collapsed z can still classify (monitors.py)
                why += (
                    f": its residual is {r_over_o:.1e} of its center in eval mode, above the "
                    f"~{KNN_BLIND_BELOW:.0e} where cosine kNN stops resolving it"
                )
            failed.append(why)
    else:
        if not z > HEALTHY_ABOVE:
            failed.append(f"z-std x sqrt(d) {z:.3f} is not > {HEALTHY_ABOVE}")
        if not rec["knn_h"] > rec["init_knn_h"]:
            failed.append(
                f"kNN on h {rec['knn_h']:.1f}% is not above random init {rec['init_knn_h']:.1f}%"
            )
    return not failed, failed


def read_records(out_dir: Path) -> list[dict]:
    """The ablation records already in ``out_dir`` (unreadable or foreign files skipped)."""
    found = []
    for path in sorted(out_dir.glob("*.json")) if out_dir.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("task") == "ablation" and "run_id" in data:
            found.append(data)
    return found


def verdict_block(rec: dict, others: list[dict] | None = None) -> dict:
    """``records.verdict``'s verdict of a record's curve with its reference RankMe (from
    ``others`` and the record itself, ``records.references``), as the record stores it."""
    me = {**rec, "task": "ablation", "run_id": str(rec.get("run_id", ""))}
    same = [r for r in others or [] if r.get("run_id") != me["run_id"]]
    return judged([*same, me])[me["run_id"]].as_record()


def judge_verdict(expect: tuple[str, ...], verdict: dict) -> tuple[bool, list[str]]:
    """Reproduced when the verdict's outcome is one of the expected ones; else why not."""
    if verdict["outcome"] in expect:
        return True, []
    return False, [f"verdict {verdict['text']}; the claim expects {' or '.join(expect)}"]


def run_name(variant: Variant, seed: int, steps: int) -> str:
    """``method-variant-seedS``, plus ``-Nsteps`` off the matrix's length: a longer reading of
    a variant sits beside the matrix's record instead of overwriting it."""
    base = f"{variant.method}-{variant.name}-seed{seed}"
    return base if steps == DEFAULT_STEPS else f"{base}-{steps}steps"


def run_variant(
    variant: Variant,
    seed: int,
    steps: int,
    out_dir: Path,
    data_root: str | None = None,
    work_dir: Path = DEFAULT_WORK,
) -> dict:
    """Train one (variant, seed), write its result record, and return it."""
    root = data_root or load_config(RECIPE[variant.method]).data.root
    train_images = len(load_fashion_mnist(root, "train")[1])  # the length follows the split
    cfg = build_config(variant, seed, steps, data_root, train_images)
    name = run_name(variant, seed, steps)
    run_dir = work_dir / name
    if run_dir.exists():  # a fresh run every time: no resume from an older matrix
        for p in sorted(run_dir.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    started = time.perf_counter()
    collapse = CollapseMonitor()
    trainer = Trainer(cfg, run_dir, [collapse, KnnMonitor(), MetricsLog()])
    trainer.fit()
    wall = time.perf_counter() - started
    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines() if r]
    init = rows[0]
    final = {k: v for row in rows for k, v in row.items()}  # latest value of every metric
    rec = {
        "run_id": name,
        "task": "ablation",
        "kind": "collapse_ablation",
        "method": variant.method,
        "variant": variant.name,
        "seed": seed,
        "overrides": list(variant.overrides),
        "claim": variant.claim,
        "source": variant.source,
        "expect": variant.matrix_expect,
        "expect_outcomes": list(variant.expect),
        "steps": trainer.step,
        "batch_size": cfg.train.batch_size,
        "knn_z": final["knn_z"],
        "knn_h": final["knn_h"],
        "init_knn_z": init["knn_z"],
        "init_knn_h": init["knn_h"],
        "chance": CHANCE,
        "z_std_sqrt_d": final["z_std_sqrt_d"],
        "effective_rank": final["rankme"],
        "m_o": final["m_o"],
        "m_r": final["m_r"],
        "z_std_sqrt_d_eval": final.get("z_std_sqrt_d_eval"),
        "m_o_eval": final.get("m_o_eval"),
        "r_over_o_eval": final.get("r_over_o_eval"),
        "loss": final["loss"],
        "wall_seconds": wall,
        "train_seconds": trainer.train_seconds,
        "knn_protocol": {
            "bank": cfg.monitor.knn_bank,
            "queries": cfg.monitor.knn_queries,
            "k": cfg.monitor.knn_k,
            "t": cfg.monitor.knn_t,
        },
        "curve": [curve_row(row) for row in rows],
        "z_spectrum": next(
            (row[SPECTRUM_KEY] for row in reversed(rows) if SPECTRUM_KEY in row), None
        ),
        "config": cfg.to_dict(),
        "git_sha": git_sha() or "unknown",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        # threads, CPU model, device and the autocast it trained in (common.hardware)
        "hardware": hardware(precision_label(trainer.amp_dtype, trainer.device), trainer.device),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rec["verdict"] = verdict_block(rec, read_records(out_dir))
    rec["reproduced"], rec["not_reproduced_because"] = judge_verdict(variant.expect, rec["verdict"])
    rec["endpoint_check"] = judge(variant.matrix_expect, rec)[1]
    # validated against the record contract; a re-run of the same (variant, seed, steps)
    # replaces the matrix's reading (a different length has its own name: run_name)
    write_record_at(out_dir / f"{name}.json", require_hardware(rec), replace=True)
    return rec


def outcome_counts(records: list[dict]) -> str:
    """How many runs got each verdict outcome ("?" for an older record without a verdict)."""
    counts = Counter(r.get("verdict", {}).get("outcome", "?") for r in records)
    return ", ".join(f"{n} {outcome}" for outcome, n in counts.items())


def summarize(records: list[dict]) -> list[dict]:
    """One row per variant: means over seeds and how many seeds reproduced the claim."""
    rows = []
    for name in dict.fromkeys(r["variant"] for r in records):
        rs = [r for r in records if r["variant"] == name]

        def mean(key: str, rs=rs) -> float:
            return statistics.fmean(r[key] for r in rs)

        rows.append(
            {
                "variant": name,
                "method": rs[0]["method"],
                "expect": rs[0]["expect"],
                "seeds": len(rs),
                "z_std_sqrt_d": mean("z_std_sqrt_d"),
                "effective_rank": mean("effective_rank"),
                "m_o": mean("m_o"),
                "knn_z": mean("knn_z"),
                "knn_h": mean("knn_h"),
                "init_knn_h": mean("init_knn_h"),
                "outcomes": outcome_counts(rs),
                "reproduced": sum(r["reproduced"] for r in rs),
                "wall_seconds": mean("wall_seconds"),
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'variant':<24} {'claim':<12} {'seeds':>5} {'z·√d':>6} {'rank':>6} {'m_o':>5} "
        f"{'kNN z':>6} {'kNN h':>6} {'init h':>6} {'reproduced':>10} {'s/run':>6}"
        "  verdicts"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        n = r["seeds"]
        lines.append(
            f"{r['variant']:<24} {r['expect']:<12} {n:>5} {r['z_std_sqrt_d']:>6.3f} "
            f"{r['effective_rank']:>6.1f} {r['m_o']:>5.2f} {r['knn_z']:>6.1f} {r['knn_h']:>6.1f} "
            f"{r['init_knn_h']:>6.1f} {r['reproduced']:>6}/{n:<3} "
            f"{r['wall_seconds']:>6.0f}  {r['outcomes']}"
        )
    lines.append(
        f"chance 10%; collapse = z·√d < {COLLAPSED_BELOW} and kNN z <= chance + {NEAR_CHANCE:g}; "
        f"no_collapse = z·√d > {HEALTHY_ABOVE} and kNN h > init h (means over seeds); "
        "reproduced = records.verdict's outcome is one the claim expects"
    )
    return "\n".join(lines)


def plot(records: list[dict], path: Path) -> Path:
    """kNN on z against final z-std × √d, one marker per run, colored by claim."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    names = list(dict.fromkeys(r["variant"] for r in records))
    cmap = plt.get_cmap("tab20")
    for i, name in enumerate(names):
        rs = [r for r in records if r["variant"] == name]
        marker = "x" if rs[0]["expect"] == "collapse" else "o"
        ax.scatter(
            [r["z_std_sqrt_d"] for r in rs],
            [r["knn_z"] for r in rs],
            color=cmap(i % 20),
            marker=marker,
            label=f"{name} ({rs[0]['expect']})",
        )
    ax.axvline(COLLAPSED_BELOW, color="gray", ls="--", lw=0.8)
    ax.axvline(HEALTHY_ABOVE, color="gray", ls=":", lw=0.8)
    ax.axhline(CHANCE + NEAR_CHANCE, color="gray", ls="--", lw=0.8)
    ax.set_xlabel("final z-std × √d (1 = spread, 0 = collapsed)")
    ax.set_ylabel("kNN top-1 on z (%)")
    ax.set_title("Collapse ablation on Fashion-MNIST (x: claimed to collapse, o: not)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
