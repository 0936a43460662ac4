"""The execution layer: torch.distributed set-up, submitit presets and submission, job arrays,
preemption-safe steps, and a real single-node dev cluster (``slurm/dev-cluster``)."""
