"""Fault injection for the crash tests: the worker SIGKILLs itself at a named point of its
Nth batch (`VDP_PROCESS_CRASH_AFTER_INSERTS`, `VDP_PROCESS_CRASH_POINT`), the hard way, so
the tests hit each window exactly-once must survive deterministically, not by timing."""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass

log = logging.getLogger("vdp.process")

# In the order a batch passes them.
POINTS = (
    "dlq_sent",  # the dead-letter topic took the batch's dead letters; nothing inserted yet
    "samples_written",  # the samples insert landed; the incidents insert has not run
    "stored",  # every insert landed; the offsets are not committed
)


@dataclass(frozen=True)
class CrashPoint:
    batch: int = 0  # 0: never
    point: str = "stored"

    def __post_init__(self) -> None:
        if self.point not in POINTS:
            raise ValueError(f"unknown crash point {self.point!r}; known: {', '.join(POINTS)}")

    def reached(self, point: str, batch: int) -> None:
        if batch == self.batch and point == self.point:
            log.warning(
                "fault injection: SIGKILL at %s of batch %d, before its commit", point, batch
            )
            os.kill(os.getpid(), signal.SIGKILL)
