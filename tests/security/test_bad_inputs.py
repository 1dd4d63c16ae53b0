"""A corpus of hand-picked bad inputs (names, paths, image references, numbers, profiles, commands, the
environment), each given to the real command by a real user against the real ds01d and engine.

Every case asserts: the contract's exit code, one line on stderr starting with `error:` (or click's usage
block for a command-line error, exit 2), no traceback and no `internal error` anywhere, and nothing changed:
no container or image in the engine, no folder made in the workspace or data roots.
Bad configs are covered by tests/unit/test_bad_configs.py; bad ds01d bodies by test_fuzz_endpoints.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.raw import Shuttle
from harness.users import TestUser as Account
from harness.users import ensure_user, run_as

pytestmark = pytest.mark.docker

USAGE, NOT_FOUND, QUOTA, DENIED, UNREACHABLE = 2, 3, 4, 5, 6
BAD_UTF8 = os.fsdecode(b"bad-\xff\xfe")  # argv bytes that are not UTF-8 (NUL cannot be passed in argv)


@dataclass(frozen=True)
class Case:
    command: str
    args: tuple[str, ...]
    rc: int
    env: tuple[tuple[str, str], ...] = ()

    def shown(self) -> str:
        env = " ".join(f"{k}={v!r}" for k, v in self.env)
        return f"{env} {self.command} {' '.join(repr(a) for a in self.args)}".strip()


def case(command: str, *args: str, rc: int = USAGE, env: dict[str, str] | None = None) -> Case:
    return Case(command, args, rc, tuple((env or {}).items()))


# -- names -------------------------------------------------------------------------------------------------
BAD_NAMES = [
    "", "   ", "\t", ".hidden", "..", "a..b", "x._.1001", "x._.", "._.", "a/b", "../../etc", "/etc/passwd",
    "a\\b", "x" * 64, "x" * 300, "y" * 20000, "a\nb", "a\rb", "a\x0bb", "a\x1b[31mred", "a\x07bell",
    "a\x7fdel", "a\x01b", "é", "ünïcode", "名前", "a\u202eb", "😀", "a\u200bb", "ＡＢＣ", "ß", "İx", "a b/c",
    "$(id)", "`id`", "a;rm", "a|b", "a&b", "a*", "a?", "~root", "%2e%2e", "a:b", "a@b", "a=b", "a,b", "_x",
    "a'b", 'a"b', "a#b", "a!b", "a+b", "a%b", BAD_UTF8, "a\x1fb",
]  # fmt: skip
NAME_COMMANDS = ("container-create", "container-start", "container-remove", "container-logs",
                 "image-create", "dir-create", "container-deploy", "image-delete")  # fmt: skip


def name_cases() -> list[Case]:
    cases = [case("container-create", n) for n in BAD_NAMES]
    # the same names through the other commands that take one (a sample of each kind)
    sample = ["", ".hidden", "a..b", "x._.1001x", "a/b", "x" * 64, "a\nb", "名前", "$(id)", BAD_UTF8, "_x"]
    cases += [case(cmd, n) for cmd in NAME_COMMANDS[1:] for n in sample]
    cases += [
        case("container-stop", "a/b"), case("container-pause", "x._.1001x"), case("container-unpause", ".."),
        case("container-attach", "a..b"), case("container-run", "x" * 64), case("readme-create", "a/b"),
        case("git-init", "../x"), case("image-update", "a b/c"), case("container-retire", "a/b", "--yes"),
        case("project-init", "a/b", "--yes"), case("project-launch", "../x", "--background"),
        case("container-stats", "a..b"),
        # names that look like options: a click usage error
        case("container-create", "-x"), case("container-create", "--"), case("container-remove", "-rf"),
        # a missing name with no terminal to ask on
        case("container-create"), case("container-start"), case("container-remove"), case("image-delete"),
        case("container-retire"), case("container-attach"), case("dir-create"), case("project-init", "--yes"),
        # well-formed, but nobody has it: not found
        case("container-start", "ghost", rc=NOT_FOUND), case("container-remove", "ghost", rc=NOT_FOUND),
        case("container-logs", "ghost", rc=NOT_FOUND), case("image-delete", "ghost", rc=NOT_FOUND),
        case("container-stop", "ghost", rc=NOT_FOUND),
        case("container-retire", "ghost", "--yes", rc=NOT_FOUND),
        case("container-start", "ghost._.0", rc=NOT_FOUND),
        case("container-start", "x._.{uid}", rc=NOT_FOUND),  # one's own engine name
        case("container-remove", "x._.{bob_uid}", rc=NOT_FOUND),  # another's: not found, not revealed
        case("container-start", "0" * 64, rc=NOT_FOUND),
        case("container-create", "thesis\n", rc=NOT_FOUND),  # stripped: a good name whose image is missing
    ]  # fmt: skip
    return cases


# -- paths -------------------------------------------------------------------------------------------------
def path_cases() -> list[Case]:
    """{...} are filled in by the `places` fixture."""
    outside = [
        "relative/dir", "../x", "/", "/etc", "/root", "/proc/self/root", "/proc/self/cwd",
        "/proc/1/root", "/sys/kernel", "/dev", "/dev/null", "/dev/zero", "/dev/shm", "/run", "/tmp",
        "{bob_home}", "~ds01t-bob", "~root", "{bob_ws}", "{ws}/../{bob}", "{ws}", "{data}/../..",
        "{loop}", "{loop}/inner", "{link_etc}", "{data_link}", "{data_file}", "{fifo}", "{socket}",
        "/tmp/a\nb", "/tmp/\x1b[2J", "/tmp/名前", "/tmp/a\u2028b",
    ]  # fmt: skip
    unusable = ["/" + "a/" * 3000, "/tmp/" + "x" * 5000, BAD_UTF8, "", " "]  # too long, not UTF-8, empty
    cases: list[Case] = []
    for p in outside:
        cases.append(case("container-create", "p", "--image", "{base}", "--data", p, rc=DENIED))
        cases.append(case("container-create", "p", "--image", "{base}", "--workspace", p, rc=DENIED))
    for p in unusable:
        cases.append(case("container-create", "p", "--image", "{base}", "--data", p, rc=USAGE))
        cases.append(case("container-create", "p", "--image", "{base}", "--workspace", p, rc=USAGE))
    # a bare --workspace is a project name (.. and . are not names); --data is always a path (.. is /)
    for p in ("..", ".", "a..b", "x._.1", "名前", "-x"):
        cases.append(case("container-create", "p", "--image", "{base}", "--workspace", p, rc=USAGE))
    for p in ("..", "."):
        cases.append(case("container-create", "p", "--image", "{base}", "--data", p, rc=DENIED))
    cases += [
        case("container-create", "p", "--image", "{base}", "--data", "{data}/missing", rc=NOT_FOUND),
        case("image-create", "p", "--dockerfile", "/dev/zero", rc=USAGE),
        case("image-create", "p", "--dockerfile", "{fifo}", rc=USAGE),
        case("image-create", "p", "--dockerfile", "{loop}", rc=USAGE),
        case("image-create", "p", "--dockerfile", "/nonexistent/Dockerfile", rc=NOT_FOUND),
        case("image-update", "p", "-r", "/dev/zero", rc=USAGE),
        case("image-update", "p", "-r", "{fifo}", rc=USAGE),
    ]  # fmt: skip
    return cases


# -- image references --------------------------------------------------------------------------------------
BAD_IMAGES = [
    "../../x", "UPPER/case", "Upper:tag", "a:b:c", "@sha256:short", "x@sha256:abc", ":tag", "x:", "/x", "x/",
    "x//y", "x" * 300, "é", "名前/x", "x y", "x\ty", "a..b", "a___b", ".x", "x.", "x-", "-", "   ",
    "%2e%2e/x", "x?y", "x#y", "$(id)", "x;y", "x\x1b[2J", "ＵＰＰＥＲ", "x:" + "t" * 129,
    "x@sha256:" + "g" * 64,
    "x:-tag", "x:.tag", "http://x/y", "x@", "@", BAD_UTF8, "a" * 256 + "/b", "x:名前", "x:é", "x:٣", "",
    "ds01-test/busybox:latest\x00".replace("\x00", "\x1b"),
]  # fmt: skip


def image_cases() -> list[Case]:
    cases = [case("container-create", "i", "--image", img) for img in BAD_IMAGES]
    cases += [case("container-deploy", "i", "--background", "--image", img)
              for img in ("../../x", "UPPER/case", "a:b:c", ":tag", "x" * 300, "名前")]  # fmt: skip
    cases += [
        case("container-create", "i", "--image=-x"),
        # well-formed references that are not there
        case("container-create", "i", "--image", "nothere:latest", rc=NOT_FOUND),
        case("container-create", "i", "--image", "x\n", rc=NOT_FOUND),  # stripped, as names are
        case("container-create", "i", "--image", "localhost:5000/a/b:c", rc=NOT_FOUND),
        case("container-create", "i", "--image", "sha256:" + "0" * 64, rc=NOT_FOUND),
        case("container-create", "i", "--image", "x@sha256:" + "0" * 64, rc=NOT_FOUND),
        case("container-create", "i", rc=NOT_FOUND),  # the default image ds01-UID/i:latest was never built
    ]  # fmt: skip
    return cases


# -- numbers, profiles, commands, options ----------------------------------------------------------------
def number_cases() -> list[Case]:
    create = ("container-create", "n", "--image", "{base}")
    return [
        *(case(*create, "--gpus", v) for v in ("-1", "1e9", "abc", "", "1.5", "0x10", "9" * 23)),
        case(*create, "--gpus", "1000", rc=QUOTA),
        case("container-deploy", "n", "--background", "--gpus", "-1"),
        case("container-deploy", "n", "--background", "--gpus", "1e9"),
        case("container-deploy", "n", "--background", "--port", "0"),
        case("container-deploy", "n", "--background", "--port", "70000"),
        case("container-stop", "n", "--timeout", "-5"), case("container-stop", "n", "--timeout", "abc"),
        case("container-stop", "n", "--timeout", "1e99"),
        case("container-stop", "n", "--timeout", "99999999999999999999999"),
        case("container-logs", "n", "--tail", "abc"), case("container-logs", "n", "--tail", "-1"),
        case("container-logs", "n", "--tail", "99999999999999999999999"),
        case("project-init", "n", "--yes", "--gpus", "-1"), case("project-init", "n", "--yes", "--gpus", "x"),
        case("project-launch", "n", "--background", "--gpus", "-3"),
        case("container-port", "n", "0"), case("container-port", "n", "99999"),
        case("container-port", "n", "abc"),
    ]  # fmt: skip


def profile_and_command_cases() -> list[Case]:
    create = ("container-create", "m", "--image", "{base}")
    profiles = ["", " ", "9g.1tb", "1g", "0g.0gb", "-1g.10gb", "1g.10gb,2g.20gb", "x" * 300, "名前",
                "1g.10gb\n", "\x1b[2J", "1g..10gb"]  # fmt: skip
    cases = [case(*create, "--mig-profile", p) for p in profiles]
    cases += [case("container-deploy", "m", "--background", "--image", "{base}", "--mig-profile", p)
              for p in ("", "9g.1tb", "1g")]  # fmt: skip
    cases += [
        case(*create, "--mig-profile", "7g.80gb"),  # well-formed, but this box has no such profile
        case(*create, "--cpu-only", "--gpus", "1"), case(*create, "--cpu-only", "--mig-profile", "1g.10gb"),
        case(*create, "--command", "x", "--image-cmd"),
        case("container-deploy", "m", "--cpu-only", "--gpus", "1"),
        case("container-deploy", "m", "--open", "--background"),
    ]  # fmt: skip
    commands = ['"unterminated', "'", 'a "b', "\\", "echo 'x", 'python -c "print(1)']
    cases += [case(*create, "--command", c) for c in commands]
    cases += [
        case("container-list", "--status", "bogus"), case("container-list", "--status", ""),
        case("container-list", "--bogus"), case("container-create", "x", "--gpus"),
        case("image-create", "t", "--type", "bogus", "--no-build"),
        case("image-create", "t", "--framework", "bogus", "--no-build"),
        case("project-init", "t", "--yes", "--type", "bogus"),
        case("project-init", "t", "--yes", "--framework", "../../x"),
        case("dir-create", "t", "--type", "bogus"), case("git-init", "t", "--type", "bogus"),
        case("user-setup", "--yes", "--experience", "guru"),
        # another user, or a system account, through --user: permission
        case("container-list", "--user", "root", rc=DENIED),
        case("container-list", "--user", "ds01t-bob", rc=DENIED),
        case("check-limits", "--user", "root", rc=DENIED),
        case("check-limits", "--user", "../../x", rc=NOT_FOUND),  # no such account: said before the rights
        case("container-create", "u", "--user", "ds01t-bob", "--image", "{base}", rc=DENIED),
        case("ds01-reaper", "--once", "--dry-run", rc=DENIED),
        case("ds01-reaper", "--once", "--now", "not-a-time", rc=DENIED),
    ]  # fmt: skip
    return cases


def env_cases() -> list[Case]:
    return [
        case("container-list", rc=UNREACHABLE, env={"DS01_SOCKET": "/nonexistent/ds01.sock"}),
        case("container-list", rc=UNREACHABLE, env={"DS01_SOCKET": "/dev/null"}),
        case("container-list", rc=UNREACHABLE, env={"DS01_SOCKET": "/etc/passwd"}),
        case("container-list", rc=UNREACHABLE, env={"DS01_SOCKET": "/tmp"}),
        case("container-list", rc=UNREACHABLE, env={"DS01_SOCKET": "x" * 200}),
        case("gpu-status", rc=UNREACHABLE, env={"DS01_SOCKET": "{fifo}"}),
        case("container-list", "--json", rc=UNREACHABLE, env={"DS01_SOCKET": "relative.sock"}),
    ]


def recipe_and_helper_cases() -> list[Case]:
    create = ("image-create", "pk", "--no-build")
    return [
        *(case(*create, "--base", b) for b in ("../../x", "UPPER/x", "a:b:c", "", "x" * 300, "名前")),
        *(case(*create, "--packages", p) for p in ("-e/x", "torch==1;rm", "$(id)", "a\x1b[2J", "--pre")),
        *(case(*create, "--system", p) for p in ("../x", "vim;rm", "-y", "a\x1b[2J")),
        case("image-update", "ghost", rc=NOT_FOUND),
        case("image-update", "ghost", "--add", "x", rc=NOT_FOUND),
        case("image-create", "pk", "--dockerfile", "/etc/shadow", rc=DENIED),
        case("image-update", "pk", "-r", "/etc/shadow", rc=DENIED),
        case("ds01", "events", "--limit", "0"), case("ds01", "events", "--limit", "-1"),
        case("ds01", "events", "--limit", "99999999999"), case("ds01", "events", "--since", "garbage"),
        case("ds01", "events", "--limit", "x"), case("ds01", "bogus"), case("ds01", "container", "bogus"),
        case("user-setup", "--yes", "--project", "a/b"), case("user-setup", "--yes", "--project", ".."),
        case("container-jupyter", "ghost", rc=NOT_FOUND),
        case("container-port", "ghost", "--list", rc=NOT_FOUND),
        case("container-run", "ghost", "--", "ls", rc=NOT_FOUND),
        case("container-attach", "ghost", rc=NOT_FOUND),
        case("container-stats", "ghost", rc=NOT_FOUND), case("container-pause", "ghost", rc=NOT_FOUND),
        case("ds01", "image", "build-base", "--only", "x", rc=DENIED),
        case("ds01", "container", "create", "a/b"), case("ds01", "image", "delete", "a..b"),
        *(case("container-ssh", "--config", "--server", v)  # would be written into ~/.ssh/config
          for v in ("a\nHost *\n  ProxyCommand evil", "x y", "", "-oProxyCommand=evil", "a;b", "名前")),
        # values longer than any request line ds01d reads (64 KiB): refused in one line, not "unreachable"
        *(case(*argv, "y" * 100_000) for argv in (
            ("image-delete",), ("container-list", "--status"), ("check-limits", "--user"),
            ("ds01", "events", "--type"), ("ds01", "events", "--since"), ("container-stats", "--user"),
            ("image-list", "--user"), ("ds01", "events", "--container"),
        )),
    ]  # fmt: skip


ALL_GROUPS = {
    "names": name_cases,
    "paths": path_cases,
    "images": image_cases,
    "numbers": number_cases,
    "profiles-commands-options": profile_and_command_cases,
    "environment": env_cases,
    "recipes-and-helpers": recipe_and_helper_cases,
}


def total_cases() -> int:
    return sum(len(make()) for make in ALL_GROUPS.values())


# -- running them ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tester() -> Account:
    """An account of its own: whatever a refused input might still do to a home stays out of others' tests."""
    return ensure_user("ds01t-badin")


@pytest.fixture
def places(ds01_home, unix_users, tester, base_image_ref) -> Iterator[dict[str, str]]:
    """Paths the corpus points at: a symlink loop, links out of the data root, a FIFO, other users' trees."""
    me, bob = tester, unix_users["bob"]
    mine = Path(tempfile.mkdtemp(prefix="ds01-bad-", dir="/tmp"))
    mine.chmod(0o755)
    (mine / "loop").symlink_to(mine / "loop")
    (mine / "etc").symlink_to("/etc")
    os.mkfifo(mine / "fifo")
    for p in (mine, mine / "fifo"):
        os.chown(p, me.uid, me.gid, follow_symlinks=False)
    data = Path(ds01_home) / "data"
    (data / "to-etc").symlink_to("/etc")
    (data / "file.txt").write_text("a file, not a folder\n")
    ws = Path(ds01_home) / "ws"
    (ws / bob.name).mkdir(mode=0o755, exist_ok=True)
    (ws / bob.name / "secret").mkdir(mode=0o755, exist_ok=True)
    yield {
        "base": base_image_ref,
        "bob": bob.name,
        "bob_home": str(bob.home),
        "bob_ws": str(ws / bob.name / "secret"),
        "ws": str(ws / me.name),
        "uid": str(me.uid),
        "bob_uid": str(bob.uid),
        "data": str(data),
        "loop": str(mine / "loop"),
        "link_etc": str(mine / "etc"),
        "data_link": str(data / "to-etc"),
        "data_file": str(data / "file.txt"),
        "fifo": str(mine / "fifo"),
        "socket": str(ds01_home.socket),
    }
    shutil.rmtree(mine, ignore_errors=True)


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text


def _engine_state(engine) -> tuple[list[str], list[str]]:
    containers = sorted(c["Id"] for c in engine.api.containers(all=True))
    images = sorted(i["Id"] for i in engine.api.images(all=True))
    return containers, images


def _tree(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            found += [os.path.join(dirpath, n) for n in dirnames + filenames]
    return sorted(found)


def verdict(c: Case, result: subprocess.CompletedProcess[str]) -> str | None:
    """What is wrong with this answer (None: it is the contract's)."""
    out, err = result.stdout, result.stderr
    for text in (out, err):
        if "Traceback" in text or "internal error" in text or "Exception ignored" in text:
            return f"crash: {err[-600:]!r}"
    if result.returncode != c.rc:
        return f"rc {result.returncode}, want {c.rc}: {err[-400:]!r}"
    lines = err.splitlines()
    if "Usage:" in err or "─ Error ─" in err:  # click's usage error, as typer shows it
        return None if result.returncode == USAGE else f"usage block with rc {result.returncode}"
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"stderr is not one error line: {err[-400:]!r}"
    return None


def run_group(name: str, user: Account, places: dict[str, str], engine, ds01_home) -> None:
    cases = ALL_GROUPS[name]()
    before = _engine_state(engine), _tree(Path(ds01_home) / "ws", Path(ds01_home) / "data")

    def one(c: Case) -> tuple[Case, str | None]:
        args = [_fill(a, places) for a in c.args]
        env = {k: _fill(v, places) for k, v in c.env}
        try:
            result = run_as(user, c.command, *args, env=env, input="", timeout=60)
        except subprocess.TimeoutExpired:
            return c, "hung for 60 s"
        return c, verdict(c, result)

    with ThreadPoolExecutor(max_workers=4) as pool:
        wrong = [f"{c.shown()[:200]}: {why}" for c, why in pool.map(one, cases) if why]
    after = _engine_state(engine), _tree(Path(ds01_home) / "ws", Path(ds01_home) / "data")
    assert not wrong, f"{len(wrong)} of {len(cases)} bad inputs got a wrong answer:\n" + "\n".join(wrong)
    assert after == before, "a refused input changed the engine or the workspace/data roots"
    assert "Traceback" not in ds01_home.server.log_text()
    assert run_as(user, "container-list", "--json").returncode == 0  # ds01d still serves


def test_requests_http_server_itself_refuses_get_the_protocols_error_line(ds01_home, tester):
    """What ds01d's HTTP layer refuses before any endpoint runs (a request line or header over 64 KiB,
    bad syntax, an unknown method) still answers with one JSON error line and exit 2, and ds01d serves on."""
    shuttle = Shuttle(tester, ds01_home.socket)
    try:
        refused = {
            "request line": ("GET", "/v1/containers?status=" + "y" * 70_000),
            "header line": ("GET", "/v1/version HTTP/1.1\r\nX-Long: " + "a" * 70_000 + "\r\nX-End: 1"),
            "syntax": ("GET", "/v1/version HTTP/9"),
            "method": ("PUT", "/v1/containers"),
            "other method": ("BREW", "/v1/version"),
        }
        for what, (method, target) in refused.items():
            answer = shuttle.send(method, target, "")
            assert 400 <= answer.status < 600 and answer.error, (what, answer)
            assert answer.exit_code == USAGE and "\n" not in answer.error["message"], (what, answer)
        assert shuttle.send("GET", "/v1/version", "").result["version"]
    finally:
        shuttle.close()


def test_a_description_cannot_break_or_add_to_the_project_file(ds01_home, engine_clean, tester):
    """A --desc with quotes, newlines, a table header and escapes stays one string of pyproject.toml."""
    import tomllib

    desc = 'a"b\nc = 1\n[tool.ds01]\nimage = "x"\\ \x1b[2J \u2028'
    result = run_as(tester, "project-init", "desc", "--yes", "--no-git", "--desc", desc, input="")
    assert result.returncode == 0, result.stderr
    parsed = tomllib.loads((Path(ds01_home) / "ws" / tester.name / "desc" / "pyproject.toml").read_text())
    assert parsed["project"]["description"].startswith("a'b c = 1 [tool.ds01]")
    assert parsed["tool"]["ds01"]["image"] == f"ds01-{tester.uid}/desc:latest"


def test_a_closed_stderr_keeps_the_exit_code(ds01_home, engine_clean, tester):
    """Started with stderr closed (`2>&-`), a command has nowhere to say why: it still exits with the
    contract's code (not 1 from failing to print)."""
    from harness.users import bin_dir

    for argv, rc in ((["container-create"], USAGE), (["container-start", "ghost"], NOT_FOUND),
                     (["container-list"], 0), (["container-create", "a/b"], USAGE)):  # fmt: skip
        script = f"exec env -i DS01_SOCKET={ds01_home.socket} {bin_dir() / argv[0]} {' '.join(argv[1:])} 2>&-"
        result = subprocess.run(
            ["runuser", "-u", tester.name, "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == rc, (argv, result)
        assert "Traceback" not in result.stdout


def test_an_admin_cannot_act_for_root_or_a_system_account(ds01_home, engine_clean):
    """As root (an admin), --user naming root, a system account or nobody (65534: no lab member) is exit 5."""
    from harness.users import bin_dir

    env = {**os.environ, "DS01_SOCKET": str(ds01_home.socket)}
    for name in ("root", "0", "daemon", "nobody", "65534", "bin"):
        for argv in (["container-list", "--user", name], ["dir-create", "x", "--user", name]):
            result = subprocess.run(
                [str(bin_dir() / argv[0]), *argv[1:]], env=env, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert result.returncode == DENIED, (argv, result.returncode, result.stderr)
            assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not list((Path(ds01_home) / "ws").iterdir())  # no workspace root made for anyone


def test_the_corpus_has_at_least_200_hand_picked_inputs():
    assert total_cases() >= 200, total_cases()


@pytest.mark.parametrize("group", list(ALL_GROUPS))
def test_bad_inputs_get_the_contracts_answer_and_change_nothing(
    group, ds01_home, engine_clean, tester, places
):
    run_group(group, tester, places, engine_clean, ds01_home)
