"""Running a test with the producers' C modules or with their pure-Python twins.

The twins always exist. The C modules exist where `pip install` found a compiler; CI
builds them with `VDP_BUILD_C=strict` (see `setup.py`), and there a missing C module fails
the tests that need it instead of skipping them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from producers import native

C_MODULES = ("producers.sim._fleetstep", "producers.publish._framewire")
TWINS = ("producers.sim.purestep", "producers.publish.purewire")
IMPLEMENTATIONS = ("c", "pure")


def require_c_modules() -> None:
    """Skip (fail, where the build was strict) unless both C modules were built."""
    missing = []
    for name in C_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return
    why = f"not built: {', '.join(missing)}"
    if os.environ.get("VDP_BUILD_C") == "strict":
        pytest.fail(f"VDP_BUILD_C=strict, yet {why}")
    pytest.skip(why)


@contextmanager
def running(implementation: str) -> Iterator[None]:
    """The simulator and the encoder on the C modules ("c") or on their twins ("pure")."""
    if implementation == "c":
        require_c_modules()
    for name in TWINS:
        importlib.import_module(name)  # the twins must always be there
    native.force_pure(implementation == "pure")
    try:
        yield
    finally:
        native.force_pure(False)
