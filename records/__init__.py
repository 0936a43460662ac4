"""The result-record contract: which tasks exist, what a record of each must hold, how one is
written (validated, atomic, immutable) and how long its pretraining ran.

Every writer (``transfer/run.py``, ``experiments/sweep.py``, ``experiments/ablate.py``) and the
reader (``leaderboards/``) use this package; it imports nothing of the project but ``common``.
"""
