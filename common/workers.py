"""How many DataLoader worker processes to start: the ones asked for, at most one per CPU this
process may run on (above that torch warns "this DataLoader will create N worker processes ...
suggested max number of worker in current system is M", and the extra workers only compete for
the same cores)."""

from __future__ import annotations

from common.system import available_cpus


def loader_workers(requested: int) -> int:
    """``requested`` DataLoader workers, capped at the CPUs available (0 stays 0)."""
    return max(0, min(int(requested), available_cpus()))
