"""`image-push NAME REGISTRY/REPO[:TAG]` and `image-save NAME -o FILE.tar`: taking an image elsewhere
without the docker CLI.

Push: the registry login is the user's own, read here with the user's rights from `~/.docker/config.json`
(`auths.<registry>.auth`, base64 of `user:password`, or `identitytoken`) or given as `--username` with
`--password-stdin`; it is sent to ds01d for this one push and never kept. Credential helpers (`credsStore`,
`credHelpers`) are not used. Save: ds01d streams the tarball; this command writes FILE as the user.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import pwd
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors
from ds01.client import path_of
from ds01.errors import OperationFailed, UsageError

if TYPE_CHECKING:
    from ds01.client import Client

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The project (image) name.", show_default=False)]
DONE = ("Pushed", "Layer already exists", "Mounted from")


# -- the user's registry login ------------------------------------------------------------------------
def docker_config_file() -> Path:
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".docker" / "config.json"


def login_for(registry: str, config_file: Path | None = None) -> dict[str, str]:
    """The login for `registry` in the user's docker config: `{username, password}`, `{identitytoken}`, or
    `{}` when there is none (an open registry needs none)."""
    from ds01.registry_ref import registry_key

    path = config_file or docker_config_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
            hint="fix the file (it must be JSON), or pass --username with --password-stdin",
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a JSON object", hint="fix the file, or pass --username")
    auths = data.get("auths") if isinstance(data.get("auths"), dict) else {}
    for key, entry in (auths or {}).items():
        if registry_key(str(key)) != registry or not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return {"identitytoken": str(entry["identitytoken"])}
        if entry.get("auth"):
            try:
                user, sep, password = (
                    base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                user, sep, password = "", "", ""
            if not sep or not user:
                raise UsageError(
                    f"{path}: auths.{key}.auth is not base64 of user:password",
                    hint="write it again, e.g. `printf '%s' 'USER:TOKEN' | base64`",
                )
            return {"username": user, "password": password}
        if entry.get("username") and entry.get("password"):
            return {"username": str(entry["username"]), "password": str(entry["password"])}
    helpers = data.get("credHelpers") if isinstance(data.get("credHelpers"), dict) else {}
    helper = (helpers or {}).get(registry) or data.get("credsStore")
    if helper:
        raise UsageError(
            f"your login for {registry} is kept by the credential helper {helper!r} ({path}), "
            "which ds01 does not use",
            hint=f"put it in {path} as auths.{registry}.auth (base64 of user:password), "
            "or pass --username with --password-stdin",
        )
    return {}


# -- image-push -------------------------------------------------------------------------------------
@handle_errors
def push(
    name: NameArg,
    target: Annotated[
        str, typer.Argument(metavar="REGISTRY/REPO[:TAG]", help="Where to push it.", show_default=False)
    ],
    username: Annotated[
        str | None, typer.Option("--username", help="Registry user (instead of ~/.docker/config.json).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password or token from stdin.")
    ] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Push your project's image to a registry with your own registry login.

    The login is read from ~/.docker/config.json (auths.REGISTRY.auth or identitytoken) or given with
    --username and --password-stdin; it is used for this push only and never stored on the server.
    A name without a registry host goes to Docker Hub. Credential helpers (credsStore) are not used.

    Examples:
      image-push my-model registry.example.org/lab/my-model:v1
      echo "$TOKEN" | image-push my-model ghcr.io/alice/my-model --username alice --password-stdin
    """
    from ds01.registry_ref import parse_target

    parsed = parse_target(target)
    if password_stdin:
        if not username:
            raise UsageError("--password-stdin needs --username", hint="pass --username USER")
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise UsageError("--password-stdin: nothing on stdin", hint="pipe the password or token in")
        login = {"username": username, "password": secret}
    elif username:
        raise UsageError("--username needs --password-stdin", hint="pipe the password: ... | image-push ...")
    else:
        login = login_for(parsed.registry)
    client = connect(json_out)
    shown = _PushProgress(client, json_out)
    result = client.call(
        "POST", path_of("images", name, "push"), {"target": target, "user": user, **login},
        on_event=shown.event,
    )  # fmt: skip
    if json_out:
        client.out.json(result)
        return
    from ds01 import units

    size = int(result.get("size") or 0)
    details = [str(result["digest"]), f"{result['layers']} layers"]
    details += [units.format_size(size)] if size else []
    details.append(f"{result['seconds']} s")
    client.out.success(f"pushed {result['image']} to {result['target']} ({', '.join(details)})")


class _PushProgress:
    """One line per layer as it is done; on a terminal, a running byte count meanwhile."""

    def __init__(self, client: Client, json_out: bool) -> None:
        self.out = client.out
        self.quiet = json_out
        self.done: set[str] = set()
        self.bytes: dict[str, int] = {}
        self.live = not json_out and sys.stderr.isatty()

    def event(self, ev: Any) -> None:
        if self.quiet or not isinstance(ev, dict):
            return
        from ds01 import units

        layer, status = str(ev.get("layer", "")), str(ev.get("status", ""))
        if ev.get("total"):
            self.bytes[layer] = max(int(ev.get("current") or 0), self.bytes.get(layer, 0))
        if status.startswith(DONE) and layer not in self.done:
            self.done.add(layer)
            if self.live:
                sys.stderr.write("\r\033[K")
            self.out.info(f"  {layer}: {status}")
        elif self.live and status == "Pushing":
            sent = units.format_size(sum(self.bytes.values()))
            sys.stderr.write(f"\r\033[K  pushing: {len(self.done)} layers done, {sent} sent")
            sys.stderr.flush()


# -- image-save -------------------------------------------------------------------------------------
@handle_errors
def save(
    name: NameArg,
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", metavar="FILE", help="The tar file to write (`-`: stdout).", show_default=False
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write your project's image as a tar file (what `docker save` makes; `docker load -i FILE` reads it).

    The file is written by you, as you; an existing FILE is kept unless --force.

    Examples:
      image-save my-model -o my-model.tar
    """
    from ds01 import units

    if output == "-":
        _save_to_stdout(name, user)
        return
    target = Path(output)
    if not output.strip() or target.is_dir():
        raise UsageError(f"-o {output!r}: give a file name, not a directory", hint="e.g. -o my-model.tar")
    if not force and (target.exists() or target.is_symlink()):
        raise OperationFailed(
            f"{target} already exists", hint="pass --force to overwrite it, or pick another"
        )
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"the folder {folder} does not exist", hint="make it first, or pick another path")
    partial = folder / f".{target.name}.part-{os.getpid()}"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise OperationFailed(
            f"cannot write in {folder}: {exc.strerror}", hint="pick a folder of yours"
        ) from None
    client = connect(json_out)
    try:
        with os.fdopen(fd, "wb") as sink:
            result = _receive(client, path_of("images", name, "save"), {"user": user}, sink)
        _place(partial, target, force)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    result = {**result, "file": str(target)}
    if json_out:
        client.out.json(result)
        return
    client.out.success(f"saved {result['image']} to {target} ({units.format_size(int(result['bytes']))})")
    client.out.hint(f"load it elsewhere with: docker load -i {target.name}")


def _save_to_stdout(name: str, user: str | None) -> None:
    """`-o -`: the tarball on stdout, for a pipe (`image-save NAME -o - | gzip > NAME.tar.gz`)."""
    if sys.stdout.isatty():
        raise UsageError("-o -: stdout is a terminal", hint="pipe it on (| gzip > FILE) or give a file name")
    sys.stdout.flush()
    with os.fdopen(os.dup(sys.stdout.fileno()), "wb") as sink:
        _receive(connect(), path_of("images", name, "save"), {"user": user}, sink)


def _receive(client: Client, path: str, body: dict[str, Any], sink: Any) -> dict[str, Any]:
    """The tarball from ds01d into `sink`, then its answer (an error there: the tarball is not whole)."""
    return dict(client.download(path, body, sink.write))


def _place(partial: Path, target: Path, force: bool) -> None:
    if force:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target, follow_symlinks=False)  # never over a file that appeared meanwhile
    except FileExistsError:
        raise OperationFailed(f"{target} already exists", hint="pass --force to overwrite it") from None
    except OSError:  # a file system without hard links
        if target.exists() or target.is_symlink():
            raise OperationFailed(f"{target} already exists", hint="pass --force to overwrite it") from None
        os.rename(partial, target)
