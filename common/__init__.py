"""The lowest layer: what every package of the project shares and nothing else provides.

It imports no other package of the project, so ``hub``, ``pretrain``, ``transfer``, ``slurm``,
``experiments`` and ``leaderboards`` may all import it. What pretraining and transfer both use
lives here: the data readers, eval transforms, the small-image augmentation, kNN and feature
extraction, LARS and the normalization constants.
"""
