"""Endpoints: workspaces."""

from __future__ import annotations
