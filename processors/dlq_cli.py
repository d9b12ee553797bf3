"""`vdp dlq show` and `vdp dlq replay`: look at dead letters, and send them back after a fix.

Both read the `dead_letters` table (FINAL: one row per rejected record). Replay publishes
each original value, byte for byte, to VDP_TOPIC_RAW with its VIN as key. A record that is
still bad is dead-lettered again, as a new message with new coordinates; there is no loop,
because replay only ever runs when an operator asks for it.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from schemas.errors import ReasonCode
from vdp.clickhouse import clickhouse_client
from vdp.settings import Settings
from vdp.times import iso, iso_ms

REASONS = [r.value for r in ReasonCode]
# A frame's event time in a detail ("event time 1796136238000 is 912 s past …") is epoch
# milliseconds as the validator wrote it; shown as the time it stands for.
_EVENT_TIME = re.compile(r"\bevent time (\d{1,15})\b")


def register(sub: Any) -> None:
    dlq = sub.add_parser(
        "dlq",
        help="inspect and replay dead-lettered records",
        description="Inspect rejected records (the dead_letters table) and replay them.",
    )
    actions = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="list dead letters, newest first, and counts by reason")
    show.add_argument("--reason", type=_reason, help=f"only this reason: {', '.join(REASONS)}")
    show.add_argument("--limit", type=int, default=20, help="rows to list (default 20)")
    show.set_defaults(handler=show_dead_letters)
    replay = actions.add_parser(
        "replay",
        help="publish dead letters' original bytes to the raw topic again",
        description=(
            "Publish the original bytes of dead letters (all, or --reason R) to "
            "VDP_TOPIC_RAW, keyed by VIN. Use after fixing the cause (a catalog range, a "
            "schema, a clock); records that are still bad are dead-lettered again."
        ),
    )
    replay.add_argument("--reason", type=_reason, help="only this reason (as for show)")
    replay.add_argument("--dry-run", action="store_true", help="count what would be replayed")
    replay.set_defaults(handler=replay_dead_letters)


def _reason(text: str) -> str:
    """A reason code the platform writes; anything else is a usage error (exit 2) that
    lists them, not an empty listing that looks like "no dead letters"."""
    if text not in REASONS:
        raise argparse.ArgumentTypeError(
            f"unknown reason {text!r}; the reasons are: {', '.join(REASONS)}"
        )
    return text


def readable_detail(detail: str) -> str:
    """The detail with epoch-millisecond event times written as ISO 8601 times."""
    return _EVENT_TIME.sub(lambda m: f"event time {iso_ms(int(m.group(1)))}", detail)


# Each query filters with "WHERE ({reason:String} = '' OR reason = …)": every reason, or the
# one asked for, always as a query parameter.


def show_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    client = clickhouse_client(settings, settings.clickhouse_database)
    params = {"reason": args.reason or ""}
    try:
        counts = client.query(
            "SELECT reason, count() FROM dead_letters FINAL "
            "WHERE ({reason:String} = '' OR reason = {reason:String}) GROUP BY reason "
            "ORDER BY count() DESC",
            parameters=params,
        ).result_rows
        rows = client.query(
            "SELECT received_time, reason, source_topic, source_partition, source_offset, vin, "
            "detail FROM dead_letters FINAL "
            "WHERE ({reason:String} = '' OR reason = {reason:String}) "
            "ORDER BY received_time DESC LIMIT {limit:UInt32}",
            parameters={**params, "limit": args.limit},
        ).result_rows
    finally:
        client.close()
    for reason, count in counts:
        print(f"{reason:<20} {count:>8}")
    for t, reason, topic, partition, offset, vin, detail in rows:
        where = f"{topic}/{partition}@{offset}"
        print(f"{iso(t)} {reason:<18} {where} {vin or '-'} {readable_detail(detail)}")
    if not counts:
        print("no dead letters" + (f" with reason {args.reason}" if args.reason else ""))
    return 0


def replay_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    client = clickhouse_client(settings, settings.clickhouse_database)
    params = {"reason": args.reason or ""}
    where = "WHERE ({reason:String} = '' OR reason = {reason:String})"
    try:
        total = int(
            client.query(
                f"SELECT count() FROM dead_letters FINAL {where}",  # noqa: S608 - constant
                parameters=params,
            ).result_rows[0][0]
        )
        if args.dry_run:
            print(f"would replay {total} dead letters to {settings.topic_raw}")
            return 0
        # Streamed in blocks: a replay of millions holds one block, not the whole table.
        with client.query_row_block_stream(
            f"SELECT vin, original FROM dead_letters FINAL {where} "  # noqa: S608 - constant
            "ORDER BY source_topic, source_partition, source_offset",
            parameters=params,
            query_formats={"String": "bytes"},
        ) as blocks:
            return replay(blocks, total, settings.kafka_bootstrap, settings.topic_raw)
    finally:
        client.close()


Rows = Iterable[Sequence[Sequence[Any]]]


def replay(blocks: Rows, total: int, bootstrap: str, topic: str, queue: int = 100_000) -> int:
    """Send `(vin, original)` rows to `topic`, waiting whenever the local queue (`queue`
    messages) is full; prints progress and what was delivered; the exit code."""
    from confluent_kafka import KafkaError, Message, Producer

    failed: list[str] = []

    def done(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failed.append(err.name())

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "queue.buffering.max.messages": queue,
        }
    )
    sent, shown = 0, time.monotonic()
    for block in blocks:
        for vin, original in block:
            key = vin.decode() if isinstance(vin, bytes) else vin
            while True:
                try:
                    producer.produce(
                        topic, original, key.encode() if key else None, on_delivery=done
                    )
                    break
                except BufferError:
                    # The local queue is full: let the broker take some before sending more.
                    producer.poll(0.1)
            producer.poll(0)
            sent += 1
            if time.monotonic() - shown >= 2.0:
                shown = time.monotonic()
                print(f"replaying: {sent:,} of {total:,} sent", file=sys.stderr, flush=True)
    left = producer.flush(60.0)
    delivered = sent - len(failed) - left
    print(f"replayed {delivered:,} of {total:,} dead letters to {topic}")
    if failed or left:
        reasons = ", ".join(sorted(set(failed)))
        print(f"{len(failed)} failed ({reasons or '-'}), {left} not delivered", file=sys.stderr)
        return 1
    return 0
