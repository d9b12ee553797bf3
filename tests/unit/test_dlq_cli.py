"""`vdp dlq`: an unknown reason is refused with the valid ones, details show ISO times."""

from __future__ import annotations

import pytest

from processors.dlq_cli import REASONS, readable_detail
from schemas.errors import ReasonCode
from vdp.cli import main


@pytest.mark.parametrize("action", ["show", "replay"])
def test_an_unknown_reason_is_a_usage_error_that_lists_the_reasons(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["dlq", action, "--reason", "nosuch"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "unknown reason 'nosuch'" in err
    assert all(reason in err for reason in REASONS)


def test_the_reasons_are_the_platforms_reason_codes() -> None:
    assert set(REASONS) == {r.value for r in ReasonCode}


def test_event_times_in_details_are_shown_as_iso_times() -> None:
    detail = "event time 1796136238000 is 912 s past the allowed 300 s ahead of the clock"
    assert readable_detail(detail) == (
        "event time 2026-12-01T14:43:58.000Z is 912 s past the allowed 300 s ahead of the clock"
    )
    assert readable_detail("event time 0 is older than 730 days") == (
        "event time 1970-01-01T00:00:00.000Z is older than 730 days"
    )
    untouched = "(LRW3F7EK9NC000001, seq 1796136238000) already came at raw/0@5"
    assert readable_detail(untouched) == untouched
