"""Preemption signals that land between training steps, never inside one.

Slurm signals a preempted or timed-out job (USR2 under submitit); submitit's handler then calls
the job's ``checkpoint()`` and requeues. A Python signal handler runs at the next bytecode of
the main thread, which may be halfway through an optimizer step or a BatchNorm update, so a
checkpoint saved there could mix two steps. ``StepGuard`` wraps the installed handler: during a
step the signal is only recorded, and the original handler runs as soon as the step is complete.
Signals reaching forked children (DataLoader workers inherit the handler) are ignored there.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class StepGuard:
    """Defers ``signum`` (default USR2) to the end of the current ``with guard.step():`` block."""

    def __init__(self, signum: int = signal.SIGUSR2) -> None:
        self.signum = signum
        self.original = None
        self.pending: tuple[int, FrameType | None] | None = None
        self.in_step = False
        self.pid = os.getpid()

    def install(self) -> StepGuard:
        """Put the guard in front of the handler installed now (submitit's, inside a job)."""
        self.original = signal.getsignal(self.signum)
        self.pid = os.getpid()
        signal.signal(self.signum, self._handle)
        return self

    def uninstall(self) -> None:
        if self.original is not None:
            signal.signal(self.signum, self.original)
            self.original = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.pid:
            return  # a DataLoader worker: the main process handles it
        if self.in_step:
            self.pending = (signum, frame)
        else:
            self._deliver(signum, frame)

    def _deliver(self, signum: int, frame: FrameType | None) -> None:
        if callable(self.original):
            self.original(signum, frame)
        elif self.original == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    @contextmanager
    def step(self) -> Iterator[None]:
        self.in_step = True
        try:
            yield
        finally:
            self.in_step = False
            if self.pending is not None:
                pending, self.pending = self.pending, None
                self._deliver(*pending)


def ignore_sigterm() -> None:
    """Ignore SIGTERM at the OS level, in this process and the commands it starts.

    On preemption Slurm sends SIGTERM together with USR2 (SIGKILL follows after the grace
    time). submitit's Python handler only logs SIGTERM, but the ``scontrol requeue`` child that
    its USR2 handler runs would die of it; SIG_IGN, unlike a Python handler, is inherited.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
