"""One worker process: `python -m processors.runtime.worker --web-port P` (`vdp process`).

Settings come from the `VDP_…` environment; Faust owns the command line after this point,
so the worker hands it `worker --loglevel …` itself.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from processors.runtime.app import Worker, backoff, build_app
from vdp.errors import TransientError
from vdp.settings import Settings, get_settings

log = logging.getLogger("vdp.process")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="processors.runtime.worker")
    parser.add_argument("--web-port", type=int, default=None)
    parser.add_argument("--loglevel", default="info")
    args = parser.parse_args(argv)
    settings = get_settings()
    port = args.web_port if args.web_port is not None else settings.process_web_port
    app = build_app(settings, _worker(settings), port)
    sys.argv = [sys.argv[0], "worker", "--loglevel", args.loglevel, "--web-port", str(port)]
    app.main()


def _worker(settings: Settings) -> Worker:
    """Build the worker's clients, waiting for ClickHouse if it is not up yet."""
    delays = backoff(settings).delays()
    while True:
        try:
            return Worker(settings)
        except TransientError as e:
            delay = next(delays)
            log.warning("%s; retrying in %.1f s", e, delay)
            time.sleep(delay)


if __name__ == "__main__":
    main()
