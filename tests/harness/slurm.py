"""A real single-node Slurm cluster for tests: munged, slurmctld and slurmd (and, with accounting, MariaDB
and slurmdbd on 127.0.0.1), all from the distribution's packages, configured in a tmp folder.

The node `ds01-n1` (this host, 127.0.0.1) has 4 GPUs as a `gpu` gres over dummy device files
/dev/nvidia0..3 (a gres without device files is dropped by slurmd); their indices 0-3 are the indices of
the 4 GPUs of `GPU_INVENTORY`, the simulated inventory ds01d probes. A second node, `ds01-n2`, is declared
but never runs a slurmd (its port is one nothing listens on): it is down, so a job asked onto it pends.

`use_mig` switches the running cluster to a node with MIG instances (`MIG_LAYOUT`, typed gres) and back.

slurmctld and slurmd listen on fixed ports, so one test cluster runs per host at a time: the cluster holds a
host-wide lock for its whole life. Clients find it through SLURM_CONF (`Cluster.env`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from harness.users import TestUser, run_as

LOCK_PATH = Path("/run/lock/ds01-test-slurm.lock")
NODE = "ds01-n1"
DOWN_NODE = "ds01-n2"
PARTITION = "gpu"
GPU_COUNT = 4
NVIDIA_MAJOR = 195
CTLD_PORT, SLURMD_PORT, DBD_PORT, DB_PORT = 6817, 6818, 6819, 3316
DOWN_PORT = 6899  # nothing listens there: the second node never answers
PROGRAMS = ("munged", "slurmctld", "slurmd", "scontrol", "sbatch", "squeue", "scancel")

# The simulated inventory of the cluster's node: 4 whole GPUs, indices 0-3 as in gres.conf.
GPU_INVENTORY = "gpus:\n" + "".join(
    "  - name: NVIDIA A100-SXM4-80GB\n    memory_mib: 81920\n    slices: 7\n" for _ in range(GPU_COUNT)
)

# The MIG layout (`Cluster.use_mig`): GPU 0 whole, GPUs 1 and 2 split into MIG instances. Slurm sees one
# typed gres device per ds01 slot, listed in ds01's slot order (GPU index, then the GPU's instances in the
# probe's order), so gres index N is ds01's N-th slot: 0 = GPU 0, 1 = 1.0 (1g.10gb), 2 = 1.1 (3g.40gb),
# 3 = 1.2 (3g.40gb), 4 = 2.0 (3g.40gb), 5 = 2.1 (2g.20gb), 6 = 2.2 (1g.10gb), 7 = 2.3 (1g.10gb).
MIG_LAYOUT: tuple[tuple[str, ...] | None, ...] = (
    None,
    ("1g.10gb", "3g.40gb", "3g.40gb"),
    ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"),
)
WHOLE_TYPE = "a100"  # the Type of a whole GPU's gres line in the MIG layout


def mig_inventory() -> str:
    lines = ["gpus:\n"]
    for migs in MIG_LAYOUT:
        lines.append("  - name: NVIDIA A100-SXM4-80GB\n    memory_mib: 81920\n    slices: 7\n")
        if migs is not None:
            lines.append("    mig:\n" + "".join(f"      - profile: {p}\n" for p in migs))
    return "".join(lines)


def mig_types() -> list[str]:
    """The gres Type of each ds01 slot, in ds01's slot order (= gres index)."""
    return [t for migs in MIG_LAYOUT for t in (migs if migs is not None else (WHOLE_TYPE,))]


def _gres_lines(mig: bool) -> tuple[str, str, int]:
    """gres.conf, the nodes' `Gres=` and the number of device files, for the plain or the MIG layout."""
    nodes = f"NodeName={NODE},{DOWN_NODE}"
    if not mig:
        return f"{nodes} Name=gpu File=/dev/nvidia[0-{GPU_COUNT - 1}]\n", f"gpu:{GPU_COUNT}", GPU_COUNT
    types = mig_types()
    conf = "".join(f"{nodes} Name=gpu Type={t} File=/dev/nvidia{i}\n" for i, t in enumerate(types))
    counts: dict[str, int] = {}
    for t in types:
        counts[t] = counts.get(t, 0) + 1
    return conf, ",".join(f"gpu:{t}:{n}" for t, n in counts.items()), len(types)


SLURM_CONF = """\
ClusterName=ds01test
SlurmctldHost={ctld_host}(127.0.0.1)
MailProg=/bin/true
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/slurmd-%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout=30
KillWait=10
MinJobAge=300
InactiveLimit=0
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobCompType=jobcomp/none
TaskProlog={root}/task-prolog
{accounting}
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} CPUs=64 Boards=1 SocketsPerBoard=1 CoresPerSocket=64 ThreadsPerCore=1 RealMemory=512000 Gres={gres} State=UNKNOWN
NodeName={down_node} NodeAddr=127.0.0.1 Port={down_port} NodeHostname={down_node} CPUs=64 Boards=1 SocketsPerBoard=1 CoresPerSocket=64 ThreadsPerCore=1 RealMemory=512000 Gres={gres} State=DOWN
PartitionName={partition} Nodes={node},{down_node} Default=YES MaxTime=INFINITE State=UP
"""  # noqa: E501

ACCOUNTING = """\
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={dbd_port}
AccountingStoragePass={munge_socket}
AccountingStorageTRES=gres/gpu
AccountingStorageEnforce=associations,limits
JobAcctGatherType=jobacct_gather/none
"""

SLURMDBD_CONF = """\
AuthType=auth/munge
AuthInfo=socket={munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={dbd_port}
SlurmUser=root
LogFile={root}/slurmdbd.log
PidFile={root}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser=slurm
StoragePass={db_pass}
StorageLoc=slurm_acct_db
"""


@dataclass
class Cluster:
    root: Path
    conf: Path
    accounting: bool
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    devices: list[Path] = field(default_factory=list)
    lock: IO[bytes] | None = field(default=None, repr=False)
    node: str = NODE
    down_node: str = DOWN_NODE
    partition: str = PARTITION
    inventory: Path | None = None
    startup_s: float = 0.0
    munge_socket: Path | None = None
    mig: bool = False  # the MIG layout (`use_mig`)

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client (sbatch, squeue, scontrol) needs to find this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """A Slurm command as root against this cluster."""
        env = {**os.environ, **self.env}
        done = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def jobs(self, user: str | None = None) -> list[dict[str, str]]:
        """squeue's view: id, name, user, state, reason, node list, tres (one dict per job)."""
        argv = ["squeue", "-h", "-o", "%i|%j|%u|%T|%r|%N|%b"]
        if user:
            argv += ["-u", user]
        out = self.run(*argv).stdout
        keys = ("id", "name", "user", "state", "reason", "nodes", "gres")
        return [dict(zip(keys, line.split("|"), strict=False)) for line in out.splitlines() if line.strip()]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol -o -d show job ID` as key=value pairs ({} once the job is forgotten)."""
        done = self.run("scontrol", "-o", "-d", "show", "job", job_id, check=False)
        if done.returncode != 0:
            return {}
        fields: dict[str, str] = {}
        for token in done.stdout.split():
            key, eq, value = token.partition("=")
            if eq and key not in fields:
                fields[key] = value
        return fields

    def wait_state(self, job_id: str, states: set[str], timeout: float = 60) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.get("JobState") in states:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} not in {sorted(states)} after {timeout:g} s: {job}")
            time.sleep(0.2)

    def cancel_all(self) -> None:
        self.run("scancel", "--full", "-u", "root", check=False)
        for job in self.jobs():
            self.run("scancel", "--full", job["id"], check=False)
        deadline = time.monotonic() + 40
        while self.jobs() and time.monotonic() < deadline:
            time.sleep(0.2)

    def node_env(self, **env: str) -> None:
        """What every task on the node gets in its environment (as a node's own /etc/environment would
        give it), e.g. DS01_SOCKET: the node's ds01d. No argument: nothing again."""
        path = self.root / "node-env"
        path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        path.chmod(0o644)

    def log_text(self) -> str:
        parts = []
        names = ("slurmctld.log", f"slurmd-{self.node}.log", "slurmdbd.log", "munged.log")
        for name in names + tuple(f"{p}.out" for p in self.processes):
            path = self.root / name
            if path.exists():
                parts.append(f"== {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


_RUNNING: list[Cluster] = []


def missing_programs(accounting: bool = False) -> list[str]:
    names = list(PROGRAMS) + (["slurmdbd", "mariadbd", "mariadb-install-db", "mariadb"] if accounting else [])
    return [p for p in names if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _take_lock(timeout: float = 600) -> IO[bytes]:
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    handle = open(LOCK_PATH, "ab")  # noqa: SIM115 - held for the cluster's whole life
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise RuntimeError(f"another test cluster holds {LOCK_PATH} (ports are fixed)") from None
            time.sleep(0.5)


def _make_devices(count: int) -> list[Path]:
    made = []
    for i in range(count):
        path = Path(f"/dev/nvidia{i}")
        if path.exists() or path.is_symlink():
            continue  # a real (or another's, or made before) device: used as it is, never replaced
        os.mknod(path, 0o600 | 0o020000, os.makedev(NVIDIA_MAJOR, i))
        made.append(path)
    return made


def _write_layout(cluster: Cluster, *, mig: bool) -> None:
    """gres.conf, slurm.conf, the dummy device files and the simulated inventory ds01d probes, for the
    plain layout (4 whole GPUs) or the MIG one (`MIG_LAYOUT`)."""
    gres_conf, gres, devices = _gres_lines(mig)
    cluster.devices += _make_devices(devices)
    (cluster.root / "gres.conf").write_text(gres_conf)
    acct = (
        ACCOUNTING.format(dbd_port=DBD_PORT, munge_socket=cluster.munge_socket)
        if cluster.accounting
        else "AccountingStorageType=accounting_storage/none"
    )
    cluster.conf.write_text(SLURM_CONF.format(
        ctld_host=socket.gethostname().split(".")[0], node=NODE, down_node=DOWN_NODE, partition=PARTITION,
        gres=gres, ctld_port=CTLD_PORT, slurmd_port=SLURMD_PORT, down_port=DOWN_PORT,
        munge_socket=cluster.munge_socket, root=cluster.root, accounting=acct,
    ))  # fmt: skip
    inventory = cluster.root / "gpus.yaml"
    inventory.write_text(mig_inventory() if mig else GPU_INVENTORY)
    cluster.inventory = inventory
    cluster.mig = mig


def _start_slurm(cluster: Cluster, *, clear: bool = False) -> None:
    _spawn(cluster, "slurmctld", [_which("slurmctld"), "-D", "-i", *(["-c"] if clear else []),
                                  "-f", str(cluster.conf)])  # fmt: skip
    _wait(cluster, "slurmctld", lambda: cluster.run("scontrol", "ping", check=False).returncode == 0)
    _spawn(cluster, "slurmd", [_which("slurmd"), "-D", "-N", NODE, "-f", str(cluster.conf)])
    _wait(cluster, "slurmd", lambda: _node_idle(cluster))


def _stop_process(cluster: Cluster, name: str) -> None:
    proc = cluster.processes.pop(name, None)
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def use_mig(cluster: Cluster, mig: bool) -> None:
    """Switch the running cluster to the MIG layout (or back): no jobs left, slurmctld and slurmd restarted
    on the new gres.conf with a clean state (about a second)."""
    if cluster.mig == mig:
        return
    cluster.cancel_all()
    for name in ("slurmd", "slurmctld"):
        _stop_process(cluster, name)
    _write_layout(cluster, mig=mig)
    for spool in cluster.root.glob("slurmd-*"):
        if spool.is_dir():
            shutil.rmtree(spool, ignore_errors=True)
    _start_slurm(cluster, clear=True)


def _spawn(cluster: Cluster, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    out = open(cluster.root / f"{name}.out", "ab")  # noqa: SIM115
    env = {**os.environ, **cluster.env}
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    out.close()
    cluster.processes[name] = proc
    return proc


def _wait(cluster: Cluster, what: str, ok: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for name, proc in cluster.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{cluster.log_text()}")
        if ok():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:g} s:\n{cluster.log_text()}")
        time.sleep(0.05)


def _start_munge(cluster: Cluster) -> Path:
    mdir = cluster.root / "munge"
    mdir.mkdir(mode=0o755)
    key = mdir / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    sock = mdir / "munge.socket"
    _spawn(cluster, "munged", [
        _which("munged"), "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
        f"--pid-file={mdir / 'munged.pid'}", f"--seed-file={mdir / 'munged.seed'}",
        f"--log-file={cluster.root / 'munged.log'}",
    ])  # fmt: skip
    _wait(cluster, "munged", sock.exists)
    return sock


def _start_database(cluster: Cluster, munge_socket: Path) -> None:
    db = cluster.root / "db"
    db.mkdir()
    subprocess.run(
        [_which("mariadb-install-db"), f"--datadir={db}", "--user=root",
         "--auth-root-authentication-method=socket", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    sock = cluster.root / "mysqld.sock"
    _spawn(cluster, "mariadbd", [
        _which("mariadbd"), "--no-defaults", f"--datadir={db}", "--user=root", f"--socket={sock}",
        "--bind-address=127.0.0.1", f"--port={DB_PORT}", f"--pid-file={cluster.root / 'mysqld.pid'}",
        "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--innodb-lock-wait-timeout=900",
        "--max-allowed-packet=16M",
    ])  # fmt: skip
    _wait(cluster, "MariaDB", sock.exists, timeout=60)
    password = secrets.token_hex(12)
    sql = (
        f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}';"
        "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
    )
    subprocess.run([_which("mariadb"), f"--socket={sock}", "-uroot", "-e", sql], check=True, timeout=60)
    dbd_conf = cluster.root / "slurmdbd.conf"
    dbd_conf.write_text(SLURMDBD_CONF.format(
        munge_socket=munge_socket, dbd_port=DBD_PORT, root=cluster.root, db_port=DB_PORT, db_pass=password,
    ))  # fmt: skip
    dbd_conf.chmod(0o600)
    _spawn(cluster, "slurmdbd", [_which("slurmdbd"), "-D"])
    _wait(cluster, "slurmdbd", lambda: _listening(DBD_PORT), timeout=60)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _node_idle(cluster: Cluster) -> bool:
    done = cluster.run("sinfo", "-h", "-n", cluster.node, "-o", "%t", check=False)
    return done.returncode == 0 and done.stdout.strip() in ("idle", "mix", "alloc")


def start_cluster(*, accounting: bool = False) -> Cluster:
    """Start the cluster (after taking the host-wide lock); `stop_cluster` undoes everything."""
    missing = missing_programs(accounting)
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)} (scripts/install adds them)")
    if _RUNNING:  # waiting for our own lock would wait forever
        raise RuntimeError("this process already runs a test Slurm cluster: one per host (fixed ports); "
                           "use slurm_cluster or slurm_accounting, not both, in one test module")  # fmt: skip
    lock = _take_lock()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="ds01-slurm-", dir="/tmp"))
    root.chmod(0o755)
    cluster = Cluster(root=root, conf=root / "slurm.conf", accounting=accounting, lock=lock)
    try:
        cluster.munge_socket = _start_munge(cluster)
        (root / "ctld").mkdir()
        prolog = root / "task-prolog"  # the node's own environment for each task (Cluster.node_env)
        env_file = root / "node-env"
        prolog.write_text(f"#!/bin/sh\n[ -r {env_file} ] && sed 's/^/export /' {env_file}\nexit 0\n")
        prolog.chmod(0o755)
        _write_layout(cluster, mig=False)
        if accounting:
            _start_database(cluster, cluster.munge_socket)
            cluster.run("sacctmgr", "-i", "add", "cluster", "ds01test")
        _start_slurm(cluster)
    except BaseException:
        stop_cluster(cluster)
        raise
    cluster.startup_s = time.monotonic() - started
    _RUNNING.append(cluster)
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    with contextlib.suppress(Exception):
        if "slurmctld" in cluster.processes and cluster.processes["slurmctld"].poll() is None:
            cluster.cancel_all()
    for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
        _stop_process(cluster, name)
    for path in cluster.devices:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    cluster.devices = []
    shutil.rmtree(cluster.root, ignore_errors=True)
    if cluster.lock is not None:
        cluster.lock.close()
        cluster.lock = None
    if cluster in _RUNNING:
        _RUNNING.remove(cluster)


@contextlib.contextmanager
def running_cluster(*, accounting: bool = False) -> Iterator[Cluster]:
    cluster = start_cluster(accounting=accounting)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def job_gpu_indices(job: dict[str, str]) -> list[int]:
    """The IDX of a job's gres (`GRES=gpu:2(IDX:2-3)`) as indices; [] without GPUs."""
    raw = job.get("GRES", "")
    start = raw.find("IDX:")
    if start < 0:
        return []
    spec = raw[start + 4 :].split(")")[0]
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def dumps(cluster: Cluster) -> str:
    return json.dumps({"root": str(cluster.root), "startup_s": round(cluster.startup_s, 2)})


def cluster_mode(cluster: Cluster, test_users: list[str]) -> dict[str, object]:
    """The config sections of a ds01d on this cluster's node: cluster mode, the node's 4 simulated GPUs, and
    users allowed up to 4 whole GPUs (in cluster mode Slurm applies the quotas)."""
    return {
        "gpu": {"backend": "simulated", "inventory": str(cluster.inventory)},
        "cluster": {"backend": "slurm", "node_name": cluster.node, "partition": cluster.partition},
        "user_overrides": {
            name: {"max_gpu_equivalents": 4, "max_gpu_slots_per_container": 4, "allow_full_gpu": True,
                   "max_containers_per_user": 5}
            for name in test_users
        },
    }  # fmt: skip


def sbatch_as(cluster: Cluster, user: str, *args: str, script: str = "sleep 600") -> str:
    """A job of `user` submitted with plain sbatch (not through ds01); its id."""
    argv = ["runuser", "-u", user, "--", "env", f"SLURM_CONF={cluster.conf}", "sbatch", "--parsable",
            "--output=/dev/null", "--chdir=/tmp", *args, "--wrap", script]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"sbatch as {user} failed: {done.stderr.strip()}")
    return done.stdout.strip().split(";")[0]


def gres_files(cluster: Cluster) -> list[int]:
    """Slurm's own numbering of the node's gpu devices: for gres index N, the number K of its device file
    /dev/nvidiaK (slurmd -G lists the devices in index order). In the harness's gres.conf, device K is
    ds01's K-th slot, so this is how Slurm's IDX lines up with ds01's slots, seen from Slurm's side."""
    done = subprocess.run(
        [_which("slurmd"), "-G", "-N", cluster.node, "-f", str(cluster.conf)],
        capture_output=True, text=True, env={**os.environ, **cluster.env}, timeout=30,
    )  # fmt: skip
    out = []
    for line in (done.stdout + done.stderr).splitlines():
        if " Name=gpu " in line and "File=/dev/nvidia" in line:
            out.append(int(line.split("File=/dev/nvidia")[1].split()[0]))
    return out


def deploy(user: TestUser, env: dict[str, str], name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`container-deploy NAME ARGS --background --json` as `user` through Slurm (`env`: the cluster's, or
    with a login node's DS01_SOCKET); the job may wait a moment for the scheduler."""
    return run_as(user, "container-deploy", name, *args, "--background", "--json", env=env, timeout=300)
