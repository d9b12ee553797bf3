"""The processor benchmark's CPU accounting (`benchmarks.process.cpu_seconds`, `Figures`)."""

import os
import sys
import time

import pytest

from benchmarks.process import Figures, cpu_seconds


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_seconds_counts_the_process_work() -> None:
    before = cpu_seconds([os.getpid()])
    assert before is not None
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = cpu_seconds([os.getpid()])
    assert after is not None
    assert after - before >= 0.2


def test_cpu_seconds_of_a_gone_process_is_unknown() -> None:
    assert cpu_seconds([2**22 + 1]) is None  # above Linux's pid_max: never a live process


def test_figures_report_cpu_per_frame() -> None:
    figures = Figures("processor", 1, 2_600, 2.0, [10.0, 20.0], frames=100, cpu_seconds=0.025)
    assert figures.cpu_us_per_frame == pytest.approx(250.0)
    assert "CPU 250 µs/frame" in figures.line()
    unknown = Figures("baseline", 1, 2_600, 2.0, [], frames=100, cpu_seconds=None)
    assert unknown.cpu_us_per_frame is None
    assert "CPU n/a µs/frame" in unknown.line()
