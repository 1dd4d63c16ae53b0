"""Endpoints: gpus."""

from __future__ import annotations
