"""Fixtures of the unit tests (which never open a socket)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.twins import IMPLEMENTATIONS, running


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """The test once on the producers' C modules, once on their pure-Python twins."""
    with running(request.param):
        yield request.param
