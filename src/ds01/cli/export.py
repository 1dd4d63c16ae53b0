"""Exports to cluster schedulers: `ds01 admin export-quotas --to slurm|k8s`, `project-export NAME --to k8s`.

ds01d resolves the quotas (`GET /v1/admin/quotas`, `GET /v1/quotas`); the translation (`ds01.export`) runs
here. Commands and manifests go to stdout (or `-o FILE`), the report of what does not translate to stderr,
both in one document with `--json`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ds01.cli.common import JsonOpt, UserOpt, connect, handle_errors
from ds01.errors import NotFound, OperationFailed, UsageError

TARGETS = ("slurm", "k8s")

ToOpt = Annotated[str, typer.Option("--to", help="slurm (sacctmgr commands) or k8s (YAML manifests).")]
OutOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.", show_default=False)
]


def _target(to: str, allowed: tuple[str, ...] = TARGETS) -> str:
    target = {"kubernetes": "k8s"}.get(to.lower(), to.lower())
    if target not in allowed:
        raise UsageError(f"--to {to!r} is not one of {', '.join(allowed)}", hint=f"e.g. --to {allowed[0]}")
    return target


def _report(lossy: Any) -> None:
    """What does not translate: stderr, one line each, never mixed into the script or the YAML."""
    if lossy:
        sys.stderr.write("not translated (or only roughly):\n")
        sys.stderr.write("".join(f"  {item.line()}\n" for item in lossy))


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}", hint="pick a file you can write") from None
    sys.stderr.write(f"wrote {output}\n")


@handle_errors
def export_quotas(
    to: ToOpt = "slurm",
    apply: Annotated[
        bool, typer.Option("--apply", help="Run the sacctmgr commands here (as root or a Slurm admin).")
    ] = False,
    output: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Export the YAML quotas to Slurm (sacctmgr commands) or Kubernetes (ResourceQuota, Kueue) (admins).

    Prints the commands or manifests; says on stderr what does not translate (MIG weights, idle rules, ...).

    Examples:
      ds01 admin export-quotas --to slurm > quotas.sh
      ds01 admin export-quotas --to slurm --apply
      ds01 admin export-quotas --to k8s -o quotas.yaml
    """
    from ds01.client import path_of
    from ds01.export.quotas import quota_set

    target = _target(to)
    if apply and target != "slurm":
        raise UsageError("--apply is for --to slurm", hint="apply the manifests with kubectl apply -f FILE")
    client = connect(json_out)
    qs = quota_set(client.call("GET", path_of("admin", "quotas")))
    if target == "k8s":
        from ds01.export.k8s import quota_export

        manifests = quota_export(qs)
        if json_out:
            client.out.json(manifests.as_dict())
            return
        _emit(manifests.yaml(), output)
        _report(manifests.lossy)
        return
    from ds01.export.slurm import slurm_export

    exported = slurm_export(qs)
    if not apply:
        if json_out:
            client.out.json(exported.as_dict())
            return
        _emit("".join(f"{c}\n" for c in exported.commands), output)
        _report(exported.lossy)
        return
    _apply(client, exported, json_out)


def _apply(client: Any, exported: Any, json_out: bool) -> None:
    from ds01.export.slurm import apply as run_all

    results = run_all(exported.commands)
    failed = [r for r in results if not r.ok]
    err = OperationFailed(
        f"{len(failed)} of {len(results)} sacctmgr commands failed",
        hint="see each command's output; AccountingStorageTRES must list gres/gpu",
    )
    if json_out:  # one document, the failure in it, and the exit code
        doc = {**exported.as_dict(), "applied": [r.as_dict() for r in results]}
        if failed:
            doc["error"] = {"code": err.code, "message": str(err)}
        client.out.json(doc)
        if failed:
            sys.stderr.write(f"error: {err}\n")
            raise typer.Exit(int(err.exit_code))
        return
    for r in results:
        status = "ok    " if r.ok else f"failed ({r.returncode})"
        sys.stdout.write(f"{status} {r.command}\n")
        if not r.ok and r.output:
            sys.stdout.write("".join(f"         {line}\n" for line in r.output.splitlines()))
    _report(exported.lossy)
    if failed:
        raise err


@handle_errors
def project_export(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The project name.", show_default=False)],
    to: Annotated[str, typer.Option("--to", help="k8s (YAML manifests); the only target for now.")] = "k8s",
    job: Annotated[bool, typer.Option("--job", help="A batch Job for Kueue instead of a Pod.")] = False,
    image: Annotated[
        str | None,
        typer.Option(
            "--image", help="The image (default: <cluster.registry>/<user>/NAME:latest).", show_default=False
        ),
    ] = None,
    gpus: Annotated[
        int | None,
        typer.Option("--gpus", help="Whole GPUs (default: the project's gpus in pyproject.toml).", min=0),
    ] = None,
    mig_profile: Annotated[
        str | None,
        typer.Option("--mig-profile", help="One MIG slice instead (e.g. 1g.10gb).", show_default=False),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Default: ds01-<your group>.", show_default=False)
    ] = None,
    storage: Annotated[str, typer.Option("--storage", help="The workspace claim's size.")] = "50Gi",
    output: OutOpt = None,
    user: UserOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Export a project to Kubernetes: a Pod (or --job) running your image as you, with your limits.

    The workspace becomes a PersistentVolumeClaim mounted at /workspace; GPUs are nvidia.com/gpu (or
    nvidia.com/mig-<profile>). Prints YAML; says on stderr what does not translate.

    Examples:
      project-export my-thesis --to k8s > my-thesis.yaml
      project-export my-thesis --to k8s --job --gpus 2 -o job.yaml
    """
    import re

    from ds01 import naming
    from ds01.client import path_of
    from ds01.export.k8s import ProjectSpec, dns_label
    from ds01.export.k8s import project_export as export
    from ds01.export.quotas import Lossy, account_of
    from ds01.project import files
    from ds01.wizards.project_launch import workspaces

    _target(to, ("k8s",))
    name = naming.normalise_name(name)
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?([KMGTPE]i?)?", storage):
        raise UsageError(f"--storage {storage!r} is not a size", hint="e.g. 50Gi")
    if namespace is not None and dns_label(namespace) != namespace:
        raise UsageError(
            f"--namespace {namespace!r} is not a DNS label", hint="a-z, 0-9 and -, e.g. ds01-lab"
        )
    client = connect(json_out)
    root, projects = workspaces(client, user)
    if name not in projects:
        raise NotFound(f"no project named {name!r} in {root}", hint="see your projects with project-launch")
    table = files.read_tool_table(root / name)
    account, registry = account_of(client.call("GET", path_of("quotas"), {"user": user}))
    if gpus is None:
        wanted = table.get("gpus")
        gpus = 0 if mig_profile else wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else 1
    notes: list[Lossy] = []
    if image is None:
        if registry:
            image = f"{registry}/{account.name}/{name}:latest"
        else:
            image = naming.image_name(name, files.owner_uid(user))
            notes.append(
                Lossy(
                    "image",
                    "no cluster.registry is set: the cluster cannot pull this local image; "
                    "push it to the lab registry and pass --image",
                )
            )
    spec = ProjectSpec(
        project=name,
        project_type=str(table.get("type") or "custom"),
        framework=str(table.get("framework") or "unknown"),
        image=image,
        gpus=gpus,
        mig_profile=mig_profile,
        job=job,
        storage=storage,
        namespace=namespace,
    )
    manifests = export(account, spec)
    lossy = (*notes, *manifests.lossy)
    if json_out:
        client.out.json({**manifests.as_dict(), "lossy": [x.as_dict() for x in lossy]})
        return
    _emit(manifests.yaml(), output)
    _report(lossy)
