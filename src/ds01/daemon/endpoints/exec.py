"""Endpoints: exec."""

from __future__ import annotations
