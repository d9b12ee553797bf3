"""The processes a running `vdp demo` started, as `vdp stack status` shows them.

`vdp demo` keeps one pidfile per child in `VDP_DATA_DIR/demo/` (`deploy/demo.py`,
`ManagedProcess`): the stream processors (`vdp process`), the owner query service
(`vdp serve`) and the simulated fleet (`vdp simulate`). Their endpoints are read from each
child's own environment (`/proc/<pid>/environ`, the `VDP_…` settings it was started with),
so the status names the ports the demo really chose, including free ones picked for `0`;
health is what each endpoint answers now.
"""

from __future__ import annotations

import contextlib
import json
import re
import typing
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from deploy.process import ManagedProcess
from deploy.stack import ServiceStatus
from vdp.settings import Settings, env_name


@dataclass(frozen=True)
class Child:
    name: str  # the pidfile's name in demo/
    command: str  # the `vdp` subcommand, which its command line shows


# As `Demo.start` spawns them (deploy/demo.py).
CHILDREN = (Child("processor", "process"), Child("query", "serve"), Child("simulator", "simulate"))
_WORKERS = re.compile(r"--workers[ =](\d+)")


def demo_dir(root: Path) -> Path:
    return root / "demo"


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


_CONTAINERS = (dict, list, tuple, set, frozenset)


def _is_container(annotation: Any) -> bool:
    return annotation in _CONTAINERS or typing.get_origin(annotation) in _CONTAINERS


def child_settings(pid: int) -> Settings:
    """The settings a child process read at its start, from its environment.

    As pydantic-settings reads the environment: container values (dicts, lists) are JSON.
    A value that still does not validate is left at its default rather than failing the
    status (only a few settings matter here: ports, the bind host, the brokers).
    """
    env = _environ(pid)
    values: dict[str, Any] = {}
    for name, info in Settings.model_fields.items():
        raw = env.get(env_name(name))
        if raw is None:
            continue
        try:
            values[name] = json.loads(raw) if _is_container(info.annotation) else raw
        except ValueError:
            continue
    try:
        return Settings.model_validate(values)
    except ValidationError as e:
        bad = {str(error["loc"][0]) for error in e.errors() if error["loc"]}
        return Settings.model_validate({k: v for k, v in values.items() if k not in bad})


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _get(url: str) -> tuple[int, Any]:
    """(HTTP status, JSON body or None); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            status, body = int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        status, body = int(e.code), e.read()
    except OSError:
        return 0, None
    with contextlib.suppress(ValueError):
        return status, json.loads(body)
    return status, None


def _processor(pid: int) -> tuple[str, bool, str]:
    settings = child_settings(pid)
    match = _WORKERS.search(_cmdline(pid))
    workers = int(match.group(1)) if match else 1
    base = settings.process_web_port
    states = []
    for i in range(workers):
        code, body = _get(f"http://127.0.0.1:{base + i}/healthz")
        body = body if isinstance(body, dict) else {}
        states.append((code == 200, str(body.get("status", "unreachable")), body))
    ok = all(healthy for healthy, _, _ in states)
    detail = "; ".join(
        f"worker {i} /healthz {state}, partitions {body.get('partitions', '?')}"
        for i, (_, state, body) in enumerate(states)
    )
    return f"http://127.0.0.1:{base}", ok, detail


def _query(pid: int) -> tuple[str, bool, str]:
    settings = child_settings(pid)
    url = f"http://{settings.bind_host}:{settings.query_port}"
    code, _ = _get(f"{url}/readyz")
    return url, code == 200, f"/readyz {code or 'unreachable'}"


def _simulator(pid: int) -> tuple[str, bool, str]:
    # No endpoint of its own: it is healthy while it runs, and it produces to this.
    return child_settings(pid).kafka_bootstrap, True, "producing to Kafka"


_PROBES = {"processor": _processor, "query": _query, "simulator": _simulator}


def demo_status(root: Path) -> list[ServiceStatus]:
    """A row per demo child while a demo runs (any child alive); none otherwise."""
    state = demo_dir(root)
    found = [
        (child, ManagedProcess(child.name, [], state, marker=f"vdp.cli {child.command}"))
        for child in CHILDREN
        if (state / f"{child.name}.pid").is_file()
    ]
    if not any(proc.running() for _, proc in found):
        return []
    rows = []
    for child, proc in found:
        pid = proc.pid
        if pid is None:
            rows.append(ServiceStatus(child.name, "-", False, False, "exited (demo child)"))
            continue
        endpoint, healthy, detail = _PROBES[child.name](pid)
        rows.append(
            ServiceStatus(
                child.name, endpoint, True, healthy, f"vdp {child.command} (demo): {detail}", pid
            )
        )
    return rows
