"""`vdp bench-produce`'s figures: rates, the ratio, and CPU per frame where measured."""

from __future__ import annotations

import pytest

from benchmarks.produce import Phase, Report


def test_a_phase_reports_cpu_per_frame_only_where_it_was_measured() -> None:
    timed = Phase("raw produce", 200_000, 5_200_000, 2.0, cpu_seconds=1.0)
    assert timed.fps == 100_000 and timed.cpu_us_per_frame == pytest.approx(5.0)
    assert timed.line().endswith(" 5.00 µs CPU/frame")
    untimed = Phase("encode only", 1_000, 26_000, 0.5)
    assert untimed.cpu_us_per_frame is None and "CPU" not in untimed.line()


def test_the_report_compares_rates_and_cpu_per_frame() -> None:
    raw = Phase("raw produce", 400_000, 0, 2.0, cpu_seconds=2.0)  # 5 µs per frame
    real = Phase("simulate+publish", 200_000, 0, 2.0, cpu_seconds=2.0)  # 10 µs per frame
    report = Report({"raw produce": raw, "simulate+publish": real}, failed=0)
    assert report.ratio == pytest.approx(0.5)
    assert report.cpu_ratio == pytest.approx(0.5)
    untimed = Report({"raw produce": raw, "simulate+publish": Phase("x", 1, 0, 1.0)}, 0)
    assert untimed.cpu_ratio is None
