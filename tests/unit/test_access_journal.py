"""The access log's journal (query/access_log.py): what a crashed writer leaves is written
by the next one, each request once, a response cut short as aborted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from query.access_log import AccessLogWriter, Entry

AT = datetime(2026, 1, 1, tzinfo=UTC)


def entry(request_id: str, aborted: bool = False) -> Entry:
    return Entry(
        AT, request_id, "alice", "/v1/vehicles", "", ("driving",), AT, None,
        0 if aborted else 5, 100, aborted, 200, 3,
    )  # fmt: skip


class Table:
    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.down = False

    def insert(self, rows: list[list[Any]]) -> None:
        if self.down:
            raise ConnectionError("store down")
        self.rows.extend(rows)

    def stored(self, ids: list[str]) -> set[str]:
        return {r[1] for r in self.rows} & set(ids)


def writer(table: Table, journal: Path) -> AccessLogWriter:
    w = AccessLogWriter(table.insert, 3600, 100, journal_dir=journal, stored=table.stored)
    w.start()
    return w


def test_a_crashed_writers_entries_are_written_by_the_next_once_each(tmp_path: Path) -> None:
    table = Table()
    first = writer(table, tmp_path)
    first.record(entry("a"))
    assert first.flush()  # "a" is in the table; its journal file is gone
    first.record(entry("b"))
    first.begin(entry("c", aborted=True))  # a response under way when the process dies
    table.down = True
    assert not first.flush()
    first.record(entry("d"))
    table.down = False
    # (the process is SIGKILLed here: nothing closed, nothing more flushed)

    second = writer(table, tmp_path)
    assert second.flush()
    ids = sorted(r[1] for r in table.rows)
    assert ids == ["a", "b", "c", "d"]
    assert [r for r in table.rows if r[1] == "c"][0] == entry("c", aborted=True).row()
    second.close()
    assert list(tmp_path.glob("*.jsonl")) == []


def test_a_replay_skips_what_landed_before_the_crash(tmp_path: Path) -> None:
    table = Table()
    first = writer(table, tmp_path)
    first.record(entry("a"))
    first.record(entry("b"))
    table.insert([entry("a").row()])  # landed, but the process died before deleting
    second = writer(table, tmp_path)
    assert second.flush()
    assert sorted(r[1] for r in table.rows) == ["a", "b"]


def test_an_entry_finished_after_a_flush_is_not_lost(tmp_path: Path) -> None:
    table = Table()
    first = writer(table, tmp_path)
    first.begin(entry("long", aborted=True))
    assert first.flush()  # its provisional line moves to the new journal file
    second = writer(table, tmp_path)
    assert second.flush()
    assert [r[1] for r in table.rows] == ["long"]
