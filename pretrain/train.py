"""The training loop: one readable loop plus hooks (checkpoint, log, monitors, progress).

``Trainer(cfg, run_dir).fit()`` trains from scratch, or resumes from
``run_dir/checkpoints/last.pt`` when it exists — exactly: data order and augmentation are keyed
by step (see ``pretrain.data``), and the checkpoint restores the weights, the optimizer and
every RNG, so k steps + resume + k steps equals 2k uninterrupted steps. A resumed run's config
may differ from its checkpoint's only in ``pretrain.resume.RESUME_MUTABLE`` (checked before
anything is built); each difference is logged in the run's event log before ``config.json``
is rewritten. Temporary files of a killed checkpoint write are removed at start.

With a process group (``slurm.dist``) every rank trains its slice of the global batch
``train.batch_size``: BatchNorm becomes SyncBN (``train.sync_bn``), DDP wraps the method except
the submodules it lists in ``ddp_ignore`` (an EMA target), and only rank 0 runs the hooks
(logs, monitors, checkpoints). A ``StepGuard`` makes each step atomic for preemption signals.

Ctrl-C (SIGINT) is deferred the same way, to the end of the iteration in progress (its step
and every hook after it), so the state is never half-updated; then each hook's
``on_interrupt`` runs (the ``Checkpointer`` saves ``last.pt`` at that last completed step) and
the KeyboardInterrupt goes on: the same command resumes from there, exactly.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.cli import note_position
from common.files import atomic_write_json, remove_stale_temps
from pretrain.checkpoint import (
    CONFIG_JSON,
    LAST,
    append_event,
    check_architecture,
    check_same_run,
    read_checkpoint,
    rng_state,
    set_rng_state,
    stored_config,
)
from pretrain.config import Config, ConfigError, check_batch_split
from pretrain.data import pretrain_dataset, pretrain_loader
from pretrain.hooks import Hook
from pretrain.methods import build_method
from pretrain.optim import build_optimizer
from pretrain.resume import Change, check_resume_changes, config_changes
from pretrain.schedules import apply_lr, apply_weight_decay, cosine_between, lr_at, momentum_at
from slurm import dist as sdist
from slurm.signals import StepGuard
from slurm.syncbn import convert_sync_batchnorm


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())  # this rank's GPU
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device='cuda' but no CUDA device is visible; use 'cpu' or 'auto'")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"train.device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA by default; on CPU only when asked for."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return None
    raise ConfigError(f"train.precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")


class Trainer:
    """Pretrains ``cfg``'s method in ``run_dir``; hooks run in the order given."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        hooks: list[Hook] | None = None,
        step_guard: StepGuard | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.dist = sdist.current()
        # Rank 0 logs, monitors and checkpoints; a hook with all_ranks = True runs everywhere.
        hooks = hooks or []
        self.hooks = hooks if self.dist.is_main else [h for h in hooks if h.all_ranks]
        self.step_guard = step_guard
        self.resumed_from: int | None = None
        self.config_changes: list[Change] = []  # vs the run's stored config; logged in fit()
        self._ckpt: dict[str, Any] | None = None
        if self.dist.is_main:  # temporary files of a write killed mid-way (common.files)
            remove_stale_temps(self.ckpt_dir)
            remove_stale_temps(self.run_dir)  # config.json, summary.json, metrics.jsonl
        if (self.ckpt_dir / LAST).exists():
            self._ckpt = read_checkpoint(self.ckpt_dir / LAST)
            check_same_run(self.run_dir, self._ckpt["config"], self.ckpt_dir / LAST)
            check_architecture(self._ckpt["config"], cfg.to_dict(), self.ckpt_dir / LAST)
            self.config_changes = config_changes(self._ckpt["config"], cfg)
            check_resume_changes(self.config_changes, f"{run_dir} at step {self._ckpt['step']}")
        elif (stored := stored_config(self.run_dir)) is not None:
            self.config_changes = config_changes(stored, cfg)  # nothing trained yet: any change
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        if t.deterministic:
            torch.use_deterministic_algorithms(True)
        self.device = resolve_device(t.device)
        self.amp_dtype = autocast_dtype(t.precision, self.device)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format

        torch.manual_seed(t.seed)
        model = build_method(cfg)
        if self.dist.distributed and t.sync_bn:
            model = convert_sync_batchnorm(model, self.device)
        self.model: nn.Module = model.to(self.device, memory_format=self.memory_format)
        self.optimizer = build_optimizer(self.model, cfg)
        self.dataset = pretrain_dataset(cfg)
        self.steps_per_epoch = len(self.dataset) // t.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"train.batch_size={t.batch_size} is larger than the dataset ({len(self.dataset)})"
            )
        check_batch_split(t.batch_size, self.dist.world_size)
        per_rank = t.batch_size // self.dist.world_size
        if t.accum_steps < 1 or per_rank % t.accum_steps:
            raise ConfigError(
                f"train.accum_steps={t.accum_steps} must be >= 1 and divide each process's share "
                f"of the batch ({per_rank} = {t.batch_size} / {self.dist.world_size} processes)"
            )
        self.schedule_steps = math.ceil(t.epochs * self.steps_per_epoch)
        self.total_steps = (
            min(t.max_steps, self.schedule_steps) if t.max_steps else self.schedule_steps
        )
        self.step = 0
        self.metrics: dict[str, Any] = {}  # the current step's row, filled by hooks
        self.log_now = False  # a hook asks for this step's row to be logged
        self.train_seconds = 0.0  # pure step time, summed over every session of the run
        self.saved_step: int | None = None  # the step of checkpoints/last.pt (Checkpointer)
        if self._ckpt is not None:
            self._resume()
        # What the step calls: DDP around the trainable part (the raw model stays self.model).
        ignore = getattr(self.model, "ddp_ignore", ())
        self.forward_model = sdist.wrap_ddp(self.model, self.device, ignore)
        self._session = (self.step, self.train_seconds)  # where this process started

    def images_per_second(self) -> float:
        """Training images per second of step time since this process started."""
        steps = self.step - self._session[0]
        seconds = self.train_seconds - self._session[1]
        return steps * self.cfg.train.batch_size / seconds if seconds > 0 else 0.0

    # ------------------------------------------------------------------ state

    @property
    def epoch(self) -> float:
        return self.step / self.steps_per_epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "train_seconds": self.train_seconds,
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
        }

    def _resume(self) -> None:
        ckpt, self._ckpt = self._ckpt, None
        assert ckpt is not None
        self.model.load_state_dict(ckpt["model"], strict=True)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = ckpt["step"]
        self.train_seconds = ckpt.get("train_seconds", 0.0)
        set_rng_state(ckpt["rng"])
        self.resumed_from = self.saved_step = self.step

    def _record_config(self) -> None:
        """Log each config change in the run's event log, then write ``config.json`` (at a
        fresh start, after a change, or when missing; a plain resume leaves it as it is)."""
        for c in self.config_changes:
            append_event(
                self.run_dir, event="config_change", step=self.step, key=c.key, old=c.old, new=c.new
            )
        path = self.run_dir / CONFIG_JSON
        if self.config_changes or self.resumed_from is None or not path.exists():
            atomic_write_json(path, self.cfg.to_dict())
        self.config_changes = []

    # ------------------------------------------------------------------ loop

    def lr(self) -> float:
        o = self.cfg.optim
        epoch = self.epoch if o.per_step else math.floor(self.epoch)
        return lr_at(
            self.cfg.init_lr,
            epoch,
            self.cfg.train.epochs,
            warmup_epochs=self.cfg.warmup_epochs,
            schedule=o.schedule,
        )

    def momentum(self) -> float | None:
        """The EMA target's momentum at this step (BYOL §3.2 schedule); None without a target."""
        if not hasattr(self.model, "update_target"):
            return None
        m = self.cfg.method
        return momentum_at(m.momentum_base, self.step, self.schedule_steps, m.momentum_schedule)

    def weight_decay(self) -> float:
        o = self.cfg.optim
        if o.weight_decay_end is None:
            return o.weight_decay
        return cosine_between(o.weight_decay, o.weight_decay_end, self.step, self.schedule_steps)

    def fit(self) -> Trainer:
        """Train from ``self.step`` to ``total_steps``. When the loop stops early (Ctrl-C, an
        error), each hook's ``on_error`` runs (closing bars and files); after Ctrl-C each
        hook's ``on_interrupt`` then runs (the Checkpointer saves the last completed step);
        then the error goes on."""
        guard = self._interrupt_guard()
        try:
            return self._fit(guard)
        except BaseException as e:
            for hook in self.hooks:
                hook.on_error(self)
            if isinstance(e, KeyboardInterrupt):
                for hook in self.hooks:
                    hook.on_interrupt(self)
            raise
        finally:
            if guard is not None:
                guard.uninstall()

    @staticmethod
    def _interrupt_guard() -> StepGuard | None:
        """A ``StepGuard`` for SIGINT where Ctrl-C raises KeyboardInterrupt (Python's handler,
        in the main thread); None where SIGINT is ignored or not Python's to handle."""
        if threading.current_thread() is not threading.main_thread():
            return None
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None
        return StepGuard(signal.SIGINT).install()

    def _fit(self, interrupt_guard: StepGuard | None = None) -> Trainer:
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._record_config()
        note_position(f"step {self.step}/{self.total_steps}")
        for hook in self.hooks:
            hook.before_train(self)
        rank, world = self.dist.rank, self.dist.world_size
        loader = pretrain_loader(self.cfg, self.dataset, self.step, self.total_steps, rank, world)
        self.model.train()
        for views in loader:
            with ExitStack() as atomic:  # Ctrl-C waits for the step and its hooks
                if interrupt_guard is not None:
                    atomic.enter_context(interrupt_guard.step())
                self._iteration(views)
        for hook in self.hooks:
            hook.after_train(self)
        return self

    def _iteration(self, views: tuple[torch.Tensor, ...]) -> None:
        """One step, then its metrics row and the hooks."""
        with self.step_guard.step() if self.step_guard else nullcontext():
            started = time.perf_counter()
            lr = self.lr()
            apply_lr(self.optimizer, self.cfg.init_lr, lr)
            if self.cfg.optim.weight_decay_end is not None:
                apply_weight_decay(self.optimizer, self.weight_decay())
            momentum = self.momentum()
            out = self.train_step(*views, momentum=momentum)
            self.step += 1
            self.train_seconds += time.perf_counter() - started
        note_position(f"step {self.step}/{self.total_steps}")  # for the Ctrl-C message
        self.metrics = {"step": self.step, "epoch": self.epoch, "lr": lr}
        if momentum is not None:
            self.metrics["momentum"] = momentum
        # the global batch's loss (every rank gets it, so every rank stops on a NaN)
        self.metrics["loss"] = sdist.all_reduce_mean(out["loss"]).item()
        for key, value in out.items():  # a method's extra scalars (DINO: teacher entropy, KL)
            if key != "loss" and value.dim() == 0:
                self.metrics[key] = sdist.all_reduce_mean(value).item()
        if not math.isfinite(self.metrics["loss"]):
            raise FloatingPointError(
                f"loss became {self.metrics['loss']} at step {self.step}; lower optim.base_lr "
                "or use train.precision='fp32'"
            )
        self.log_now = False
        for hook in self.hooks:
            hook.after_step(self, out)
        if self.step % self.steps_per_epoch == 0:
            for hook in self.hooks:
                hook.after_epoch(self)

    def train_step(
        self, *views: torch.Tensor, momentum: float | None = None
    ) -> dict[str, torch.Tensor]:
        """Forward all views, backward, optimizer step, then the EMA target update (if any)."""
        views = tuple(
            x.to(self.device, non_blocking=True, memory_format=self.memory_format) for x in views
        )
        amp = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else nullcontext()
        )
        set_epoch = getattr(self.model, "set_epoch", None)  # per-epoch schedules (DINO's tau_t)
        if set_epoch is not None:
            set_epoch(self.epoch)
        self.optimizer.zero_grad(set_to_none=True)
        accum = self.cfg.train.accum_steps
        if accum == 1:
            with amp:
                out = self.forward_model(*views)
            out["loss"].backward()
        else:
            out = self._accumulate(views, accum, amp)
        before_step = getattr(self.model, "before_optimizer_step", None)  # DINO: clip, freeze
        if before_step is not None:
            before_step()
        self.optimizer.step()
        after_step = getattr(self.model, "after_optimizer_step", None)  # SimSiam §5 target refresh
        if after_step is not None:
            after_step()
        update_target = getattr(self.model, "update_target", None)
        if update_target is not None:
            if momentum is None:
                raise ValueError("a method with an EMA target needs the step's momentum")
            update_target(momentum)
        return out

    def _accumulate(
        self, views: tuple[torch.Tensor, ...], accum: int, amp: Any
    ) -> dict[str, torch.Tensor]:
        """Gradients of ``accum`` micro-batches summed (each loss scaled by 1/accum), with DDP's
        all-reduce only on the last one; returns the mean loss and the concatenated outputs."""
        chunks = list(zip(*(v.chunk(accum) for v in views), strict=True))  # accum × views
        outs = []
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            no_sync = getattr(self.forward_model, "no_sync", None)
            with nullcontext() if last or no_sync is None else no_sync():
                with amp:
                    out = self.forward_model(*chunk)
                (out["loss"] / len(chunks)).backward()
            outs.append({k: v.detach() for k, v in out.items()})
        merged = {  # outputs concatenated, scalars (the loss, ...) averaged
            k: torch.cat(vs) if vs[0].dim() > 0 else torch.stack(vs).mean()
            for k, vs in ((k, [o[k] for o in outs]) for k in outs[0])
        }
        return merged
