"""What the benchmarks share (`benchmarks.common`) and bench-process's worker ports."""

from __future__ import annotations

import socket

import pytest

from benchmarks.common import frame_samples, p50_p99, us_per_frame
from benchmarks.process import web_ports


def test_cpu_per_frame_is_unknown_where_cpu_was_not_measured() -> None:
    assert us_per_frame(0.5, 100_000) == pytest.approx(5.0)
    assert us_per_frame(None, 100_000) is None


def test_percentiles_take_the_median_and_the_nearest_rank_below_99() -> None:
    assert p50_p99([3.0, 1.0, 2.0, 4.0]) == (2.5, 4.0)
    assert p50_p99([float(v) for v in range(1, 201)]) == (100.5, 199.0)
    assert p50_p99([7.0]) == (7.0, 7.0)


def test_a_frame_has_one_sample_per_signal_in_its_maps() -> None:
    frame = {"vin": "X", "doubles": {"a": 1.0, "b": 2.0}, "longs": {"c": 3}, "booleans": {},
             "strings": {"d": "e"}}  # fmt: skip
    assert frame_samples(frame) == 4


def test_web_port_0_gives_each_worker_a_free_port_of_its_own() -> None:
    ports = web_ports(0, 3)
    assert len(set(ports)) == 3 and all(p > 1024 for p in ports)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free now


def test_a_set_web_port_counts_up_per_worker() -> None:
    assert web_ports(6066, 2) == [6066, 6067]
