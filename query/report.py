"""Incident report: everything around a moment, as a zip the owner can prove unaltered.

The package holds one CSV per data category (`samples/<category>.csv`), the incidents
(`events.csv`), `manifest.json` (what was asked, by whom, and each file's SHA-256, size
and row count) and `SHA256SUMS` (`sha256sum -c` format, manifest included). The
manifest's own digest is also sent in the `X-Manifest-SHA256` header, so the owner can
record it apart from the file.

A report is complete once its window ended `VDP_QUERY_REPORT_SETTLE_SECONDS` ago (the
pipeline has had time to store the window's frames). A complete report is reproducible
byte for byte: asked again, the same zip (no generation time in it, fixed zip entry
times). Asked earlier, it is served anyway but says so: `"complete": false` and the time
it was made in the manifest, `_partial` in the file name, `X-Report-Complete: false`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response

from query.deps import Car, CurrentOwner, OwnedCar, Svc
from query.export import csv_file
from query.models import iso
from query.params import Selection, TimeRange, bad_request, selection, utc
from query.repository import Repository, Scope
from query.routes import Categories, owned_scope, v1_router
from schemas.tables import EARLIEST, LATEST

router = v1_router()

_EVENT_LIMIT = 1_000_000
CORE_CATEGORIES = ("driving", "adas_camera", "vehicle_state")
_ZIP_TYPE = "application/zip"
# Every entry's time in the zip: the earliest a zip can hold, so the bytes do not depend
# on when the report was made.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Package:
    """Files of the report in order, with their digests."""

    files: dict[str, bytes] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, data: bytes, rows: int) -> None:
        self.files[name], self.rows[name] = data, rows

    def manifest(self, about: dict[str, Any]) -> bytes:
        listing = [
            {"name": n, "sha256": sha256(d), "bytes": len(d), "rows": self.rows[n]}
            for n, d in self.files.items()
        ]
        # A newline at the end, like every JSON the platform writes.
        return json.dumps(about | {"files": listing}, indent=2).encode() + b"\n"

    def zip(self, manifest: bytes) -> bytes:
        everything = self.files | {"manifest.json": manifest}
        sums = "".join(f"{sha256(d)}  {n}\n" for n, d in everything.items()).encode()
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in (everything | {"SHA256SUMS": sums}).items():
                entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                entry.external_attr = 0o644 << 16  # rw-r--r--, whoever's umask
                archive.writestr(entry, data, zipfile.ZIP_DEFLATED)
        return out.getvalue()


def _events_csv(repo: Repository, scope: Scope) -> tuple[bytes, int]:
    rows = repo.events(scope, None, _EVENT_LIMIT)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(_EVENT_COLUMNS)
    for t, c, k, v, d, q, end, peak in rows:
        blank = ["" if x is None else x for x in (v, peak)]
        writer.writerow([iso(t), iso(end or t), c, k, blank[0], blank[1], d, q])
    return text.getvalue().encode(), len(rows)


_EVENT_COLUMNS = ("event_time", "end_time", "category", "kind", "value", "peak", "detail", "seq")


def build_report(
    repo: Repository,
    owner: str,
    car: Car,
    window: TimeRange,
    sel: Selection,
    at: datetime,
    now: datetime | None = None,
    settle: timedelta = timedelta(0),
) -> tuple[bytes, str, bool]:
    """The zip, its manifest's SHA-256, and whether the report is complete."""
    now = now or datetime.now(UTC)
    complete = now >= window.end + settle
    package = Package()
    scope = owned_scope(car, owner, window, sel)
    for category in sel.categories:
        data, rows = csv_file(repo, scope.only(category) if scope else None)
        package.add(f"samples/{category}.csv", data, rows)
    data, rows = _events_csv(repo, scope) if scope else (b"", 0)
    package.add("events.csv", data, rows)
    car.access.rows = sum(package.rows.values())
    about = {
        "report": "incident",
        "vin": car.vin,
        "owner_id": owner,
        "at": iso(at),
        "from": iso(window.start),
        "to": iso(window.end),
        "categories": list(sel.categories),
        # The core of a crash report the token does not allow: said, not silently left out.
        "not_allowed": [c for c in CORE_CATEGORIES if c not in sel.categories],
        "complete": complete,
        "digest": "sha256",
    }
    if not complete:  # what a partial report holds depends on when it was made: say when
        about |= {"generated_at": iso(now), "complete_from": iso(window.end + settle)}
    manifest = package.manifest(about)
    return package.zip(manifest), sha256(manifest), complete


@router.get(
    "/vehicles/{vin}/incident-report",
    summary="Zip of all allowed data around a moment, with a SHA-256 manifest",
    response_class=Response,
    responses={200: {"content": {_ZIP_TYPE: {}}, "description": "the report package"}},
)
def incident_report(
    car: OwnedCar,
    owner: CurrentOwner,
    svc: Svc,
    at: Annotated[datetime, Query(description="the moment of the incident, ISO 8601")],
    before_minutes: Annotated[int, Query(ge=0, description="minutes before `at`")] = 10,
    after_minutes: Annotated[int, Query(ge=0, description="minutes after `at`")] = 5,
    categories: Categories = None,
) -> Response:
    limit = svc.settings.query_max_report_minutes
    if before_minutes + after_minutes > limit or before_minutes + after_minutes == 0:
        raise bad_request(
            "invalid-time-range", f"before_minutes + after_minutes must be 1..{limit}"
        )
    at = utc(at)
    if not EARLIEST + timedelta(days=1) < at < LATEST:
        raise bad_request(
            "invalid-time-range", f"`at` must lie between {EARLIEST.year} and {LATEST.year}"
        )
    sel = selection(owner, svc.catalog, categories, None)
    window = TimeRange(
        at - timedelta(minutes=before_minutes), at + timedelta(minutes=after_minutes)
    )
    settle = timedelta(seconds=svc.settings.query_report_settle_seconds)
    body, digest, complete = build_report(
        svc.repository, owner.owner_id, car, window, sel, at, settle=settle
    )
    name = f"incident_{car.vin}_{at:%Y%m%dT%H%M%SZ}{'' if complete else '_partial'}.zip"
    return Response(
        body,
        media_type=_ZIP_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Manifest-SHA256": digest,
            "X-Report-Complete": "true" if complete else "false",
        },
    )
