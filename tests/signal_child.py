"""A command-line tool run as a child that the test then interrupts, as Ctrl-C would.

- ``start_new_session=True``: the child has its own session and process group, so the only
  signals that reach it are those sent to its pid. In pytest's group it would also get every
  signal sent to that group: a terminal's or a CI runner's Ctrl-C meant for the whole suite,
  any ``kill -INT -<pgid>`` or ``os.killpg`` of it.
- SIGINT raises KeyboardInterrupt in the child even where pytest was started with SIGINT
  ignored (a background job), which a child inherits and Python then keeps.
- Every SIGINT the child receives is reported on its stderr with the sender's pid
  (``SIGINT from pid N``; ``sigwaitinfo`` in a thread of the child, which then interrupts the
  main thread as the signal would), so a test can assert who sent it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_LAUNCH = """
import _thread, os, runpy, signal, sys, threading
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # every thread (inherited): the waiter's

def report_and_interrupt():
    while True:
        info = signal.sigwaitinfo({signal.SIGINT})
        os.write(2, f"\\nSIGINT from pid {info.si_pid}\\n".encode())  # one write: a whole line
        _thread.interrupt_main(signal.SIGINT)  # the main thread's handler, as the signal would

threading.Thread(target=report_and_interrupt, daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
SENDER = re.compile(r"^SIGINT from pid (\d+)$", re.MULTILINE)


def start(script: str, *args: str, cwd: Path = ROOT) -> subprocess.Popen:
    """``python <ROOT>/<script> args`` in a session of its own, stdout and stderr piped."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def senders(stderr: str) -> list[int]:
    """The pid of the sender of each SIGINT the child received, in order."""
    return [int(pid) for pid in SENDER.findall(stderr)]


def without_senders(stderr: str) -> str:
    """The child's own stderr (the sender lines taken out)."""
    return SENDER.sub("", stderr).replace("\n\n", "\n")
