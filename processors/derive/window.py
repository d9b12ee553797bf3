"""Which stretch of a car's timeline a change makes stale, and what replaces what.

Pure. New samples in the car's hours [dirty.start, dirty.end) can only change decisions
of the cut (`segments`) within `context` of them; a decision outside reads only frames
that did not change, so it comes out as it did. So, for one car:

1. `replay_from`: the stretch starts at `a`, the start of the latest segment already
   derived that began at least `context` before the change (its boundary, and every
   reading the segment starts with, are made of unchanged frames, so the new cut has them
   too), or `dirty.start - context` when no segment began that early (then no segment
   covers any moment before it);
2. the frames from `a - context` on are cut again (the first `context` only to give the
   first segment its starting readings, as the whole timeline would): from `a` on this is
   the cut of the whole timeline;
3. `settled_at`: the stretch ends at `x`, the first new segment that starts at least
   `context` after the change *and* is a segment already derived, of the same kind at the
   same moment: from there the old and the new cut are in the same state (that segment,
   begun with the same readings) and read the same frames, so they agree. A boundary alone
   is not enough: whether a frame opens a segment depends on the previous classified
   frame, however long ago. No such segment yet: read further (or, at the end of the car's
   data, the stretch runs to the end);
4. `changes`: the new segments starting in [a, x) are written, and every derived segment
   starting there that the new cut does not have again gets a tombstone.

`tests/unit/test_derive_window.py` checks the claim: a timeline derived change by change
equals the same timeline cut whole.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from processors.derive.segments import Segment

Key = tuple[str, int]  # (kind, start ms): a segment's identity, as its table's key


@dataclass(frozen=True)
class Dirty:
    """The changed stretch of one car: from its first changed hour to its last one's end."""

    start: int
    end: int


def replay_from(old_starts: Sequence[int], dirty: Dirty, context_ms: int) -> int:
    """`a`: where the stretch to cut again starts. `old_starts` ascending."""
    bound = dirty.start - context_ms
    i = bisect_right(old_starts, bound) - 1
    return old_starts[i] if i >= 0 else bound


def settled_at(
    new: Iterable[Segment], old: Collection[Key], dirty: Dirty, context_ms: int
) -> int | None:
    """`x`: the first new segment start from which the cut agrees with what is derived."""
    bound = dirty.end + context_ms
    return min((s.start for s in new if s.start >= bound and s.key in old), default=None)


def changes(
    old: Iterable[Key], new: Iterable[Segment], a: int, x: int | None
) -> tuple[list[Segment], list[Key]]:
    """(segments to write, keys to tombstone) for the stretch [a, x); x None: to the end."""

    def inside(start: int) -> bool:
        return a <= start and (x is None or start < x)

    keep = [s for s in new if inside(s.start)]
    made = {s.key for s in keep}
    gone = sorted(k for k in set(old) if inside(k[1]) and k not in made)
    return keep, gone
