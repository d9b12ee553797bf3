"""What `vdp demo` prints: a short status block and curl lines a shell runs as they are."""

import shlex
from datetime import UTC, datetime, timedelta

from deploy.demo_status import (
    Car,
    Figures,
    owner_examples,
    render,
    report_complete_from,
    report_example,
)


def test_status_block_shows_every_figure_and_keeps_the_dead_letter_line_short() -> None:
    reasons = {f"reason_{i}": 10 - i for i in range(7)}
    lines = render(Figures(1234, 56789, reasons, 3, sales=2, consent_changes=5), "http://h:1")
    assert "1,234" in lines[0] and "56,789" in lines[0] and "lag 3" in lines[0]
    assert "reason_0 10" in lines[1] and "reason_4" not in lines[1] and "+3 more" in lines[1]
    assert lines[2] == "owners: cars sold 2   consent changes 5"
    assert render(Figures(), "u")[0].count("?") == 3
    assert render(Figures(), "u")[2].count("?") == 2


def test_the_report_is_announced_complete_once_its_window_and_the_settle_time_passed() -> None:
    at = datetime(2026, 1, 1, 12, 0, 7, 250000, tzinfo=UTC)
    # The curl line asks for 2 minutes before and 1 after `at` (to the second).
    assert "before_minutes=2&after_minutes=1" in report_example("http://h:1", "V", at)
    assert report_complete_from(at, 30) == at + timedelta(seconds=90)


def test_curl_lines_split_into_one_url_with_the_token_header() -> None:
    last = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    car = Car("owner-1", "LRW8ARLD7GD186641", last - timedelta(hours=9), last)
    lines = [*owner_examples("http://h:1", car), report_example("http://h:1", car.vin, last)]
    for line in lines:
        words = shlex.split(line)
        assert words[:4] == ["curl", "-sS", "-H", "Authorization: Bearer $TOKEN"]
        assert words[4].startswith("http://h:1/v1/vehicles")
    series = shlex.split(lines[2])[4]
    # At most six hours of 1-minute buckets, whatever the car's history.
    assert "from=2026-01-01T06%3A00%3A00Z" in series and "resolution=60" in series
    assert shlex.split(lines[3])[-2:] == ["-o", f"incident-{car.vin}.zip"]
