"""Schema evolution guard: every kept version reads every other, in both directions.

Add a version as `schemas/avro/<family>/vN.avsc`; never edit a published one (its
fingerprint is pinned below, because records on the wire name it).
"""

from __future__ import annotations

import itertools
import json

import pytest

from schemas.codec import AVRO_DIR, load_versions, schema_fingerprint
from schemas.compat import compatibility_problems, example_records, read_problems

FAMILIES = sorted(p.name for p in AVRO_DIR.iterdir() if p.is_dir() and p.name != "invalid")
INVALID = AVRO_DIR / "invalid"

# Published versions: the bytes on the wire name these fingerprints.
PUBLISHED = {
    ("telemetry_frame", 1): "9f72c6a584c0aa5e",
    ("telemetry_frame", 2): "bec6eee419ea4f55",
    ("ownership_event", 1): "10301d70f3c2196f",
    ("dead_letter", 1): "725fd138a0aab1ff",
    ("consent_event", 1): "9f14348d848b04e6",
}


def _pairs() -> list[tuple[str, int, int]]:
    return [
        (family, old, new)
        for family in FAMILIES
        for old, new in itertools.combinations(range(len(load_versions(family))), 2)
    ]


def test_every_family_is_covered() -> None:
    assert set(FAMILIES) == {"telemetry_frame", "ownership_event", "dead_letter", "consent_event"}
    assert len(load_versions("telemetry_frame")) >= 2


@pytest.mark.parametrize("family, old, new", _pairs())
def test_versions_are_backward_and_forward_compatible(family: str, old: int, new: int) -> None:
    versions = load_versions(family)
    assert compatibility_problems(versions[old], versions[new]) == {"backward": [], "forward": []}


@pytest.mark.parametrize("family, version", sorted(PUBLISHED))
def test_published_versions_never_change(family: str, version: int) -> None:
    schema = load_versions(family)[version - 1]
    assert schema_fingerprint(schema).hex() == PUBLISHED[(family, version)]


def test_versions_of_a_family_have_distinct_fingerprints() -> None:
    for family in FAMILIES:
        prints = [schema_fingerprint(v) for v in load_versions(family)]
        assert len(set(prints)) == len(prints), family


def _invalid(name: str) -> dict:
    return json.loads((INVALID / name).read_text())


def test_the_check_catches_a_type_change_in_both_directions() -> None:
    current = load_versions("telemetry_frame")[-1]
    problems = compatibility_problems(current, _invalid("telemetry_frame_incompatible.avsc"))
    assert problems["backward"] and problems["forward"]


def test_the_check_catches_a_required_field_added_without_default() -> None:
    current = load_versions("telemetry_frame")[-1]
    problems = compatibility_problems(current, _invalid("telemetry_frame_required_field.avsc"))
    assert problems["backward"], "a new reader cannot fill the field for old records"
    assert problems["forward"] == [], "an old reader just skips the new field"


def test_an_unparsable_schema_is_a_problem() -> None:
    broken = {"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}
    assert read_problems(load_versions("dead_letter")[0], broken)


def test_example_records_are_reproducible() -> None:
    schema = load_versions("ownership_event")[0]
    assert example_records(schema, 5, seed=3) == example_records(schema, 5, seed=3)
