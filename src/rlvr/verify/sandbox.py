"""Run untrusted Python in a bubblewrap sandbox with resource limits and a hard wall-clock limit.

The sandbox (``bwrap``) gets no network and no host files but the read-only system directories Python
needs (``/usr`` and the ``/lib*``/``/bin`` links or folders): no ``/etc``, ``/home``, ``/root``, no
repository and no virtual environment. ``/tmp`` is a private, size-capped tmpfs; ``/proc`` is not
mounted. The environment is cleared (host secrets in variables never reach the sandbox), the process
runs in its own session and dies with its parent. When rlvr runs as root, each sandbox also runs under
an unprivileged uid of its own, because the kernel exempts root from the process-count limit.

Resource limits (CPU seconds, address space, processes, file size, open files) are set inside the
sandbox by the trusted harness before any untrusted code runs (see ``_code_harness.py``); this module
caps what it reads back from stdout/stderr and kills the whole process group at the wall-clock limit.
"""

from __future__ import annotations

import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "Limits",
    "RunResult",
    "SandboxUnavailable",
    "check_sandbox",
    "run_python",
    "sandbox_python",
    "sandbox_uids",
]

_SYSTEM_PYTHON = "/usr/bin/python3"
_ROOT_UID_BASE = 1_000_000  # uids for sandboxes when rlvr runs as root; none of them owns host files


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here."""


@dataclass(frozen=True)
class Limits:
    """Per-run limits. ``cpu_seconds`` defaults to the wall-clock limit rounded up, plus one."""

    wall_seconds: float = 10.0
    cpu_seconds: int | None = None
    memory_bytes: int = 1 << 30  # address space per process
    max_processes: int = 32  # processes and threads of the sandbox's uid
    file_size_bytes: int = 16 << 20  # largest file a process may write
    open_files: int = 64
    output_bytes: int = 1 << 20  # stdout (and separately stderr) read back, per run and per test case
    tmpfs_bytes: int = 64 << 20  # size of the private /tmp

    def rlimits(self, process_limit: bool = True) -> dict[str, int]:
        """``resource.RLIMIT_*`` name -> value, applied as both soft and hard limit by the harness."""
        cpu = self.cpu_seconds if self.cpu_seconds is not None else math.ceil(self.wall_seconds) + 1
        limits = {
            "RLIMIT_CPU": int(cpu),
            "RLIMIT_AS": int(self.memory_bytes),
            "RLIMIT_FSIZE": int(self.file_size_bytes),
            "RLIMIT_NOFILE": int(self.open_files),
            "RLIMIT_CORE": 0,
        }
        if process_limit:
            limits["RLIMIT_NPROC"] = int(self.max_processes)
        return limits


@dataclass
class RunResult:
    returncode: int | None  # None when the run was killed at the wall-clock limit or for output
    stdout: bytes
    stderr: bytes
    timed_out: bool
    output_overflow: bool
    seconds: float


def sandbox_python() -> str:
    """The interpreter used inside the sandbox: the system ``python3`` if present, else this one."""
    if os.access(_SYSTEM_PYTHON, os.X_OK):
        return _SYSTEM_PYTHON
    return os.path.realpath(sys.executable)


def _bwrap_argv(python: str, limits: Limits) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap) "
            "or pass --unsafe-no-sandbox to run untrusted code without isolation"
        )
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    for name, value in (("PATH", "/usr/bin:/bin"), ("HOME", "/tmp"), ("LANG", "C.UTF-8")):
        argv += ["--setenv", name, value]
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    if not python.startswith("/usr/"):  # this interpreter, installed elsewhere: bind its prefix (stdlib)
        prefix = os.path.realpath(sys.base_prefix)
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--dev", "/dev", "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    return argv


_probe_lock = threading.Lock()
_probe_ok: set[tuple[str, ...]] = set()


def check_sandbox(python: str | None = None, limits: Limits | None = None) -> None:
    """Raise :class:`SandboxUnavailable` with bubblewrap's own message unless a sandbox can start here."""
    python = python or sandbox_python()
    argv = _bwrap_argv(python, limits or Limits()) + [python, "-S", "-I", "-c", "print('ok')"]
    key = tuple(argv)
    with _probe_lock:
        if key in _probe_ok:
            return
        with _sandbox_uid() as uid:
            result = _run(argv, b"", Limits(wall_seconds=30.0), uid=uid, cwd=None)
        if result.returncode != 0 or result.stdout.strip() != b"ok":
            detail = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
            raise SandboxUnavailable(
                f"bubblewrap cannot start a sandbox here ({detail}); it needs unprivileged user "
                "namespaces (sysctl kernel.unprivileged_userns_clone=1) or pass --unsafe-no-sandbox "
                "to run untrusted code without isolation"
            )
        _probe_ok.add(key)


_uid_lock = threading.Lock()
_slots_in_use: set[int] = set()


def sandbox_uids() -> range:
    """The uids this process gives its sandboxes when it runs as root (one per concurrent sandbox)."""
    first = _ROOT_UID_BASE + (os.getpid() % 100_000) * 1000
    return range(first, first + 1000)


@contextmanager
def _sandbox_uid() -> Iterator[int | None]:
    """A uid of its own for each concurrent sandbox when running as root (``None``: keep ours).

    Separate uids keep the process-count limit of one sandbox from starving another.
    """
    if os.geteuid() != 0:
        yield None
        return
    with _uid_lock:
        slot = next(i for i in range(len(sandbox_uids())) if i not in _slots_in_use)
        _slots_in_use.add(slot)
    try:
        yield sandbox_uids()[slot]
    finally:
        with _uid_lock:
            _slots_in_use.discard(slot)


def run_python(args: list[str], stdin: bytes, limits: Limits, *, sandbox: bool = True) -> RunResult:
    """Run ``python -S -I <args>`` (in the sandbox unless ``sandbox=False``), feeding ``stdin``."""
    python = sandbox_python()
    if sandbox:
        check_sandbox(python, limits)
        argv = _bwrap_argv(python, limits) + [python, "-S", "-I", *args]
        with _sandbox_uid() as uid:
            return _run(argv, stdin, limits, uid=uid, cwd=None)
    with tempfile.TemporaryDirectory(prefix="rlvr-unsafe-") as tmp:
        return _run([python, "-S", "-I", *args], stdin, limits, uid=None, cwd=tmp, reap_group=True)


def _run(
    argv: list[str],
    stdin: bytes,
    limits: Limits,
    *,
    uid: int | None,
    cwd: str | None,
    reap_group: bool = False,
) -> RunResult:
    """Start ``argv`` in a new session; feed stdin, read capped stdout/stderr; kill the group at the limit.

    ``reap_group`` also kills what is left of the process group once the process has exited (without a
    sandbox; in one, the pid namespace ends with it).
    """
    start = time.monotonic()
    deadline = start + limits.wall_seconds
    if uid is not None:
        # setpriv rather than Popen(user=...): with those, Popen must fork() instead of vfork(), which
        # costs ~0.2 s per run in a process holding a model in memory.
        argv = [_which("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd=cwd or "/",
        start_new_session=True,
        close_fds=True,
    )
    out, err = bytearray(), bytearray()
    timed_out = overflow = False
    pending = memoryview(stdin)
    with selectors.DefaultSelector() as sel:
        if pending:
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while len(sel.get_map()) > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining):
                if key.fileobj is proc.stdin:
                    try:
                        written = os.write(key.fd, pending[: 1 << 16])
                    except BrokenPipeError:
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                key.data.extend(chunk)
                if len(key.data) > limits.output_bytes:
                    overflow = True
                    del key.data[limits.output_bytes :]
            if overflow:
                break
    if timed_out or overflow:
        _kill_group(proc)
    try:
        returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
    except subprocess.TimeoutExpired:  # output closed but the process lingers past the limit
        timed_out = True
        _kill_group(proc)
        returncode = proc.wait()
    if reap_group:
        _kill_group(proc)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if not stream.closed:
            stream.close()
    return RunResult(
        returncode=None if (timed_out or overflow) else returncode,
        stdout=bytes(out),
        stderr=bytes(err),
        timed_out=timed_out,
        output_overflow=overflow,
        seconds=time.monotonic() - start,
    )


def _which(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise SandboxUnavailable(f"{program} is not installed (needed to run sandboxes under their own uid)")
    return path


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
