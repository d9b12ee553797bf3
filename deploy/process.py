"""Child processes of the local stack: started detached, tracked by pidfile, stopped cleanly.

The broker (a JVM) and the embedded ClickHouse server are separate processes. A pidfile in
their state directory lets `vdp stack down` find them later, and lets the next start find a
stale one left by a killed run and clear it, so no orphan ever holds a port or a data dir.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from vdp.errors import StackError

_PR_SET_PDEATHSIG = 1

# How a stop ended: exited on SIGTERM, or SIGKILLed after the timeout, or SIGKILLed because
# its caller saw that a clean exit could no longer come.
Stop = Literal["clean", "timeout", "hopeless"]
# How long a stop waits after SIGTERM before it SIGKILLs.
STOP_TIMEOUT_S = 30.0


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def _die_with_parent() -> None:
    # Linux only: the kernel SIGTERMs the child when the process that started it dies, so
    # a test run killed with SIGKILL leaves no JVM behind.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class ManagedProcess:
    """One long-running child process identified by a pidfile in `state_dir`.

    `marker` is a string that appears in the child's command line (its data directory);
    a pid from the pidfile is only trusted, or killed, if its command line still has it,
    so a recycled pid is never mistaken for ours.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        state_dir: Path,
        marker: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.state_dir = state_dir
        self.marker = marker
        self.env = env
        self.cwd = cwd
        self.pidfile = state_dir / f"{name}.pid"
        self.log_path = state_dir / f"{name}.log"
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The live process's pid, or None when it is not running."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if self._popen is not None and self._popen.pid == pid:
            # Our own child: trust the handle. Its command line may not show the marker yet
            # in the instant between fork and exec.
            return pid if self._popen.poll() is None else None
        if self.marker not in _cmdline(pid):
            return None
        return pid

    def running(self) -> bool:
        return self.pid is not None

    def clear_stale(self) -> bool:
        """Stop a process left by an earlier run of the same state dir; True if one was."""
        if self.pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        self.stop()
        return True

    def start(
        self,
        ready: Callable[[], bool],
        timeout: float = 60.0,
        die_with_parent: bool = False,
    ) -> int:
        """Start the process and wait until `ready()` is true; return its pid.

        `die_with_parent` ties the child's life to this process (test fixtures); leave it
        off for `vdp stack up`, whose children outlive the command.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.clear_stale()
        log = self.log_path.open("ab")
        env = {**os.environ, **(self.env or {})}
        self._popen = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,  # own process group: stop() reaches the whole tree
            preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
        )
        log.close()
        self.pidfile.write_text(str(self._popen.pid))
        return self.wait(ready, timeout)

    def wait(self, ready: Callable[[], bool], timeout: float = 60.0) -> int:
        """Wait until `ready()` is true; return the pid. A process that exits meanwhile, or
        is not ready in time (then stopped), is a StackError with its last log lines."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pid
            if pid is None:
                code = self._popen.returncode if self._popen is not None else "?"
                raise StackError(
                    f"{self.name} exited with code {code} while starting; "
                    f"last log lines:\n{self.tail_log()}"
                )
            if ready():
                return pid
            time.sleep(0.2)
        self.stop()
        raise StackError(
            f"{self.name} was not ready after {timeout:.0f}s; last log lines:\n{self.tail_log()}"
        )

    def stop(
        self, timeout: float = STOP_TIMEOUT_S, hopeless: Callable[[], bool] | None = None
    ) -> Stop:
        """SIGTERM the process group and wait; SIGKILL what is left after `timeout`, or as
        soon as `hopeless()` says a clean exit can no longer come. Says which it was."""
        pid = self.pid
        ended: Stop = "clean"
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self._alive(pid):
                if time.monotonic() >= deadline:
                    ended = "timeout"
                    break
                if hopeless is not None and hopeless():
                    ended = "hopeless"
                    break
                time.sleep(0.1)
            if ended != "clean":
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                while self._alive(pid):
                    time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)
        self._popen = None
        return ended

    def kill(self) -> None:
        """SIGKILL the process group at once: a crash, for fault tests."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
        self._popen = None

    def _alive(self, pid: int) -> bool:
        if self._popen is not None and self._popen.pid == pid:
            return self._popen.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie we are not the parent of still answers kill(0); treat it as gone.
        stat = Path(f"/proc/{pid}/stat")
        with contextlib.suppress(OSError):
            return stat.read_text().split(") ", 1)[1][:1] != "Z"
        return False

    def tail_log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ManagedService:
    """A local server run as one `ManagedProcess`: the lifecycle every stack service shares.

    Subclasses build `self._process` and define `start()` with their own readiness probe.
    """

    _process: ManagedProcess

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def log_path(self) -> Path:
        """What the process wrote to stdout/stderr (the first place to look on failure)."""
        return self._process.log_path

    def stop(self, hopeless: Callable[[], bool] | None = None) -> Stop:
        """SIGTERM (a clean shutdown), then SIGKILL if it takes longer than
        `STOP_TIMEOUT_S` (or `hopeless()` turns true first)."""
        return self._process.stop(hopeless=hopeless)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would; the data stays for a restart (fault tests)."""
        self._process.kill()

    def running(self) -> bool:
        return self._process.running()

    def clear_stale(self) -> bool:
        """Stop a process an earlier run left on this data dir; True if there was one."""
        return self._process.clear_stale()

    def tail_log(self, lines: int = 30) -> str:
        return self._process.tail_log(lines)
