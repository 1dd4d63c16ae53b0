"""Unit-test fixtures: the fake NVML library (tests/gpu_fixtures.py)."""

from gpu_fixtures import fake_nvml

__all__ = ["fake_nvml"]
