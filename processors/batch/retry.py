"""Retrying a write until it lands, and the token that makes a retried insert harmless.

Exactly once as seen by queries, in two layers (see schemas/clickhouse/001_samples.sql):
each batch is inserted with `insert_deduplication_token` built from its source offsets
(`batch_token`) and `async_insert=0`, and a retry resends the very same columns with the
very same token, so a batch whose first attempt did land is dropped whole; a batch cut
differently after a restart collapses in the ReplacingMergeTree (FINAL).

A failed write is never dropped and never fatal: `retrying` backs off and tries again
until the store (or the broker, for dead letters) takes it. The caller does not ack the
batch until it returns, so nothing is committed and nothing more is fetched meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from processors.batch.records import RawRecord
from vdp.errors import TransientError

log = logging.getLogger("vdp.sink")
T = TypeVar("T")


def batch_token(records: Sequence[RawRecord]) -> str:
    """`topic:partition:min-max` per source partition: the same records, the same token."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for r in records:
        span = ranges.get((r.topic, r.partition))
        if span is None:
            ranges[(r.topic, r.partition)] = [r.offset, r.offset]
        elif r.offset < span[0]:
            span[0] = r.offset
        elif r.offset > span[1]:
            span[1] = r.offset
    return ",".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


@dataclass(frozen=True)
class Backoff:
    first: float
    most: float

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(self.most, delay * 2)


async def retrying(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    backoff: Backoff,
    on_failure: Callable[[str], None] | None = None,
) -> T:
    """Run `attempt` until it succeeds, sleeping with exponential backoff between tries.

    The writers turn their clients' errors into `TransientError` (`raise … from e`); an
    `OSError` is a connection that broke below them.
    """
    delays = backoff.delays()
    while True:
        try:
            return await attempt()
        except (TransientError, OSError) as e:
            delay = next(delays)
            log.warning("%s failed (%s); retrying in %.1f s", what, _short(e), delay)
            if on_failure is not None:
                on_failure(what)
            await asyncio.sleep(delay)


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"
