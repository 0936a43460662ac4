"""The Trainer's hooks: collapse monitors, kNN monitor, metrics log, progress bar, checkpoints.

Order matters: monitors fill the step's metrics row, then the logger writes it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from common.files import atomic_write_text
from common.knn import embed, embed_dataset, knn_top1
from common.progress import progress
from common.transforms import normalize_small
from hub.publish import RUN_ENCODER, encoder_from_training, run_results
from pretrain.checkpoint import LAST, atomic_save
from pretrain.monitors import collapse_stats, p_stats, pred_alignment, z_spectrum
from records.errors import RecordError
from records.verdict import LOSS_MIN, judge

# the kNN bank's monitors, logged with an "_eval" suffix (and p's where there is a predictor)
EVAL_COLLAPSE_KEYS = ("z_std_sqrt_d", "m_o", "m_r", "r_over_o", "rankme")

if TYPE_CHECKING:
    from pretrain.train import Trainer


class Hook:
    """Called by the Trainer at these points; override what you need.

    Hooks run on rank 0 only unless ``all_ranks`` is True (they must then not write files).
    """

    all_ranks = False

    def before_train(self, trainer: Trainer) -> None: ...

    def after_step(self, trainer: Trainer, out: dict[str, torch.Tensor]) -> None: ...

    def after_epoch(self, trainer: Trainer) -> None: ...

    def after_train(self, trainer: Trainer) -> None: ...

    def on_error(self, trainer: Trainer) -> None:
        """The loop stopped early (Ctrl-C, an error): release what the hook holds."""

    def on_interrupt(self, trainer: Trainer) -> None:
        """Ctrl-C stopped the loop between two iterations (after ``on_error``): the state is
        that of the last completed step."""


class CollapseMonitor(Hook):
    """The monitors of the training batch every ``monitor.every`` steps (and at the last step):
    z-std × √d, RankMe and m_o / m_r / r_over_o of z and, where the method returns the
    predictor's output p (``out["p"]``), the same of p (``p_std_sqrt_d``, ``rankme_p``,
    ``m_o_p``, ``r_over_o_p``) and the predictor's eigen-alignment with z's correlation
    (``pred_alignment``, ``pred_eig_spread``, ``pred_fit_dims``: Tian et al., ICML 2021;
    ``pretrain.monitors``). No verdict here: a run is judged over a window of these points
    (``records.verdict``; ``ProgressBar`` shows it)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def after_step(self, trainer: Trainer, out: dict[str, torch.Tensor]) -> None:
        if trainer.step % trainer.cfg.monitor.every == 0 or trainer.step == trainer.total_steps:
            self.last = collapse_stats(out["z"])
            if "p" in out:
                self.last.update(p_stats(out["p"]))
                self.last.update(pred_alignment(out["z"], out["p"]))
            trainer.metrics.update(self.last)
            trainer.log_now = True


class KnnMonitor(Hook):
    """kNN top-1 on backbone features h and projector outputs z, on a held-out labelled split.

    The bank is ``monitor.knn_bank`` training images, the queries ``monitor.knn_queries``
    images of the held-out split (Fashion-MNIST's test set, or ``data.val_root`` for an
    ImageFolder): fixed subsets, no augmentation; BN uses its running statistics.

    It also logs the collapse monitors of the bank's z as the model embeds it for kNN
    (``z_std_sqrt_d_eval``, ``m_o_eval``, ``m_r_eval``, ``r_over_o_eval``, ``rankme_eval``):
    eval-mode BN, unaugmented images; ``z_spectrum_eval``, the bank z's centred singular values
    over the largest, descending (Jing et al., ICLR 2022, Fig. 2; ``monitors.z_spectrum``);
    and where the model has a predictor, the same monitors of its output p on the bank's z
    (``p_std_sqrt_d_eval``, ``rankme_p_eval``, ``m_o_p_eval``, ``r_over_o_p_eval``) and its
    eigen-alignment there (``pred_alignment_eval``, ``pred_eig_spread_eval``,
    ``pred_fit_dims_eval``): a fit over the whole bank, well-posed where the training batch
    is smaller than d, of the predictor as one fixed function (BN on running statistics).
    They can differ from the training batch's (``CollapseMonitor``): with the projector's
    output BN (affine=False) in training mode every channel keeps zero mean and unit variance
    over the batch, so a collapsed z keeps a few far outliers there; with running statistics
    the same network maps almost every image onto one point. They are not logged at step 0,
    where BN's running statistics are still their initial 0 and 1.
    """

    def __init__(self) -> None:
        self.bank = self.queries = None

    def before_train(self, trainer: Trainer) -> None:
        from pretrain.data import labelled_split

        m = trainer.cfg.monitor
        if m.knn_every_epochs <= 0:
            return
        gen = torch.Generator().manual_seed(12345)
        (train_x, train_y), (test_x, test_y) = (
            labelled_split(trainer.cfg, split) for split in ("train", "test")
        )
        bi = torch.randperm(len(train_y), generator=gen)[: m.knn_bank]
        qi = torch.randperm(len(test_y), generator=gen)[: m.knn_queries]
        self.bank = (self._subset(train_x, bi), train_y[bi])
        self.queries = (self._subset(test_x, qi), test_y[qi])
        self.every = max(1, round(m.knn_every_epochs * trainer.steps_per_epoch))
        if trainer.step == 0:
            trainer.metrics = {"step": 0, "epoch": 0.0}
            self.measure(trainer)

    @staticmethod
    def _subset(data, index: torch.Tensor):
        if isinstance(data, torch.Tensor):
            return data[index]  # in-memory uint8 images
        return torch.utils.data.Subset(data, index.tolist())  # an ImageFolder

    def after_step(self, trainer: Trainer, out: dict[str, torch.Tensor]) -> None:
        if self.bank is None:
            return
        if trainer.step % self.every == 0 or trainer.step == trainer.total_steps:
            self.measure(trainer)

    @torch.no_grad()
    def measure(self, trainer: Trainer) -> None:
        model, cfg = trainer.model, trainer.cfg
        was_training = model.training
        model.eval()

        def to_device(x: torch.Tensor) -> torch.Tensor:
            return x.to(trainer.device, memory_format=trainer.memory_format)

        def prep(x: torch.Tensor) -> torch.Tensor:
            return to_device(normalize_small(x, cfg.data.img_size, cfg.model.in_chans))

        def both(x: torch.Tensor) -> torch.Tensor:
            h = model.backbone(x)
            return torch.cat([h, model.projector(h)], dim=1)  # (N, F + D)

        def features(data) -> torch.Tensor:
            if isinstance(data, torch.Tensor):
                return embed(both, data, prep, batch_size=512)
            return embed_dataset(both, data, to_device, num_workers=cfg.data.num_workers)

        feats_bank, feats_query = features(self.bank[0]), features(self.queries[0])
        f = model.backbone.num_features
        k, t = cfg.monitor.knn_k, cfg.monitor.knn_t
        trainer.metrics["knn_h"] = knn_top1(
            feats_query[:, :f], self.queries[1], feats_bank[:, :f], self.bank[1], k, t
        )
        trainer.metrics["knn_z"] = knn_top1(
            feats_query[:, f:], self.queries[1], feats_bank[:, f:], self.bank[1], k, t
        )
        if trainer.step > 0:  # at init BN's running statistics are still 0 and 1, not the data's
            z = feats_bank[:, f:]  # (bank, D)
            bank_z = collapse_stats(z)
            trainer.metrics.update({f"{key}_eval": bank_z[key] for key in EVAL_COLLAPSE_KEYS})
            trainer.metrics["z_spectrum_eval"] = z_spectrum(z)
            predictor = predictor_of(model)
            if predictor is not None:
                p = torch.cat(
                    [predictor(c.to(trainer.device)).float().cpu() for c in z.split(512)]
                )  # (bank, D)
                trainer.metrics.update({f"{k}_eval": v for k, v in p_stats(p).items()})
                trainer.metrics.update({f"{k}_eval": v for k, v in pred_alignment(z, p).items()})
        trainer.log_now = True
        model.train(was_training)


def predictor_of(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model's predictor, or None where it has none (DINO) or it is the identity
    (``method.predictor='none'``)."""
    predictor = getattr(model, "predictor", None)
    if predictor is None or isinstance(predictor, torch.nn.Identity):
        return None
    return predictor


class MetricsLog(Hook):
    """One JSON line per logged step in ``metrics.jsonl`` (and TensorBoard when installed)."""

    def __init__(self) -> None:
        self.tb = None

    def before_train(self, trainer: Trainer) -> None:
        self.path = trainer.run_dir / "metrics.jsonl"
        if self.path.exists():  # from step 0 again (no checkpoint): every row is redone
            start = trainer.resumed_from if trainer.resumed_from is not None else -1
            self._truncate_after(start)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(trainer.run_dir / "tb"))
        except ImportError:
            self.tb = None
        if trainer.metrics:  # a monitor measured step 0
            self._write(trainer.metrics)

    def _truncate_after(self, step: int) -> None:
        """Drop the rows an earlier attempt logged after ``step`` (its checkpoint's), which
        this one redoes, and a last row cut short by a kill; the file is replaced atomically
        (``common.files``), so a crash here leaves the old one."""
        rows = [r for r in self.path.read_text().splitlines() if r.strip()]
        kept = []
        for i, row in enumerate(rows):
            try:
                parsed = json.loads(row)
            except ValueError:
                if i == len(rows) - 1:
                    break  # written when the process was killed: the step is redone
                raise ValueError(f"{self.path}: line {i + 1} is not a JSON row") from None
            if parsed["step"] <= step:
                kept.append(row)
        atomic_write_text(self.path, "".join(r + "\n" for r in kept))

    def after_step(self, trainer: Trainer, out: dict[str, torch.Tensor]) -> None:
        t = trainer.cfg.train
        if (
            trainer.log_now
            or trainer.step % t.log_every == 0
            or trainer.step == trainer.total_steps
        ):
            trainer.metrics["images_per_s"] = trainer.images_per_second()
            self._write(trainer.metrics)

    def _write(self, row: dict) -> None:
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()
        }
        with self.path.open("a") as f:
            f.write(json.dumps(clean) + "\n")
        if self.tb is not None:
            for key, value in row.items():
                if isinstance(value, int | float) and key != "step":
                    self.tb.add_scalar(key, value, row["step"])

    def after_train(self, trainer: Trainer) -> None:
        if self.tb is not None:
            self.tb.close()

    on_error = after_train


class ProgressBar(Hook):
    """Progress with loss, z-std × √d, kNN, the verdict so far, rate and ETA: tqdm's bar on a
    terminal, elsewhere (a log file, Slurm) one plain line every few seconds
    (``common.progress``).

    The verdict is ``records.verdict.judge``'s over the monitor points logged so far (its window
    is the last fifth of the steps so far), the one verdict the run's records use: recomputed
    at each monitor point, never a single reading."""

    def before_train(self, trainer: Trainer) -> None:
        self.bar = progress(
            total=trainer.total_steps,
            initial=trainer.step,
            desc="pretrain",
            unit="step",
            dynamic_ncols=True,
        )
        self.postfix: dict[str, str] = {}
        self.loss_min = LOSS_MIN.get(trainer.cfg.method.name)
        self.rows: list[dict[str, Any]] = []  # the monitor rows so far (a resume's too)
        path = trainer.run_dir / "metrics.jsonl"
        if trainer.step > 0 and path.exists():
            self.rows = [json.loads(r) for r in path.read_text().splitlines() if r.strip()]
        elif trainer.metrics:  # a monitor measured step 0 (the random init's kNN)
            self.rows = [dict(trainer.metrics)]

    def after_step(self, trainer: Trainer, out: dict[str, torch.Tensor]) -> None:
        m = trainer.metrics
        self.postfix["loss"] = f"{m['loss']:.4f}"
        for key in ("z_std_sqrt_d", "knn_h", "knn_z"):
            if key in m:
                self.postfix[key] = f"{m[key]:.3g}"
        if trainer.log_now:  # a monitor point: judge the trace so far
            self.rows.append(dict(m))
            try:
                verdict = judge(self.rows, loss_min=self.loss_min).outcome
            except RecordError:  # no monitor point yet
                verdict = None
            if verdict is not None:
                self.postfix["verdict"] = verdict
        self.bar.set_postfix(self.postfix, refresh=False)
        self.bar.update(1)

    def after_train(self, trainer: Trainer) -> None:
        self.bar.close()

    def on_error(self, trainer: Trainer) -> None:
        if getattr(self, "bar", None) is not None:
            self.bar.close()  # its last line now, before the error or interruption message


class Checkpointer(Hook):
    """Atomic ``checkpoints/last.pt`` every ``train.ckpt_every`` steps, at the end, and on
    Ctrl-C (the last completed step, unless saved already), each with the hub encoder folder
    beside it (``write_encoder``), so a killed run has one too."""

    def after_step(self, trainer: Trainer, out: dict[str, torch.Tensor]) -> None:
        every = trainer.cfg.train.ckpt_every
        if (every and trainer.step % every == 0) or trainer.step == trainer.total_steps:
            self.save(trainer)

    def on_interrupt(self, trainer: Trainer) -> None:
        if trainer.step > 0 and trainer.saved_step != trainer.step:
            path = self.save(trainer)
            tqdm.write(f"saved {path} at step {trainer.step}", file=sys.stderr)

    @staticmethod
    def save(trainer: Trainer) -> Path:
        path = trainer.ckpt_dir / LAST
        state = trainer.state_dict()
        atomic_save(state, path)
        trainer.saved_step = trainer.step
        write_encoder(state, trainer.run_dir)
        return path


def write_encoder(state: dict[str, Any], run_dir: Path) -> Path:
    """``<run dir>/encoder/``: the run's encoder as ``hub/publish.py`` builds it
    (``hub.publish.encoder_from_training``), saved with ``Encoder.save_pretrained``; what
    ``transfer/run.py --model <run dir>`` and ``Encoder.from_pretrained`` load. Carries the
    final kNN result once summary.json has one."""
    results = [
        {k: v for k, v in r.items() if k != "record"}  # the card's link to a copy not made here
        for r in run_results(run_dir)
    ]
    encoder, _ = encoder_from_training(state, results=results, log=None)
    encoder.save_pretrained(run_dir / RUN_ENCODER)
    return run_dir / RUN_ENCODER


def default_hooks() -> list[Hook]:
    return [CollapseMonitor(), KnnMonitor(), MetricsLog(), ProgressBar(), Checkpointer()]
