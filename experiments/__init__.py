"""What runs pretraining and transfer together: sweeps (``sweep.py``: pretrain then measure each
point) and the collapse-ablation benchmark (``ablate.py``). The top layer: it imports
``pretrain`` and ``transfer``, and neither imports it."""
