"""The per-batch path with consent on vs off, in one process: `python -m benchmarks.consent`.

`vdp bench-process --consent-compare` measures whole workers side by side, and on a shared
machine its figure moves by more than consent costs. This one runs the very path a worker
runs per batch — decode and validate, tag (owner, category, consent), detect incidents —
over the same pre-encoded simulator frames, consent off and on interleaved, and keeps each
side's best CPU time of several rounds, which the neighbours can only make worse.
Consent on grants every owner every category (location precise), so both sides store the
same samples: the worst case for consent (a realistic mix stores less, which is cheaper).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.process import fleet_messages, grants_for
from processors.batch.consent import ConsentBook, Rules
from processors.batch.dedupe import DuplicateTracker
from processors.batch.incidents import IncidentDetector
from processors.batch.ownership import OwnershipBook
from processors.batch.records import RawRecord
from processors.batch.tag import Tagger
from processors.batch.validate import Limits, Validator
from schemas.catalog import load_catalog
from schemas.codec import consent_codec, ownership_codec, telemetry_codec


def _books(owners: list[tuple[bytes, bytes]], grants: list[tuple[bytes, bytes]]) -> ConsentBook:
    ownership = OwnershipBook()
    for _, value in owners:
        ownership.apply(ownership_codec().decode(value))
    consent = ConsentBook(Rules(load_catalog(), 0.01), ownership)
    for _, value in grants:
        consent.apply(consent_codec().decode(value))
    return consent


def _path_seconds(records: list[RawRecord], consent: ConsentBook, on: bool) -> tuple[float, int]:
    """CPU seconds of validate + tag + incidents over `records` in batches of 20,000."""
    catalog = load_catalog()
    limits = Limits(max_future_ms=300_000, max_age_ms=730 * 86_400_000)
    validator = Validator(telemetry_codec(), catalog, limits, DuplicateTracker(4096))
    tagger = Tagger(catalog, consent.ownership, consent if on else None)
    incidents = IncidentDetector(catalog, consent.ownership)
    now, stored = int(time.time() * 1000), 0
    started = time.process_time()
    for first in range(0, len(records), 20_000):
        result = validator.validate(records[first : first + 20_000], now)
        stored += len(tagger.tag(result.frames))
        incidents.detect(result.frames)
    return time.process_time() - started, stored


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.consent", description=__doc__)
    parser.add_argument("--cars", type=int, default=500)
    parser.add_argument("--hz", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    owners, frames, _ = fleet_messages(args.cars, args.hz, args.seconds, seed=1)
    consent = _books(owners, grants_for(owners, load_catalog()))
    records = [RawRecord(k, v, "raw", 0, i, 0) for i, (k, v) in enumerate(frames)]
    best: dict[bool, float] = {False: float("inf"), True: float("inf")}
    stored: dict[bool, int] = {}
    for _ in range(args.rounds):
        for on in (False, True):
            seconds, stored[on] = _path_seconds(records, consent, on)
            best[on] = min(best[on], seconds)
    us: dict[bool, Any] = {on: best[on] / len(records) * 1e6 for on in best}
    print(f"{len(records):,} frames, best of {args.rounds} rounds each, interleaved")
    for on in (False, True):
        print(f"consent {'on ' if on else 'off'}: {us[on]:6.2f} µs/frame ({stored[on]:,} samples)")
    print(f"CPU per frame: with consent / without = {us[True] / us[False]:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
