"""Cluster mode on the user's side: GPU deploys submitted to Slurm as the user (`submit.py`), and the job's
step that asks the allocated node's ds01d for the container and lives as long as it does (`step.py`)."""
