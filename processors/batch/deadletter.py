"""Dead letters: a rejection becomes an Avro envelope for `telemetry.dlq` and a row for the
`dead_letters` table, both with the original bytes, reason, detail and source coordinates.

Pure: rejections in, bytes and columns out; the sink sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processors.batch.records import Rejection
from schemas.codec import AvroCodec, dead_letter_codec
from schemas.tables import DEAD_LETTERS


def envelope(rejection: Rejection, failed_at_ms: int) -> dict[str, Any]:
    record = rejection.record
    return {
        "original_value": record.value,
        "original_key": record.key,
        "reason": str(rejection.reason),
        "detail": rejection.detail,
        "signal": rejection.signal,
        "source_topic": record.topic,
        "source_partition": record.partition,
        "source_offset": record.offset,
        "failed_at": failed_at_ms,
    }


def encode_envelopes(
    rejections: Sequence[Rejection], failed_at_ms: int, codec: AvroCodec | None = None
) -> list[tuple[bytes | None, bytes]]:
    """(key, value) per rejection for the dead-letter topic; the key is the source key."""
    codec = codec or dead_letter_codec()
    return [(r.record.key, _fitting(codec, envelope(r, failed_at_ms))) for r in rejections]


# The broker refuses messages over its message.max.bytes (~1 MB by default): a dead letter
# of a record near that size (its original bytes plus the envelope) would be refused, and
# the batch retried forever. Such an original is cut in the topic only; the dead_letters
# table keeps it whole, and `vdp dlq replay` reads it from there.
MAX_ENVELOPE_BYTES = 900_000


def _fitting(codec: AvroCodec, record: dict[str, Any]) -> bytes:
    value = codec.encode(record)
    if len(value) <= MAX_ENVELOPE_BYTES:
        return value
    original: bytes = record["original_value"]
    keep = max(0, len(original) - (len(value) - MAX_ENVELOPE_BYTES) - 256)
    note = f" [original cut to {keep} of {len(original)} bytes here; whole in dead_letters]"
    cut = {**record, "original_value": original[:keep], "detail": record["detail"] + note}
    return codec.encode(cut)


def dead_letter_columns(rejections: Sequence[Rejection]) -> list[list[Any]]:
    """Column lists for `dead_letters`, in the table contract's order."""
    columns = DEAD_LETTERS.empty()
    for r in rejections:
        record = r.record
        detail = f"{r.signal}: {r.detail}" if r.signal else r.detail
        row = (
            record.timestamp_ms,
            str(r.reason),
            detail,
            record.topic,
            record.partition,
            record.offset,
            r.vin,
            r.signal or "",
            record.value,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns
