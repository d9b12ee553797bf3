"""Which ClickHouse errors the sink retries and which it dead-letters (no server needed:
the errors are built as clickhouse-connect builds them from a server's answer)."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    DataError,
    OperationalError,
    ProgrammingError,
)

from processors.writers.clickhouse import is_transient


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("connection refused"),
        DatabaseError("HTTP driver received HTTP status 502"),  # a proxy, no verdict
        DatabaseError("Code: 252. Too many parts", code=252),
        DatabaseError("Code: 241. Memory limit exceeded", code=241),
        DatabaseError("Code: 159. Timeout exceeded", code=159),
        DatabaseError("Code: 60. Unknown table", code=60),
        DatabaseError("Code: 516. Authentication failed", code=516),
    ],
)
def test_errors_that_pass_are_retried(error: Exception) -> None:
    assert is_transient(error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        DatabaseError("Code: 53. Type mismatch", code=53),
        DatabaseError("Code: 16. No such column", code=16),
        DatabaseError("Code: 27. Cannot parse input", code=27),
        ProgrammingError("Unrecognized column 'x' in table samples"),
        DataError("value out of range for UInt8"),
    ],
)
def test_refusals_for_good_are_not_retried(error: Exception) -> None:
    assert not is_transient(error)  # type: ignore[arg-type]
