"""Endpoints: lifecycle."""

from __future__ import annotations
