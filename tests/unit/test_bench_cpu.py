"""The processor benchmark's CPU accounting (`benchmarks.process.cpu_seconds`, `Figures`)
and its phases and ratios (`phases`, `ratio_lines`)."""

import os
import sys
import time

import pytest

from benchmarks.process import Figures, cpu_seconds, phases, ratio_lines


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
    figures = Figures(
        "processor 1", "processor", 1, 2_600, 2.0, [10.0, 20.0], frames=100, cpu_seconds=0.025
    )
    assert figures.cpu_us_per_frame == pytest.approx(250.0)
    assert "CPU 250 µs/frame" in figures.line()
    unknown = Figures("baseline 2", "baseline", 1, 2_600, 2.0, [], frames=100, cpu_seconds=None)
    assert unknown.cpu_us_per_frame is None
    assert "CPU n/a µs/frame" in unknown.line()
    assert "latency" not in unknown.line()  # not measured in that phase


def test_each_processor_phase_sits_between_two_baselines() -> None:
    kinds = [kind for kind, _ in phases(3)]
    assert kinds == ["baseline", "processor"] * 3 + ["baseline"]
    assert [label for _, label in phases(1)] == ["baseline 1", "processor 1", "baseline 2"]
    assert [kind for kind, _ in phases(3, consent_compare=True)] == ["no_consent", "processor"]
    with pytest.raises(ValueError):
        phases(0)


def _phase(label: str, seconds: float, cpu: float) -> Figures:
    kind = label.split()[0]
    return Figures(label, kind, 1, 1_000, seconds, [], frames=10, cpu_seconds=cpu)


def test_ratios_compare_each_processor_phase_with_its_brackets() -> None:
    # baselines at 1000, 500 and 1000 samples/s; the processor at 600 and 300
    run = [_phase("baseline 1", 1.0, 0.001), _phase("processor 1", 1 / 0.6, 0.003),
           _phase("baseline 2", 2.0, 0.001), _phase("processor 2", 1 / 0.3, 0.001),
           _phase("baseline 3", 1.0, 0.001)]  # fmt: skip
    lines = ratio_lines(run, workers=1)
    head = "processor per worker / mean of the baselines around it = "
    # by phase 600 / 750 and 300 / 750; the run (600 + 300) / (750 + 750)
    assert lines[0].startswith(head + "0.600 ")
    assert lines[0].endswith("by phase 0.800, 0.400")
    # CPU: baseline 100 µs/frame, the processor (300 + 100) / 2 = 200
    assert lines[1] == "CPU per frame: baseline / processor = 0.50"
    # two workers: the rate per worker counts
    assert ratio_lines(run, workers=2)[0].startswith(head + "0.300 ")
