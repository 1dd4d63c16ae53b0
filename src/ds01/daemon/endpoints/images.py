"""Endpoints: images."""

from __future__ import annotations
