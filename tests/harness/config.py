"""The test config: the shipped one, pointed into a test's tmp world."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, tmp: Path, **sections: object) -> Path:
    """The shipped config, pointed into tmp, with network none (the private engine has no bridge)."""
    data = yaml.safe_load((ROOT / "config" / "resource-limits.yaml").read_text())
    data["paths"] = {
        "workspace_root": str(tmp / "ws"),
        "data_roots": [str(tmp / "data")],
        "socket": str(tmp / "ds01.sock"),
        "state_dir": str(tmp / "state"),
        "log_dir": str(tmp / "log"),
    }
    data["containers"] = {"network": "none", "init": True, "env": {}}
    data["monitoring"] = {"listen": None}  # tests that scrape give their own free port
    data["gpu"] = {
        "backend": "simulated",
        "inventory": str(ROOT / "config" / "simulated-gpus.yaml"),
        "attach": "device-request",
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
