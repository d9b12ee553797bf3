"""`vdp process` hands each worker a port of its own, also when VDP_PROCESS_WEB_PORT is 0."""

from __future__ import annotations

from processors.runtime.launch import web_ports


def test_consecutive_ports_from_the_first() -> None:
    assert web_ports(6066, 3) == [6066, 6067, 6068]


def test_port_0_gives_each_worker_a_free_port_of_its_own() -> None:
    ports = web_ports(0, 4)
    assert len(set(ports)) == 4 and all(p > 1024 for p in ports)
