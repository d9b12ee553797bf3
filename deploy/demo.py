"""`vdp demo`: the whole platform on one machine, live, with an owner's token to try it.

Starts (or reuses) the local stack, applies migrations, then runs three children, each a
`ManagedProcess` in its own process group: `vdp process` (the stream processors), `vdp
serve` (the owner query service) and `vdp simulate --realtime` (the fleet). The fleet is
paced to the clock: a live feel at a steady, small load (200 cars at 1 Hz is ~200 frames/s,
a few per cent of one core), rather than bursts that starve the other processes on 2 cores.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TextIO

from clickhouse_connect.driver.client import Client

from deploy import demo_status as st
from deploy.process import ManagedProcess
from deploy.stack import LocalStack, claim_port
from schemas.catalog import CATEGORIES
from vdp.net import free_port
from vdp.settings import Settings
from vdp.times import iso

REPO = Path(__file__).resolve().parent.parent
# With --duration 0 the simulator gets a day of simulated (= wall) time.
FOREVER_S = 86_400
# The run's sales and consent changes come in its first minutes (36-144 s in for sales),
# where a newcomer watching sees them, not hours later.
CHANGES_WITHIN_S = 180


@dataclass(frozen=True)
class DemoOptions:
    cars: int = 200
    hz: int = 1
    bad_rate: float = 0.01
    sold_share: float = 0.1
    duration: float = 0.0  # wall seconds; 0 = until Ctrl-C
    fresh: bool = False
    seed: int | None = None  # None: a new seed (new cars) per run
    interval: float | None = None  # status refresh; default 1 s on a TTY, 5 s otherwise
    owner_wait: float = 20.0  # seconds to wait for a hard-braking owner before any owner


def _http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                return bool(resp.status == 200)
        except OSError:
            return False

    return probe


class Demo:
    """One run of `vdp demo`: `start()`, `watch()`, and always `stop()`."""

    def __init__(self, settings: Settings, options: DemoOptions, out: TextIO = sys.stdout):
        self.settings = settings
        self.options = options
        self.out = out
        self.tty = out.isatty()
        self.stack = LocalStack(settings)
        self.state = self.stack.root / "demo"
        self.children: list[ManagedProcess] = []
        self.owned_stack = False
        self._block = 0  # lines of the status block on screen (TTY: redrawn in place)
        # The owner and incident shown come from this run's data, not an earlier run's.
        self.since = datetime.now(UTC) - timedelta(seconds=5)
        self.pending_report: tuple[str, datetime, datetime] | None = None

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.options.fresh:
            self.say(f"--fresh: stopping the stack and deleting {self.stack.root}")
            self.stack.down()
            shutil.rmtree(self.stack.root, ignore_errors=True)
            self.stack = LocalStack(self.settings)
        host = self.settings.bind_host
        ours = {
            "VDP_QUERY_PORT": self.settings.query_port,
            "VDP_PROCESS_WEB_PORT": self.settings.process_web_port,
        }
        # A taken port of ours fails fast and clearly, before the stack starts ...
        for variable, port in ours.items():
            if port:
                claim_port(host, port, variable)
        running = self.stack.kafka.running() and self.stack.clickhouse.running()
        self.say("reusing the running local stack" if running else "starting the local stack …")
        self.owned_stack = not running
        self.stack.up(die_with_parent=True)
        # ... and "any free port" is picked once the stack listens, so it is not one of the
        # stack's own (a port `--fresh` just freed is the first the kernel offers again).
        self.query_port, self.web_port = (p or free_port(host) for p in ours.values())
        self.live = self.settings.updated(
            **self.stack.client_settings(),
            data_dir=self.stack.root,
            query_port=self.query_port,
            process_web_port=self.web_port,
        )
        env = {**self.live.environment(), "PYTHONUNBUFFERED": "1"}
        from schemas.migrate import apply_migrations
        from vdp.topics import ensure_topics

        # The demo says in one line what the migrator logs per file.
        logging.getLogger("vdp.migrate").setLevel(logging.WARNING)
        applied = apply_migrations(self.live)
        created = ensure_topics(self.live)
        self.say(f"kafka {self.stack.kafka.bootstrap}, clickhouse {self.stack.clickhouse.url}")
        self.say(
            f"schema up to date ({len(applied)} migrations applied now); "
            f"topics created: {', '.join(created) or 'none (all there)'}"
        )
        self.query_url = f"http://{host}:{self.query_port}"
        self.metrics_url = f"http://127.0.0.1:{self.web_port}/metrics"
        self._spawn("processor", ["process", "--workers", "1"], env, _http_ok(self.metrics_url))
        self._spawn("query", ["serve"], env, _http_ok(f"{self.query_url}/readyz"))
        self.say(f"owner portal: {self.query_url}/portal/ (sign in with the token printed below)")
        self._spawn("simulator", self._simulate_args(), env, lambda: True)
        self.say(f"logs: {self.state}/*.log")

    def _simulate_args(self) -> list[str]:
        o = self.options
        seed = o.seed if o.seed is not None else int(time.time()) % 1_000_000
        sim_seconds = o.duration if o.duration > 0 else FOREVER_S
        return [
            "simulate", "--realtime", "--cars", str(o.cars), "--hz", str(o.hz),
            "--duration", str(sim_seconds), "--bad-rate", str(o.bad_rate),
            "--sold-share", str(o.sold_share), "--changes-within", str(CHANGES_WITHIN_S),
            "--seed", str(seed), "--flush-timeout", "10",
        ]  # fmt: skip

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str], ready: Callable[[], bool]
    ) -> None:
        argv = [sys.executable, "-m", "vdp.cli", *args]
        # A pid left in the pidfile by a killed demo is only trusted (and stopped by the next
        # run) while its command line still is this `vdp.cli <command>` (ManagedProcess).
        marker = f"vdp.cli {args[0]}"
        proc = ManagedProcess(name, argv, self.state, marker=marker, env=env, cwd=REPO)
        self.children.append(proc)
        proc.start(ready, timeout=120, die_with_parent=True)
        self.say(f"{name}: pid {proc.pid} ({' '.join(['vdp', *args[:3]])} …)")

    # -- watch ---------------------------------------------------------------------------

    def watch(self) -> int:
        """Refresh the status until --duration is over, Ctrl-C, or a child dies (exit 1)."""
        from vdp.clickhouse import clickhouse_client

        client = clickhouse_client(self.live, self.live.clickhouse_database, shared=True)
        interval = self.options.interval or (1.0 if self.tty else 5.0)
        started = time.monotonic()
        waiting_since: float | None = None
        owner: str | None = None
        report_shown = False
        sale: st.Sale | None = None
        try:
            while True:
                for child in self.children:
                    if child.name != "simulator" and not child.running():
                        self.say(f"{child.name} exited; last log lines:\n{child.tail_log()}")
                        return 1
                if owner is None:
                    owner, report_shown = self._maybe_pick_owner(client, waiting_since)
                    if owner is None and waiting_since is None:
                        waiting_since = time.monotonic()
                elif not report_shown:
                    report_shown = self._maybe_show_report(client, owner)
                self._print_report_when_complete()
                if sale is None:
                    sale = self._maybe_show_sale(client)
                figures = st.read_figures(
                    client,
                    self.stack.kafka.bootstrap,
                    self.live.topic_raw,
                    self.metrics_url,
                    self.since,
                )
                self._draw(st.render(figures, self.query_url))
                limit = self.options.duration
                if limit > 0 and time.monotonic() - started >= limit:
                    return 0
                time.sleep(interval)
        finally:
            client.close()

    def _maybe_pick_owner(
        self, client: Client, waiting_since: float | None
    ) -> tuple[str | None, bool]:
        """The owner to show: one with a hard-braking event if one comes soon, else any."""
        found = st.hard_braking(client, self.since)
        if found is not None:
            car, at = found
            self._show_owner(car)
            self._show_report(car.vin, at)
            return car.owner, True
        patience = min(self.options.owner_wait, self.options.duration / 3 or 1e9)
        if waiting_since is None or time.monotonic() - waiting_since < patience:
            return None, False
        anyone = st.owned_car(client, self.since)
        if anyone is None:
            return None, False
        self._show_owner(anyone)
        self.say(
            "no hard-braking event for this owner's cars yet; the incident report "
            "command is printed when one appears"
        )
        return anyone.owner, False

    def _maybe_show_report(self, client: Client, owner: str) -> bool:
        """Print the incident report line once this owner's car (or, failing that, any
        owner's car, with a token of its own) has a hard-braking event."""
        found = st.hard_braking(client, self.since, owner) or st.hard_braking(client, self.since)
        if found is None:
            return False
        car, at = found
        if car.owner != owner:
            self.say("another owner's car braked hard; their token (replaces $TOKEN):")
            self._show_owner(car)
        self._show_report(car.vin, at)
        return True

    def _show_owner(self, car: st.Car) -> None:
        from vdp.tokens import mint_token

        token = mint_token(self.live, car.owner, list(CATEGORIES), ttl_seconds=24 * 3600)
        lines = [
            "",
            f"owner {car.owner} owns {car.vin}; a token for all categories (24 h, "
            "development secret):",
            f"export TOKEN={token}",
            *st.owner_examples(self.query_url, car),
            "",
        ]
        self.say("\n".join(lines))

    def _show_report(self, vin: str, at: datetime) -> None:
        """Announce the report; its command follows once the report is complete (its window
        over and the settle time passed), so what it fetches never changes again."""
        settle = self.live.query_report_settle_seconds
        ready = st.report_complete_from(at, settle)
        self.say(
            f"hard braking of {vin} at {iso(at)}; its incident report is complete from "
            f"{iso(ready)} (its window, then {settle:g} s for the last frames to be stored): "
            "the command comes then"
        )
        self.pending_report = (vin, at, ready)

    def _print_report_when_complete(self) -> None:
        if self.pending_report is None:
            return
        vin, at, ready = self.pending_report
        if datetime.now(UTC) < ready:
            return
        self.pending_report = None
        self.say(f"incident report of {vin} around {iso(at)}, complete (the same zip every time):")
        self.say(st.report_example(self.query_url, vin, at) + "\n")

    def _maybe_show_sale(self, client: Client) -> st.Sale | None:
        """Say so once a car of this run changes hands."""
        try:
            sale = st.first_sale(client, self.since)
        except Exception:  # noqa: BLE001 - ClickHouse busy: ask again next time
            return None
        if sale is not None:
            self.say(
                f"sold: {sale.vin} passed from {sale.seller} to {sale.buyer} at {iso(sale.at)}; "
                f"{sale.seller} keeps the data up to then, {sale.buyer} sees it only from then"
            )
        return sale

    # -- output --------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """Permanent output, printed above the status block."""
        self._clear_block()
        print(text, file=self.out, flush=True)

    def _clear_block(self) -> None:
        if self.tty and self._block:
            self.out.write(f"\x1b[{self._block}F\x1b[J")
        self._block = 0

    def _draw(self, lines: list[str]) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        block = [f"[{stamp}] " + lines[0], *("           " + line for line in lines[1:])]
        self._clear_block()
        if self.tty:
            # A line the terminal wraps would take two rows and break the redraw: cut it.
            width = shutil.get_terminal_size().columns - 1
            block = [line[:width] for line in block]
        print("\n".join(block), file=self.out, flush=True)
        if self.tty:
            self._block = len(block)

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM each child's process group (SIGKILL after 30 s), then the stack if ours."""
        self._clear_block()
        for child in reversed(self.children):  # the fleet first, the processor last
            child.stop()
        if self.owned_stack:
            self.stack.down()
        if self.children or self.owned_stack:
            print("demo stopped; data kept in", self.stack.root, file=self.out, flush=True)


def run_demo(settings: Settings, options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo until done; Ctrl-C and SIGTERM stop every process it started."""

    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    demo = Demo(settings, options, out)
    try:
        demo.start()
        return demo.watch()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        # A second Ctrl-C while stopping must not leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        demo.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
