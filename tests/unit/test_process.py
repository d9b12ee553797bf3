"""ManagedProcess: pidfiles, stale processes, clean stops (plain child processes, no sockets)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.process import ManagedProcess
from vdp.errors import StackError


def _sleeper(state: Path) -> ManagedProcess:
    # The marker (state dir path) is on the command line, as the real services' data dirs are.
    argv = [sys.executable, "-c", "import sys, time; time.sleep(600)", str(state)]
    return ManagedProcess("sleeper", argv, state, marker=str(state))


def _execed(proc: ManagedProcess) -> bool:
    """The child runs its own program: its command line shows the marker (not so before exec)."""
    pid = int(proc.pidfile.read_text())
    return proc.marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] == "Z"


def test_start_writes_pidfile_and_stop_removes_process(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path)
    pid = proc.start(ready=lambda: True)
    assert proc.pidfile.read_text() == str(pid)
    assert proc.running()
    proc.stop(timeout=5)
    assert _gone(pid)
    assert not proc.pidfile.exists()
    assert not proc.running()


def test_a_stale_process_from_a_killed_run_is_found_and_cleared(tmp_path: Path) -> None:
    # Another "run" started it and went away without stopping it.
    first = _sleeper(tmp_path)
    pid = first.start(ready=lambda: _execed(first))
    second = _sleeper(tmp_path)
    assert second.pid == pid
    assert second.clear_stale() is True
    assert _gone(pid)
    assert second.clear_stale() is False


def test_a_recycled_pid_is_never_taken_for_ours(tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = _sleeper(tmp_path)
        tmp_path.mkdir(exist_ok=True)
        proc.pidfile.write_text(str(stranger.pid))
        assert proc.pid is None
        proc.clear_stale()
        assert stranger.poll() is None, "a process that is not ours was killed"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_child_that_exits_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"]
    proc = ManagedProcess("broken", [*argv, str(tmp_path)], tmp_path, marker=str(tmp_path))
    with pytest.raises(StackError, match="exited with code 3") as err:
        proc.start(ready=lambda: False, timeout=10)
    assert "boom: bad config" in str(err.value)


def test_not_ready_in_time_is_an_error_and_leaves_nothing_running(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path)
    started = time.monotonic()
    with pytest.raises(StackError, match="not ready"):
        proc.start(ready=lambda: False, timeout=1)
    assert time.monotonic() - started < 30
    assert not proc.running()
    assert not proc.pidfile.exists()


def _deaf(state: Path) -> ManagedProcess:
    # Ignores SIGTERM, as a broker waiting for a controller quorum that is gone does; says
    # so with a file (`_deaf_ready`) once the handler is in place.
    code = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1], 'deaf.ready').touch(); time.sleep(600)"
    )
    return ManagedProcess("deaf", [sys.executable, "-c", code, str(state)], state, str(state))


def _deaf_ready(proc: ManagedProcess) -> bool:
    return (proc.state_dir / "deaf.ready").exists()


def test_stop_says_whether_the_process_exited_on_sigterm_or_was_killed(tmp_path: Path) -> None:
    clean = _sleeper(tmp_path / "clean")
    (tmp_path / "clean").mkdir()
    clean.start(ready=lambda: _execed(clean))
    assert clean.stop(timeout=5) == "clean"
    deaf = _deaf(tmp_path)
    pid = deaf.start(ready=lambda: _deaf_ready(deaf))
    assert deaf.stop(timeout=1) == "timeout"
    assert _gone(pid)


def test_a_hopeless_stop_is_killed_without_waiting_out_the_timeout(tmp_path: Path) -> None:
    deaf = _deaf(tmp_path)
    pid = deaf.start(ready=lambda: _deaf_ready(deaf))
    calls = []

    def hopeless() -> bool:
        calls.append(1)
        return len(calls) > 3

    assert deaf.stop(timeout=20, hopeless=hopeless) == "hopeless"
    assert _gone(pid)
    assert len(calls) == 4
