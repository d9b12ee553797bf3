"""`vdp process`: migrate the schema, then run N worker processes and supervise them.

One process per worker (Python's GIL: one core each); they join one consumer group and
share the partitions of `telemetry.raw`. SIGTERM/SIGINT is passed on to every worker, which
stops cleanly (acked batches committed, the unfinished one left for the next owner).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from vdp.net import free_port
from vdp.settings import Settings

log = logging.getLogger("vdp.process")


def _die_with_parent() -> None:
    # Linux: the kernel SIGTERMs a worker whose supervisor died, so none is orphaned.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def worker_command(web_port: int, loglevel: str = "info") -> list[str]:
    return [
        sys.executable,
        "-m",
        "processors.runtime.worker",
        "--web-port",
        str(web_port),
        "--loglevel",
        loglevel,
    ]


def web_ports(first: int, workers: int) -> list[int]:
    """Each worker's `/metrics` and `/healthz` port: `first + i`, or distinct free ports when
    `first` is 0 (resolved here: Faust refuses port 0, and `0 + i` is no port to serve on)."""
    if first != 0:
        return [first + i for i in range(workers)]
    ports: list[int] = []
    while len(ports) < workers:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def run_workers(
    settings: Settings, workers: int, loglevel: str = "info", derive: bool = False
) -> int:
    """Start `workers` processes (and, with `derive`, one deriver: `vdp derive`) and wait
    for them; the worst exit code."""
    child_env = {**os.environ, **settings.environment()}
    ports = web_ports(settings.process_web_port, workers)
    commands = [worker_command(port, loglevel) for port in ports]
    if derive:
        commands.append([sys.executable, "-m", "processors.derive"])
    procs = [
        subprocess.Popen(
            command,
            env=child_env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        for command in commands
    ]
    for i, (proc, port) in enumerate(zip(procs, ports, strict=False)):
        print(f"worker {i}: pid {proc.pid}, http://127.0.0.1:{port}/metrics, /healthz", flush=True)
    if derive:
        print(f"deriver: pid {procs[-1].pid} (vdp derive)", flush=True)

    def forward(signum: int, _frame: FrameType | None) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = []
    for proc in procs:
        while proc.poll() is None:
            time.sleep(0.2)
        codes.append(proc.returncode)
    # A worker stopped by our SIGTERM exits 0 or -15; either is a clean stop.
    return max((c for c in codes if c not in (0, -signal.SIGTERM)), default=0)
