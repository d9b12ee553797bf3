"""The embedded ClickHouse store: chDB behind `deploy.chserver`, run as a child process.

chDB allows one engine per data directory per process, so the engine lives in its own
process and everything else (pipeline, query service, analysts) reaches it over the
ClickHouse HTTP interface, the same path as a real ClickHouse server.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from deploy.process import ManagedProcess, ManagedService, port_open

REPO = Path(__file__).resolve().parent.parent


class EmbeddedClickHouse(ManagedService):
    """One embedded ClickHouse server; its pidfile and log in `data_dir`, its data in
    `data_dir / "data"`, which survives restarts."""

    def __init__(
        self, data_dir: Path, port: int, user: str, password: str, host: str = "127.0.0.1"
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.host = host
        self.user = user
        self.password = password
        self.password_file = self.data_dir / "password"
        argv = [
            sys.executable, "-m", "deploy.chserver",
            "--data-dir", str(self.data_dir / "data"),
            "--host", host, "--port", str(port), "--user", user,
            "--password-file", str(self.password_file),
        ]  # fmt: skip
        # The marker (the data dir) in the command line is what lets a pidfile's pid be
        # trusted as ours; the password is never on the command line, where `ps` shows it.
        self._process = ManagedProcess(
            "clickhouse", argv, self.data_dir, marker=str(self.data_dir / "data"), cwd=REPO
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _write_password(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password)
        os.chmod(self.password_file, 0o600)  # an older file may have had wider rights

    def start(self, timeout: float = 60.0, die_with_parent: bool = False) -> None:
        """Start the server and wait until /ping answers and an authenticated query runs."""
        self._write_password()
        self._process.start(self._ready, timeout=timeout, die_with_parent=die_with_parent)

    def _ready(self) -> bool:
        if not port_open(self.host, self.port) or not self.ping():
            return False
        with contextlib.suppress(OSError):
            return self._query("SELECT 1").strip() == "1"
        return False

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200 and resp.read() == b"Ok.\n")
        except OSError:
            return False

    def version(self) -> str:
        """The engine's version, as `SELECT version()` reports it."""
        return self._query("SELECT version()").strip()

    def _query(self, sql: str) -> str:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req = urllib.request.Request(  # noqa: S310 (our own http:// URL)
            f"{self.url}/", data=sql.encode(), headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return str(resp.read().decode())
