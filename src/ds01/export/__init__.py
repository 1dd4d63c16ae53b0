"""Exports of ds01's quotas and projects to cluster schedulers (Slurm, Kubernetes).

Engine-free and config-free: the input is what ds01d's `GET /v1/admin/quotas` (or `GET /v1/quotas`) returns,
so the translation runs in the client and in tests alike. Each export says what did not translate.
"""
