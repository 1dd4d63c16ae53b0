"""The translation of ds01's quotas into `sacctmgr` commands (engine-free; the real slurmdbd run is in
tests/cluster/test_quota_export_slurm.py)."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import asdict

import pytest

from ds01.config import load_config, shipped_dir
from ds01.daemon.endpoints.quotas import _group_limits
from ds01.export.quotas import quota_set, whole_cpus, whole_gpus
from ds01.export.slurm import account_name, apply, slurm_export, wall
from ds01.limits import Limits

GIB = 1 << 30


def shipped_answer(users: list[dict[str, object]]) -> dict[str, object]:
    """What GET /v1/admin/quotas answers for the shipped config (groups resolved by ds01d's own code)."""
    config = load_config(shipped_dir("config") / "resource-limits.yaml")
    return {
        "default_group": config.default_group,
        "groups": [
            {"name": g.name, "admin": g.admin, "limits": _group_limits(config, g)} for g in config.groups
        ],
        "users": users,
        "cluster": {"registry": None},
    }


def user(name: str, group: str, **limits: object) -> dict[str, object]:
    base = {**asdict(Limits()), **limits}
    return {
        "name": name,
        "uid": 2000,
        "gid": 2000,
        "group": group,
        "limits": base,
        "overrides": sorted(limits),
    }


def argv(commands: tuple[str, ...], *words: str) -> list[list[str]]:
    """The commands (as the shell splits them) that start with `sacctmgr -i <words>`."""
    split = [shlex.split(c) for c in commands]
    return [a for a in split if a[2 : 2 + len(words)] == list(words)]


def setting(args: list[str], key: str) -> str:
    return next(a.split("=", 1)[1] for a in args[args.index("set") :] if a.startswith(key + "="))


@pytest.mark.parametrize(
    ("hours", "text"),
    [
        (24, "1-00:00:00"),
        (0.5, "00:30:00"),
        (72.25, "3-00:15:00"),
        (48, "2-00:00:00"),
        (None, "-1"),
        (0.001, "00:01:00"),
    ],
)
def test_max_runtime_becomes_max_wall_in_whole_minutes(hours, text):
    assert wall(hours) == text


@pytest.mark.parametrize(("gpueq", "gpus"), [(1.0, 1), (1.5, 1), (2.99, 2), (0.5, 1), (0.0, 0), (None, None)])
def test_gpu_shares_round_down_to_whole_gpus_but_a_slice_share_keeps_one(gpueq, gpus):
    assert whole_gpus(gpueq) == gpus


@pytest.mark.parametrize(("cpus", "whole"), [(8.0, 8), (1.5, 2), (0.25, 1), (None, None)])
def test_cpus_round_up_as_a_ds01_job_asks_for_them(cpus, whole):
    assert whole_cpus(cpus) == whole


def test_every_group_is_an_account_with_its_per_job_caps_and_every_user_a_member():
    answer = shipped_answer(
        [user("alice", "student", max_gpu_equivalents=1.0), user("bob", "researcher"), user("root2", "admin")]
    )
    answer["users"][0]["overrides"] = []  # alice: the group's values, no override
    out = slurm_export(quota_set(answer))
    assert all(shlex.split(c)[:2] == ["sacctmgr", "-i"] for c in out.commands)
    added = {a[4] for a in argv(out.commands, "add", "account")}
    assert added == {"student", "researcher", "faculty", "admin"}
    student = argv(out.commands, "modify", "account", "where", "name=student")[0]
    assert setting(student, "MaxTRESPerJob") == "cpu=8,mem=32768,gres/gpu=1"
    assert setting(student, "MaxWall") == "1-00:00:00" and setting(student, "MaxJobs") == "3"
    admin = argv(out.commands, "modify", "account", "where", "name=admin")[0]
    assert setting(admin, "MaxWall") == "-1" and setting(admin, "MaxTRESPerJob").endswith("gres/gpu=-1")
    members = {a[4]: a[5] for a in argv(out.commands, "add", "user")}
    assert members == {"alice": "Account=student", "bob": "Account=researcher", "root2": "Account=admin"}


def test_user_limits_are_resolved_with_overrides_and_null_clears():
    answer = shipped_answer(
        [
            user("alice", "student", max_gpu_equivalents=1.5, max_cpus_total=12.0, memory_total=48 * GIB),
            user("carol", "admin", max_gpu_equivalents=None, max_runtime_h=None, max_cpus=32.0),
        ]
    )
    out = slurm_export(quota_set(answer))
    alice = argv(out.commands, "modify", "user", "where", "name=alice", "account=student")[0]
    assert setting(alice, "GrpTRES") == "cpu=12,mem=49152,gres/gpu=1"
    carol = argv(out.commands, "modify", "user", "where", "name=carol", "account=admin")[0]
    assert setting(carol, "GrpTRES") == "cpu=-1,mem=-1,gres/gpu=-1" and setting(carol, "MaxWall") == "-1"
    lossy = {x.key: x for x in out.lossy}
    assert "user alice=1.5" in lossy["max_gpu_equivalents"].where
    assert "student=false" in lossy["allow_full_gpu"].where
    assert {"idle_timeout_h", "gpu_hold_after_stop_h", "max_runtime_h", "priority"} <= set(lossy)


def test_users_with_the_same_limits_share_one_command():
    answer = shipped_answer([user(f"u{i:03d}", "student") for i in range(120)])
    for u in answer["users"]:
        u["overrides"] = []
    out = slurm_export(quota_set(answer))
    adds = argv(out.commands, "add", "user")
    assert [len(a[4].split(",")) for a in adds] == [50, 50, 20]
    limits = [a for a in argv(out.commands, "modify", "user") if "account=student" in a]
    assert len(limits) == 3  # one per batch of 50, all alike


def test_group_names_slurm_cannot_keep_are_renamed_and_said_so():
    assert account_name("PhD Students") == "phd_students"
    answer = shipped_answer([])
    answer["groups"][0]["name"] = "PhD Students"
    out = slurm_export(quota_set(answer))
    assert argv(out.commands, "add", "account", "phd_students")
    assert any(x.key == "group name" and x.where == ("PhD Students",) for x in out.lossy)


def test_commands_quote_what_the_shell_would_split():
    out = slurm_export(quota_set(shipped_answer([])))
    line = next(c for c in out.commands if " add account student" in c)
    assert "'Description=ds01 group student'" in line
    assert shlex.split(line)[5] == "Description=ds01 group student"


def _runner(answers: dict[str, tuple[int, str]]):
    def run(args):
        code, text = answers.get(args[3], (0, ""))
        return subprocess.CompletedProcess(list(args), code, text, "")

    return run


def test_apply_counts_an_existing_account_as_done_and_reports_failures():
    commands = ("sacctmgr -i add account x", "sacctmgr -i modify account where name=x set GrpTRES=gres/gpu=2")
    results = apply(commands, run=_runner({"account": (1, " Nothing new added.")}))
    assert [r.ok for r in results] == [True, True]
    results = apply(commands[1:], run=_runner({"account": (1, " Unknown option: GrpTRES=gres/gpu=2")}))
    assert not results[0].ok and "Unknown" in results[0].as_dict()["output"]


def test_apply_without_sacctmgr_says_where_to_run_it():
    def missing(args):
        raise FileNotFoundError(args[0])

    (result,) = apply(("sacctmgr -i add account x",), run=missing)
    assert result.returncode == 127 and "Slurm" in result.output
