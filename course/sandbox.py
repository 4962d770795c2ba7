"""Run an untrusted notebook in a sandboxed Jupyter kernel, and clean up every process after it.

The grader (`course.grading`) calls `run_notebook`. Where the OS allows it (Linux, as root, with
util-linux `unshare`, `setpriv`, `prlimit`) the kernel runs:

- as a dedicated unprivileged uid (61000 + n, leased with a lock file, one per concurrent run);
- in fresh mount, network and pid namespaces: no network at all, instructor paths hidden under
  empty tmpfs mounts, staged copies bind-mounted where the kernel expects the course package;
- with rlimits: address space, processes, CPU seconds, file size, no core dumps;
- in a fresh 0700 working directory that is also its HOME.

The kernel talks to the grader over Unix sockets (ZeroMQ `ipc` transport), so it needs no network.
Afterwards the pid namespace is torn down and every process of the leased uid is killed.
Elsewhere (not root) the kernel still gets rlimits, its own session and a fresh working directory,
and `isolation_report()` says what is missing.
"""
from __future__ import annotations

import asyncio
import atexit
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RECORD_MIME = "application/vnd.course.record+json"
UID_BASE, UID_COUNT = 61000, 64
LOCK_DIR = Path(tempfile.gettempdir()) / "course-sandbox-locks"


@dataclass
class Limits:
    """Resource limits for one notebook run (sizes in bytes, times in seconds)."""

    cell_timeout: int = 120
    notebook_timeout: int = 900
    memory: int = 6 << 30  # address space: torch + TensorFlow + cppyy + ORT peak near 2 GB
    nproc: int = 256  # processes and threads of the sandbox uid
    cpu: int = 1200
    file_size: int = 64 << 20
    nofile: int = 1024
    cell_output: int = 1 << 20  # ordinary outputs kept per cell; the rest is dropped
    records_output: int = 8 << 20  # record outputs kept per cell
    rlimits: bool = True  # False: a learner's own machine (`course check`), no rlimits


@dataclass
class Isolation:
    """What the kernel may see: `hide` become empty, `binds` map target -> source."""

    hide: list[Path] = field(default_factory=list)
    binds: dict[Path, Path] = field(default_factory=dict)
    expose: list[Path] = field(default_factory=list)  # e.g. a Python under /root (0700)
    scratch_size: str = "256m"  # each hidden folder becomes an empty tmpfs this large
    enabled: bool | None = None  # None: use namespaces + uid when the OS allows


@dataclass
class CellResult:
    """How one code cell ended: ok, error, timeout or dead (the kernel died)."""

    status: str
    ename: str = ""
    evalue: str = ""
    outputs: list = field(default_factory=list)
    truncated: bool = False


def _probe() -> str:
    """Empty string when namespaces + uid switching work here, else the reason they do not."""
    if sys.platform != "linux":
        return "not Linux"
    if os.geteuid() != 0:
        return "not root (run the grader as root, e.g. in a container, for full isolation)"
    for tool in ("unshare", "setpriv", "prlimit"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (install util-linux)"
    cmd = ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "true"]
    done = subprocess.run(cmd, capture_output=True, timeout=30)
    if done.returncode != 0:
        return "unshare failed: " + done.stderr.decode(errors="replace").strip()[:200]
    return ""


_PROBE: str | None = None


def isolation_report() -> str:
    """Empty when full isolation is available, else why the grader runs with rlimits only."""
    global _PROBE
    if _PROBE is None:
        _PROBE = _probe()
    return _PROBE


class UidLease:
    """Lease a dedicated uid for one run: an flock'd file per uid, so concurrent graders agree."""

    def __init__(self) -> None:
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        for n in range(UID_COUNT):
            handle = open(LOCK_DIR / f"uid-{UID_BASE + n}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.uid, self._handle = UID_BASE + n, handle
            kill_uid(self.uid)  # a previous grader may have died mid-run
            return
        raise RuntimeError(f"all {UID_COUNT} sandbox uids are busy; lower -j")

    def release(self) -> None:
        kill_uid(self.uid)
        self._handle.close()


def pids_of_uid(uid: int) -> list[int]:
    """Pids whose real uid is `uid` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        found.append(int(entry.name))
                    break
        except (OSError, ValueError):
            continue
    return found


def kill_uid(uid: int, rounds: int = 100) -> list[int]:
    """SIGKILL every process of the sandbox uid until none is left (forks race the first pass).

    Returns the pids still alive after all rounds (a process stuck in the kernel); never raises.
    """
    for _ in range(rounds):
        pids = pids_of_uid(uid)
        if not pids:
            return []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    return pids_of_uid(uid)


def kernel_env(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh environment for the kernel: nothing inherited from the grader but PATH."""
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir / "tmp"),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(workdir / ".mpl"),
        "IPYTHONDIR": str(workdir / ".ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "XDG_CACHE_HOME": str(workdir / ".cache"),
        "KERAS_HOME": str(workdir / ".keras"),
    }
    env.update(extra or {})
    return env


def _prlimit(limits: Limits) -> list[str]:
    """`prlimit --as=... --` for the limits that are set (None leaves one alone)."""
    values = {"as": limits.memory, "nproc": limits.nproc, "cpu": limits.cpu,
              "fsize": limits.file_size, "core": 0, "nofile": limits.nofile}
    options = [f"--{name}={value}" for name, value in values.items() if value is not None]
    if shutil.which("prlimit") is None or not limits.rlimits:
        return []
    return ["prlimit", *options, "--"]


def blocking_ancestor(path: Path) -> Path | None:
    """The outermost ancestor of `path` that other users cannot enter, if any."""
    for parent in reversed(Path(path).parents):
        if parent != Path("/") and not parent.stat().st_mode & 0o001:
            return parent
    return None


def needs_expose() -> list[Path]:
    """The interpreter's own directories, when an ancestor (like /root) is closed to others."""
    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(os.path.realpath(sys.executable)).parent}
    return sorted(p for p in paths if blocking_ancestor(p) is not None)


def _mount_script(iso: Isolation, uid: int | None, stage: Path) -> str:
    """Shell run as root inside the new namespaces, then exec'd down to the sandbox uid.

    Sources (bind sources and `expose` paths) are parked first, so hiding their parents later
    does not hide them; closed ancestors of `expose` paths and `hide` paths become empty tmpfs.
    """
    lines = ["set -e"]
    sources = [*iso.expose, *iso.binds.values()]
    for n, path in enumerate(sources):
        lines += [f"mkdir -p '{stage}/{n}'", f"mount --bind '{path}' '{stage}/{n}'"]
    covered = []
    for path in iso.expose:
        top = blocking_ancestor(path)
        if top is not None and top not in covered:
            covered.append(top)
            lines.append(f"mount -t tmpfs -o size=64k,mode=0755 course-hidden '{top}'")
    for path in iso.hide:  # empty, private, small: notebooks may write there (e.g. build/)
        if Path(path).is_dir():
            lines.append(f"mount -t tmpfs -o size={iso.scratch_size},mode=0700,uid={uid},"
                         f"gid={uid} course-hidden '{path}'")
        elif Path(path).exists():
            lines.append(f"mount --bind /dev/null '{path}'")
    targets = [*iso.expose, *iso.binds]
    for n, target in enumerate(targets):
        lines += [f"mkdir -p '{target}'", f"mount --bind '{stage}/{n}' '{target}'"]
        if n >= len(iso.expose):
            lines.append(f"mount -o remount,bind,ro '{target}'")
    lines += [f"umount -l '{stage}/{n}'" for n in range(len(sources))]
    lines.append(f'exec setpriv --reuid={uid} --regid={uid} --clear-groups --no-new-privs -- "$@"')
    return "\n".join(lines)


def wrapper_cmd(iso: Isolation, limits: Limits, uid: int | None, stage: Path) -> list[str]:
    """The command prefix that puts the kernel in its sandbox."""
    if uid is None:
        return _prlimit(limits)
    for path in [*iso.hide, *iso.binds, *iso.binds.values(), *iso.expose, stage]:
        if "'" in str(path):
            raise ValueError(f"sandbox path {path!r} contains a quote; move it")
    return ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc",
            "--kill-child=SIGKILL", "--propagation", "private",
            "sh", "-c", _mount_script(iso, uid, stage), "course-sandbox", *_prlimit(limits)]


def _kernel_manager_class():
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        """A kernel manager whose kernel command runs inside the sandbox wrapper."""

        wrapper: list = []
        sandbox_uid: int | None = None

        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            cmd[0] = sys.executable if Path(cmd[0]).name.startswith("python") else cmd[0]
            return list(self.wrapper) + cmd

        def write_connection_file(self, **kwargs):
            super().write_connection_file(**kwargs)
            if self.sandbox_uid is not None:
                os.chown(self.connection_file, self.sandbox_uid, self.sandbox_uid)

    return SandboxKernelManager


def _client_class():
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        """nbclient that keeps at most `Limits.cell_output` bytes of outputs per cell."""

        caps: tuple = (1 << 20, 8 << 20)
        used: dict = {}
        cut: set = set()
        timed_out: bool = False

        async def _async_handle_timeout(self, timeout, cell=None):
            self.timed_out = True
            return await super()._async_handle_timeout(timeout, cell)

        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {}), default=str))
            is_record = RECORD_MIME in msg.get("content", {}).get("data", {})
            key = (cell_index, is_record)
            self.used[key] = self.used.get(key, 0) + size
            if self.used[key] > self.caps[int(is_record)]:
                self.cut.add(cell_index)
                return None
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient


def _error_of(cell) -> tuple[str, str]:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return str(out.get("ename", "")), str(out.get("evalue", ""))
    return "", ""


async def _run_cell(client, cell, idx: int, timeout: int) -> CellResult:
    """Execute one cell; a timeout interrupts the kernel (nbclient) and is reported here."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    client.timeout, client.timed_out = timeout, False
    try:
        await client.async_execute_cell(cell, idx)
    except DeadKernelError:
        return CellResult("dead", "DeadKernelError", "the kernel died (a crash, or os._exit)")
    except CellTimeoutError:
        client.timed_out = True
    if client.timed_out:
        return CellResult("timeout", "CellTimeoutError", f"no result after {timeout} s")
    ename, evalue = _error_of(cell)
    return CellResult("error" if ename else "ok", ename, evalue)


async def _responsive(client) -> bool:
    """After a timeout: does the interrupted kernel answer a trivial cell within 5 s?"""
    from nbformat.v4 import new_code_cell

    probe = new_code_cell("pass")
    client.nb.cells.append(probe)
    try:
        result = await _run_cell(client, probe, len(client.nb.cells) - 1, 5)
    finally:
        client.nb.cells.pop()
    return result.status == "ok"


def _new_client(nb, km, limits: Limits):
    client = _client_class()(nb, km=km, timeout=limits.cell_timeout, allow_errors=True,
                             startup_timeout=120, iopub_timeout=3, shell_timeout_interval=1,
                             record_timing=False, interrupt_on_timeout=True,
                             error_on_timeout={"ename": "CellTimeoutError", "evalue": "timeout",
                                               "traceback": []})
    client.caps = (limits.cell_output, limits.records_output)
    client.used, client.cut = {}, set()
    return client


async def _run_cells(client, km, limits: Limits, results: dict) -> dict[int, CellResult]:
    """Every code cell in order; after a crash or a stuck kernel the rest are marked not run."""
    deadline = time.monotonic() + limits.notebook_timeout
    stop = ""
    for idx, cell in enumerate(list(client.nb.cells)):
        if cell.cell_type != "code":
            continue
        left = int(deadline - time.monotonic())
        if not stop and left < 1:
            stop = "limit"
        if stop:
            results[idx] = CellResult("dead" if stop == "dead" else "timeout",
                                      evalue="not run: " + results_reason(stop))
            continue
        result = await _run_cell(client, cell, idx, min(limits.cell_timeout, left))
        if result.status == "dead":
            stop = "dead"
        elif result.status == "timeout" and not await _responsive(client):
            stop = "timeout"
            await km.shutdown_kernel(now=True)  # stuck: no point waiting for it
        result.outputs = list(cell.get("outputs", []))
        result.truncated = idx in client.cut
        results[idx] = result
    return results


async def _execute(nb, km, limits: Limits, env: dict, cwd: str, log, results: dict) -> dict:
    client = _new_client(nb, km, limits)
    try:
        async with client.async_setup_kernel(env=env, cwd=cwd, cleanup_kc=True,
                                             stdout=log, stderr=log):
            return await _run_cells(client, km, limits, results)
    finally:
        atexit.unregister(client._cleanup_kernel)


def results_reason(stop: str) -> str:
    return {"timeout": "the kernel was stopped after a timeout",
            "limit": "the notebook's time limit was reached",
            "dead": "the kernel died in an earlier cell"}[stop]


def _make_workdir(uid: int | None) -> Path:
    base = Path(tempfile.mkdtemp(prefix="course-sandbox-"))
    base.chmod(0o711)  # the sandbox may enter its own directory, not list the parent
    work = base / "work"
    for sub in ("", "tmp", ".mpl", ".ipython", ".cache", ".keras"):
        (work / sub).mkdir(mode=0o700, exist_ok=True)
        if uid is not None:
            os.chown(work / sub, uid, uid)
    return work


def run_notebook(nb, *, limits: Limits | None = None, isolation: Isolation | None = None,
                 env: dict[str, str] | None = None, cwd: str | None = None
                 ) -> dict[int, CellResult]:
    """Execute `nb` (modified in place) in a sandboxed kernel; return each code cell's result.

    Never raises for anything the notebook does: a kernel that cannot even start gives every
    cell status "dead" with the reason.
    """
    limits = limits or Limits()
    isolation = isolation or Isolation()
    use_ns = isolation.enabled if isolation.enabled is not None else not isolation_report()
    lease = UidLease() if use_ns else None
    uid = lease.uid if lease else None
    work = _make_workdir(uid)
    km = _kernel_manager_class()(kernel_name="python3", transport="ipc",
                                 ip=str(work / "kernel"))
    km.connection_file = str(work / "kernel.json")
    if use_ns and not isolation.expose:
        isolation.expose = needs_expose()
    km.wrapper = wrapper_cmd(isolation, limits, uid, work.parent / "expose")
    km.sandbox_uid = uid
    results: dict[int, CellResult] = {}
    log_path = work.parent / "kernel.log"  # the kernel's own stdout/stderr, not the grader's
    try:
        with open(log_path, "wb") as log:
            return asyncio.run(_execute(nb, km, limits, kernel_env(work, env), cwd or str(work),
                                        log, results))
    except Exception as exc:  # noqa: BLE001 - reported per cell, never raised
        return _failed_run(nb, results, exc, log_path)
    finally:
        _cleanup(km, lease, work.parent)


def _failed_run(nb, results: dict, exc: Exception, log_path: Path) -> dict[int, CellResult]:
    """No cell ran: the kernel did not start (KernelStartFailed, the grader's problem).
    Some cells ran: the rest are "dead" (the submission broke the kernel's channels)."""
    if not results:
        tail = log_path.read_bytes()[-600:].decode(errors="replace") if log_path.exists() else ""
        reason = f"{type(exc).__name__}: {exc} {tail}".strip()[:1000]
        return {i: CellResult("dead", "KernelStartFailed", reason)
                for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and i not in results:
            results[i] = CellResult("dead", "DeadKernelError", f"the kernel stopped answering "
                                    f"({type(exc).__name__})")
    return results


def _cleanup(km, lease: UidLease | None, base: Path) -> None:
    proc = getattr(getattr(km, "provisioner", None), "process", None)
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # own session: wrapper, kernel and children
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    if lease is not None:
        lease.release()
    shutil.rmtree(base, ignore_errors=True)
