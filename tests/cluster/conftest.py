"""Cluster mode against the real test Slurm cluster: ds01d configured with `cluster.backend: slurm`, this
host as the node `ds01-n1`, the simulated inventory of its 4 GPUs (indices 0-3, as in its gres.conf)."""

from __future__ import annotations

from typing import Any

import pytest

from harness import slurm


@pytest.fixture
def slurm_world(slurm_cluster: slurm.Cluster, ds01_home: Any, unix_users: Any, engine_clean: Any) -> Any:
    """ds01_home in cluster mode on the test cluster's node (`slurm_sections`: its config sections)."""
    ds01_home.slurm_sections = slurm.cluster_mode(slurm_cluster, [u.name for u in unix_users.values()])
    ds01_home.reconfigure(**ds01_home.slurm_sections)
    yield ds01_home
    slurm_cluster.cancel_all()


@pytest.fixture
def slurm_mig(slurm_cluster: slurm.Cluster, slurm_world: Any) -> Any:
    """The same cluster and ds01d with MIG: the node's GPUs as `slurm.MIG_LAYOUT` (whole GPU 0, GPUs 1 and 2
    split), Slurm's gres typed by profile; back to 4 whole GPUs afterwards."""
    slurm.use_mig(slurm_cluster, True)
    yield slurm_cluster
    slurm.use_mig(slurm_cluster, False)
