"""The one ClickHouse client path: clickhouse-connect over HTTP, embedded store or server alike."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from vdp.errors import TransientError
from vdp.settings import Settings


def clickhouse_client(
    settings: Settings, database: str | None = None, *, shared: bool = False
) -> Client:
    """A client for `settings`' ClickHouse; `database=None` binds none (it may not exist yet).

    `shared=True` for a client that several threads query through at once: it carries no
    session id, since ClickHouse runs one query at a time per session.
    An unreachable server is a `TransientError`: callers retry or report, never dead-letter.
    """
    import clickhouse_connect

    try:
        return clickhouse_connect.get_client(
            dsn=settings.clickhouse_url,
            username=settings.clickhouse_user,
            password=settings.clickhouse_password.get_secret_value(),
            database=database or "",
            autogenerate_session_id=not shared,
        )
    except OperationalError as e:
        raise TransientError(f"ClickHouse at {settings.clickhouse_url} is unreachable: {e}") from e
