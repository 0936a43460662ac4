"""The lowest layer: what every package of the project shares and nothing else provides.

It imports no other package of the project, so ``hub``, ``pretrain``, ``transfer``, ``slurm``
and ``leaderboards`` may all import it.
"""
