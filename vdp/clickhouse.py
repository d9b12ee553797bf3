"""The one ClickHouse client path: clickhouse-connect over HTTP, embedded store or server alike."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from vdp.errors import TransientError
from vdp.settings import Settings


def clickhouse_client(settings: Settings, database: str | None = None) -> Client:
    """A client for `settings`' ClickHouse; `database=None` binds none (it may not exist yet).

    An unreachable server is a `TransientError`: callers retry or report, never dead-letter.
    """
    import clickhouse_connect

    try:
        return clickhouse_connect.get_client(
            dsn=settings.clickhouse_url,
            username=settings.clickhouse_user,
            password=settings.clickhouse_password.get_secret_value(),
            database=database or "",
        )
    except OperationalError as e:
        raise TransientError(f"ClickHouse at {settings.clickhouse_url} is unreachable: {e}") from e
