"""The execution layer (submitit, torch.distributed); lands with the Slurm issue."""
