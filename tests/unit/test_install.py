"""scripts/install's commands step: marked wrappers in a bin dir the admin chooses, and never a silent
overwrite of a command ds01 did not write (an unrelated `project` of the host was once replaced)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install"
VENV = Path(sys.prefix)
MARKER = "# ds01-managed"
UNRELATED = "#!/bin/sh\necho 'the host's own project tool'\n"
COMMANDS = sorted(ep.name for ep in distribution("ds01").entry_points if ep.group == "console_scripts")


def install(bin_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DS01_")}
    full.update(DS01_VENV=str(VENV), DS01_SKIP_PACKAGES="1", **(env or {}))
    return subprocess.run(
        ["bash", str(INSTALL), "--only", "commands", "--bin-dir", str(bin_dir), *args],
        capture_output=True, text=True, env=full, timeout=60,
    )  # fmt: skip


def unrelated_project(bin_dir: Path) -> Path:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "project"
    tool.write_text(UNRELATED)
    tool.chmod(0o751)
    return tool


def test_every_command_is_a_marked_wrapper_that_runs(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    result = install(bin_dir)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in bin_dir.iterdir()) == COMMANDS
    for name in COMMANDS:
        text = (bin_dir / name).read_text()
        assert text.splitlines()[1].startswith(MARKER), name
        assert f'exec "{VENV}/bin/{name}" "$@"' in text
        assert (bin_dir / name).stat().st_mode & 0o777 == 0o755
    from ds01 import __version__

    ran = subprocess.run([str(bin_dir / "ds01"), "--version"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip() == f"ds01 {__version__}"


def test_an_unmarked_command_is_refused_listed_and_left_untouched(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    tool = unrelated_project(bin_dir)
    before = tool.stat()
    result = install(bin_dir)
    assert result.returncode == 1
    assert str(tool) in result.stderr and "--force" in result.stderr and "--bin-dir" in result.stderr
    assert tool.read_text() == UNRELATED
    after = tool.stat()
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (
        before.st_ino, before.st_mode, before.st_mtime_ns,
    )  # fmt: skip
    assert sorted(p.name for p in bin_dir.iterdir()) == ["project"], "nothing is half-installed"


def test_force_replaces_the_unmarked_command(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    tool = unrelated_project(bin_dir)
    result = install(bin_dir, "--force")
    assert result.returncode == 0, result.stderr
    assert str(tool) in result.stdout
    assert tool.read_text().splitlines()[1].startswith(MARKER)
    assert sorted(p.name for p in bin_dir.iterdir()) == COMMANDS


def test_a_symlink_counts_as_a_clash(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gpu").symlink_to("/bin/true")
    result = install(bin_dir)
    assert result.returncode == 1 and str(bin_dir / "gpu") in result.stderr
    assert os.readlink(bin_dir / "gpu") == "/bin/true"


def test_a_directory_is_never_replaced(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    (bin_dir / "image").mkdir(parents=True)
    (bin_dir / "image" / "keep").write_text("x")
    result = install(bin_dir, "--force")
    assert result.returncode == 1 and "directory" in result.stderr
    assert (bin_dir / "image" / "keep").read_text() == "x"


def test_rerun_updates_ds01s_own_files_and_drops_stale_ones(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    assert install(bin_dir).returncode == 0
    (bin_dir / "ds01").write_text(f"#!/bin/sh\n{MARKER}: an older version\nexit 1\n")
    (bin_dir / "ds01-gone").write_text(f"#!/bin/sh\n{MARKER}: a command that no longer exists\n")
    (bin_dir / "ds01-mine").write_text("#!/bin/sh\necho not ds01's\n")
    legacy = bin_dir / "container-list"
    legacy.write_text(
        "#!/bin/sh\n"
        "# ds01: container-list through the lab's sudo rule, so users need not be in the docker group.\n"
        'exec sudo -n /opt/ds01/venv/bin/container-list "$@"\n'
    )
    result = install(bin_dir)
    assert result.returncode == 0, result.stderr
    assert f'exec "{VENV}/bin/ds01" "$@"' in (bin_dir / "ds01").read_text()
    assert "sudo" not in legacy.read_text() and MARKER in legacy.read_text()
    assert not (bin_dir / "ds01-gone").exists()
    assert (bin_dir / "ds01-mine").read_text() == "#!/bin/sh\necho not ds01's\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--bin-dir", "relative/bin"), "absolute"), (("--frobnicate",), "unknown argument"),
     (("--only", "everything"), "unknown step")],
)  # fmt: skip
def test_bad_arguments_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DS01_")}
    result = subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, env=full, timeout=60
    )
    assert result.returncode == 2 and message in result.stderr
