"""Live progress of a run on stderr: one line rewritten in place on a terminal, a line
every few seconds otherwise (logs and CI keep a readable history)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from producers.publish.publisher import PublishStats
from producers.publish.run import RunCounts


class Progress:
    def __init__(self, stream: TextIO = sys.stderr, interval: float | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self.started = self._last = time.monotonic()

    def update(self, counts: RunCounts, stats: PublishStats, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        line = self.line(counts, stats, now - self.started)
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    @staticmethod
    def line(counts: RunCounts, stats: PublishStats, elapsed: float) -> str:
        elapsed = max(elapsed, 1e-9)
        return (
            f"[{elapsed:7.1f}s] frames {counts.frames:,} ({counts.frames / elapsed:,.0f}/s)  "
            f"samples {counts.samples:,} ({counts.samples / elapsed:,.0f}/s)  "
            f"bad {counts.bad:,}  delivered {stats.delivered:,}  failed {stats.failed:,}"
        )

    def finish(self, counts: RunCounts, stats: PublishStats) -> None:
        self.update(counts, stats, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
