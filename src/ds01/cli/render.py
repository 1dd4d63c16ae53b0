"""Human renderings of command results (JSON needs none: `Output.json` prints the data as is)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ds01 import units
from ds01.output import Output

_LIMIT_LABELS = {
    "max_gpu_equivalents": "GPU share (gpueq)",
    "max_gpu_slots_per_container": "GPU slots per container",
    "allow_full_gpu": "full GPUs allowed",
    "max_cpus": "CPUs per container",
    "memory": "memory per container",
    "memory_swap": "memory + swap",
    "shm_size": "shared memory (/dev/shm)",
    "pids_limit": "processes per container",
    "max_containers_per_user": "containers",
    "max_runtime_h": "max runtime",
    "idle_timeout_h": "idle timeout",
    "gpu_hold_after_stop_h": "GPU kept after stop",
    "container_hold_after_stop_h": "stopped container kept",
    "priority": "priority",
}


def _limit_value(key: str, value: Any) -> str:
    if value is None:
        return "unlimited" if not key.endswith("_h") else "never"
    if key.endswith("_h"):
        return units.format_hours(float(value))
    if isinstance(value, bool):
        return "yes" if value else "no (MIG slices only)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_limits(out: Output, report: dict[str, Any]) -> None:
    usage = report["usage"]
    role = " (admin)" if report["admin"] else ""
    out.say(
        f"[bold]{report['user']}[/bold] (uid {report['uid']}), group [bold]{report['group']}[/bold]{role}"
    )
    rows = []
    for key, value in report["limits"].items():
        now = ""
        if key == "max_gpu_equivalents":
            now = f"{usage['gpu_equivalents']:g} used"
        elif key == "max_containers_per_user":
            now = f"{usage['containers']} used"
        rows.append((_LIMIT_LABELS.get(key, key), _limit_value(key, value), report["source"][key], now))
    out.table(("limit", "value", "from", "now"), rows)
    out.hint(f"config: {report['config']}")


def render_checks(out: Output, checks: Sequence[Any]) -> None:
    marks = {
        "ok": "[green]ok[/green]",
        "warning": "[yellow]warning[/yellow]",
        "failure": "[red]failure[/red]",
    }
    from rich.markup import escape
    from rich.table import Table

    rows = [(c.name, marks[c.status], escape(c.detail), escape(c.fix)) for c in checks]
    table = Table(header_style="bold")
    for col in ("check", "status", "detail", "how to fix"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    out.console.print(table)
