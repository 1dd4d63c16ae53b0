"""Config loading, validation with file:line, and key-by-key limit resolution."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ds01.config import load_config
from ds01.errors import ConfigError, ExitCode
from ds01.identity import User
from ds01.limits import group_of, resolve_limits

BASE = """
defaults:
  max_gpu_equivalents: 1.0
  memory: 16g
  max_cpus: 4
  idle_timeout_h: 0.5
default_group: student
groups:
  student:
    max_cpus: 8
    members: [sam]
  researcher:
    max_gpu_equivalents: 2.5
    memory: 64g
    max_cpus: 16
    members: [rita]
    os_groups: [lab-research]
  admin:
    admin: true
    max_gpu_equivalents: null
    members: [ada]
user_overrides:
  rita:
    max_gpu_equivalents: 3.0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "resource-limits.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def user(name: str, uid: int = 1500, groups: tuple[str, ...] = ()) -> User:
    return User(name=name, uid=uid, gid=uid, home=Path("/home") / name, unix_groups=groups)


def test_shipped_config_is_valid_and_has_the_four_groups():
    config = load_config(Path(__file__).resolve().parents[2] / "config" / "resource-limits.yaml")
    assert [g.name for g in config.groups] == ["student", "researcher", "faculty", "admin"]
    assert config.default_group == "student"
    assert config.group("admin").admin is True  # type: ignore[union-attr]


def test_override_of_one_key_keeps_the_groups_other_keys(tmp_path):
    config = load_config(write(tmp_path, BASE))
    resolved = resolve_limits(config, user("rita"))
    assert resolved.group == "researcher"
    assert resolved.limits.max_gpu_equivalents == 3.0 and resolved.source["max_gpu_equivalents"] == "override"
    assert resolved.limits.memory == 64 * 1024**3 and resolved.source["memory"] == "group"
    assert resolved.limits.max_cpus == 16 and resolved.source["max_cpus"] == "group"
    assert resolved.limits.idle_timeout_h == 0.5 and resolved.source["idle_timeout_h"] == "defaults"


def test_users_in_no_group_get_the_default_group(tmp_path):
    resolved = resolve_limits(load_config(write(tmp_path, BASE)), user("nobody-special"))
    assert resolved.group == "student"
    assert resolved.limits.max_cpus == 8 and resolved.source["max_cpus"] == "group"
    assert resolved.limits.memory == 16 * 1024**3 and resolved.source["memory"] == "defaults"


def test_members_file_beside_the_config_adds_members(tmp_path):
    path = write(tmp_path, BASE)
    (tmp_path / "groups").mkdir()
    (tmp_path / "groups" / "researcher.members").write_text("# comment\nnew.person  # joined 2026\n\n")
    config = load_config(path)
    assert group_of(config, user("new.person")).name == "researcher"  # type: ignore[union-attr]


def test_os_groups_place_a_user_by_unix_group(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert group_of(config, user("olga", groups=("users", "lab-research"))).name == "researcher"  # type: ignore[union-attr]


def test_first_group_in_file_order_wins(tmp_path):
    text = BASE.replace("members: [rita]", "members: [rita, sam]")
    assert group_of(load_config(write(tmp_path, text)), user("sam")).name == "student"  # type: ignore[union-attr]


def test_ldap_style_names_match_by_their_sanitised_form(tmp_path):
    text = BASE.replace("members: [rita]", "members: [h_baker]")
    assert group_of(load_config(write(tmp_path, text)), user("h.baker@lab.example")).name == "researcher"  # type: ignore[union-attr]


def test_admin_group_members_are_admins_and_null_means_unlimited(tmp_path):
    resolved = resolve_limits(load_config(write(tmp_path, BASE)), user("ada"))
    assert resolved.admin is True
    assert resolved.limits.max_gpu_equivalents is None


def test_root_is_admin_and_an_ordinary_user_is_not(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert resolve_limits(config, User("root", 0, 0, Path("/root"))).admin is True
    assert resolve_limits(config, User("sam", 1500, 1500, Path("/home/sam"))).admin is False


@pytest.mark.parametrize(
    ("bad", "line", "fragment"),
    [
        ("defaults:\n  memroy: 16g\n", 2, "defaults.memroy: unknown key (did you mean 'memory'?)"),
        ("defaults:\n  max_cpus: many\n", 2, "defaults.max_cpus: expected a number"),
        ("defaults:\n  memory: -4g\n", 2, "defaults.memory: a size cannot be negative"),
        ("defaults:\n  shm_size: lots\n", 2, "defaults.shm_size: 'lots' is not a size"),
        ("defaults:\n  allow_full_gpu: sometimes\n", 2, "defaults.allow_full_gpu: expected true or false"),
        ("groups:\n  student:\n    max_gpuz: 2\n", 3, "groups.student.max_gpuz: unknown key"),
        ("policies:\n  idle_window: 3\n", 2, "policies.idle_window: unknown key (did you mean"),
        ("gpu:\n  backend: cuda\n", 2, "gpu.backend: 'cuda' is not one of"),
        ("defaults: [1, 2\n", 1, "invalid YAML"),
        ("default_group: staff\ngroups:\n  student: {}\n", 1, "default_group: no group named 'staff'"),
        ("defualts: {}\n", 1, "defualts: unknown key (did you mean 'defaults'?)"),
    ],
)
def test_config_errors_name_file_line_key_and_exit_2(tmp_path, bad, line, fragment):
    path = write(tmp_path, bad)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert info.value.exit_code == ExitCode.USAGE
    assert fragment in message
    if "invalid YAML" not in fragment:
        assert message.startswith(f"{path}:{line}: ")
    else:
        assert message.startswith(f"{path}:")


def test_environment_overrides_state_log_and_gpu_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("DS01_STATE_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("DS01_LOG_DIR", str(tmp_path / "l"))
    monkeypatch.setenv("DS01_GPU_BACKEND", "none")
    config = load_config(write(tmp_path, BASE))
    assert config.paths.state_dir == tmp_path / "s" and config.paths.log_dir == tmp_path / "l"
    assert config.gpu.backend == "none"


def test_config_discovery_prefers_ds01_config(tmp_path, monkeypatch):
    path = write(tmp_path, BASE)
    monkeypatch.setenv("DS01_CONFIG", str(path))
    assert load_config().source == path


def test_paths_are_absolute_and_workspaces_sit_under_the_root(tmp_path):
    config = load_config(
        write(tmp_path, BASE + "paths:\n  workspace_root: /srv/ws/\n  data_roots: [/data/a]\n")
    )
    assert config.paths.workspace_root_for("sam") == Path("/srv/ws/sam")
    assert config.paths.data_roots == (Path("/data/a"),)
    default = load_config(write(tmp_path, BASE))
    assert default.paths.workspace_root_for("sam") == Path("/srv/ds01/workspaces/sam")
    assert default.paths.socket == Path("/run/ds01/ds01.sock")
    for bad in ("~/workspace", "relative/ws"):
        with pytest.raises(ConfigError, match=r"paths\.workspace_root: .* is not an absolute path"):
            load_config(write(tmp_path, BASE + f"paths:\n  workspace_root: {bad}\n"))


def test_images_section_sets_proxy_and_ca_bundle_for_builds(tmp_path):
    from ds01.atomic.images import build_args

    bundle = tmp_path / "lab-ca.pem"
    bundle.write_text("junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\nsecret key\n")
    config = load_config(
        write(tmp_path, BASE + "images:\n  ca_bundle: lab-ca.pem\n  https_proxy: http://p:3128\n")
    )
    assert config.images.ca_bundle == bundle
    args = build_args(user("sam"), {}, config.images)
    assert args["HTTPS_PROXY"] == args["https_proxy"] == "http://p:3128"
    assert "AAAA" in args["DS01_CA_PEM"] and "secret" not in args["DS01_CA_PEM"]


def test_unknown_images_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"images.proxy: unknown key \(did you mean 'no_proxy'\?\)"):
        load_config(write(tmp_path, BASE + "images:\n  proxy: x\n"))
