"""One worker process: `python -m processors.runtime.worker --web-port P` (`vdp process`).

Settings come from the `VDP_…` environment; Faust owns the command line after this point,
so the worker hands it `worker --loglevel …` itself.
"""

from __future__ import annotations

import argparse
import gc
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
    tune_gc()
    sys.argv = [sys.argv[0], "worker", "--loglevel", args.loglevel, "--web-port", str(port)]
    app.main()


def tune_gc() -> None:
    """Fewer collections of the cycle collector: a batch makes ~150,000 container objects
    (a decoded frame is five dicts) that live until it is stored, so at the default
    thresholds every batch drags them through the young generations and triggers full
    collections over the whole heap — 10-15 % of a worker's CPU per frame, measured. The
    batch path makes no reference cycles; asyncio's few are still collected, less often.
    What was built at start-up (modules, catalog, clients) is frozen out of the scans."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


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
