"""The embedded ClickHouse server answers ordinary ClickHouse clients as ClickHouse does.

Three independent clients, each with its default settings unless a test says otherwise:
clickhouse-connect (what the platform and notebooks use), the ClickHouse JDBC driver (what
DBeaver and other JDBC tools use; a small Java program built with Maven), and `curl`.
Every check is a behaviour of a ClickHouse server, not of this implementation.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, StreamFailureError
from clickhouse_connect.driver.summary import QuerySummary

from deploy.clickhouse import EmbeddedClickHouse
from tests.conftest import REPO, ClickHouseEndpoint
from vdp.net import free_port

# The claim is about the embedded server (chDB of the pinned chdb-core): run on it.
pytestmark = pytest.mark.usefixtures("embedded_clickhouse")

JDBC_DIR = REPO / "tests" / "conformance" / "jdbc"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def client(ep: ClickHouseEndpoint, database: str, **kwargs: object) -> Client:
    return clickhouse_connect.get_client(
        dsn=ep.url, username=ep.user, password=ep.password, database=database, **kwargs
    )


def curl(ep: ClickHouseEndpoint, *args: str, data: bytes | None = None) -> tuple[int, bytes]:
    """curl's exit code and its output (headers first with -D -)."""
    cmd = ["curl", "-sS", "-u", f"{ep.user}:{ep.password}", *args]
    if data is not None:
        cmd += ["--data-binary", "@-"]
    done = subprocess.run(cmd, input=data, capture_output=True, timeout=120)
    return done.returncode, done.stdout


# --- clickhouse-connect -----------------------------------------------------------------


@pytest.mark.parametrize("session", [True, False], ids=["session", "no-session"])
def test_column_time_zones_reach_clickhouse_connect(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str, session: bool
) -> None:
    c = client(clickhouse_endpoint, clickhouse_db, autogenerate_session_id=session)
    assert c.protocol_version  # the server honoured client_protocol_version
    c.command(
        "CREATE TABLE zoned (vin LowCardinality(String), note String, at DateTime('Asia/Shanghai'),"
        " utc DateTime('UTC'), plain DateTime) ENGINE = MergeTree ORDER BY vin"
    )
    at = dt.datetime(2025, 3, 1, 8, 30, tzinfo=SHANGHAI)
    c.insert(
        "zoned", [["V1", "x" * 300, at, at, at]], column_names=["vin", "note", "at", "utc", "plain"]
    )
    result = c.query("SELECT vin, note, at, utc, plain FROM zoned")
    names = [t.name for t in result.column_types]
    assert names[2:] == ["DateTime('Asia/Shanghai')", "DateTime('UTC')", "DateTime"]
    _, _, got_at, got_utc, _ = result.result_rows[0]
    assert got_at == at and got_at.tzinfo == SHANGHAI
    # clickhouse-connect gives naive datetimes for a column in the server's own zone (UTC)
    assert got_utc.replace(tzinfo=dt.UTC) == at
    arrays = c.query("SELECT [at] AS a, toNullable(at) AS n FROM zoned")
    assert [t.name for t in arrays.column_types] == [
        "Array(DateTime('Asia/Shanghai'))",
        "Nullable(DateTime('Asia/Shanghai'))",
    ]
    c.close()


def test_query_df_arrow_insert_and_command(clickhouse_client: Client) -> None:
    c = clickhouse_client
    ddl = c.command("CREATE TABLE kv (k UInt32, v String) ENGINE = MergeTree ORDER BY k")
    assert isinstance(ddl, QuerySummary)  # no result: a summary, not ''
    summary = c.insert("kv", [[i, f"v{i}"] for i in range(50_000)], column_names=["k", "v"])
    assert summary.written_rows == 50_000
    assert c.command("SELECT count() FROM kv WHERE k > 1000000") == 0
    assert c.command("SELECT v FROM kv WHERE k > 1000000") == ""  # a result with no rows
    assert c.query_df("SELECT k, v FROM kv ORDER BY k LIMIT 3")["v"].tolist() == ["v0", "v1", "v2"]
    table = c.query_arrow("SELECT k, v FROM kv ORDER BY k")
    assert table.num_rows == 50_000 and table.column("k")[-1].as_py() == 49_999
    with c.query_arrow_stream(
        "SELECT k FROM kv ORDER BY k", settings={"max_block_size": 7000}
    ) as s:
        batches = list(s)
    assert len(batches) > 1 and sum(b.num_rows for b in batches) == 50_000
    with c.query_row_block_stream("SELECT k FROM kv", settings={"max_block_size": 5000}) as s:
        assert sum(len(block) for block in s) == 50_000


@pytest.mark.parametrize("method", ["lz4", "zstd", "gzip"])
def test_compression_both_ways(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str, method: str
) -> None:
    c = client(clickhouse_endpoint, clickhouse_db, compress=method)
    c.command("CREATE TABLE packed (k UInt32, v String) ENGINE = MergeTree ORDER BY k")
    c.insert("packed", [[i, str(i) * 3] for i in range(100_000)], column_names=["k", "v"])
    assert c.query("SELECT count(), sum(k) FROM packed").result_rows == [(100_000, 4999950000)]
    df = c.query_df("SELECT k, v FROM packed ORDER BY k")
    assert len(df) == 100_000 and df["v"].iloc[-1] == "99999" * 3
    c.close()


def test_an_error_part_way_through_a_result_is_a_stream_error(clickhouse_client: Client) -> None:
    sql = "SELECT number, throwIf(number = 300000, 'boom') AS t FROM numbers(1000000)"
    with pytest.raises(StreamFailureError) as err:
        _ = clickhouse_client.query(sql, settings={"max_block_size": 10_000}).result_rows
    assert "Code: 395" in str(err.value) and "boom" in str(err.value)
    assert clickhouse_client.command("SELECT 1") == 1  # the client goes on


def test_results_stream_in_bounded_memory(tmp_path: Path) -> None:
    server = EmbeddedClickHouse(tmp_path / "ch", free_port(), "mem-user", "mem-pw")
    server.start(timeout=60, die_with_parent=True)
    try:
        ep = ClickHouseEndpoint(server.url, server.user, server.password)
        c = client(ep, "default", compress=False)
        pid = server.pid
        assert pid is not None
        before, peak, stop = _rss(pid), [0], threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                peak[0] = max(peak[0], _rss(pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        started, first, size = time.monotonic(), 0.0, 0
        sql = "SELECT repeat('x', 100) FROM numbers(5000000)"  # a 480 MiB result
        with c.raw_stream(sql, fmt="TabSeparated") as stream:
            for chunk in stream:
                first = first or time.monotonic() - started
                size += len(chunk)
        total = time.monotonic() - started
        stop.set()
        sampler.join()
        assert size == 5_000_000 * 101
        assert peak[0] - before < 200 << 20, f"server grew by {(peak[0] - before) >> 20} MiB"
        assert first < total / 3, f"first byte after {first:.2f}s of {total:.2f}s"
    finally:
        server.stop()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_sessions_keep_set_and_temporary_tables(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str
) -> None:
    session = client(clickhouse_endpoint, clickhouse_db, session_id=f"s-{uuid.uuid4()}")
    other = client(clickhouse_endpoint, clickhouse_db, autogenerate_session_id=False)
    session.command("SET max_threads = 3")
    session.command("CREATE TEMPORARY TABLE scratch (a UInt8)")
    session.command("INSERT INTO scratch VALUES (1), (2)")
    assert session.command("SELECT getSetting('max_threads')") == 3
    assert session.command("SELECT count() FROM scratch") == 2
    # a setting in the request applies to that request only
    one = session.query("SELECT getSetting('max_threads')", settings={"max_threads": 1})
    assert one.result_rows == [(1,)]
    assert session.command("SELECT getSetting('max_threads')") == 3
    assert other.command("SELECT getSetting('max_threads')") != 3
    with pytest.raises(DatabaseError) as err:
        other.command("SELECT count() FROM scratch")
    assert err.value.code == 60  # UNKNOWN_TABLE: temporary tables belong to their session


def _session_held(
    endpoint: ClickHouseEndpoint, database: str, seconds: float, after: float
) -> tuple[threading.Thread, list[object], Client]:
    """A session busy with `SELECT sleep(seconds)` on one client (its answer goes to the
    list), and, `after` seconds into it, a second client of the same session."""
    sid = f"s-{uuid.uuid4()}"
    first, second = (client(endpoint, database, session_id=sid) for _ in "ab")
    outcome: list[object] = []
    sql = f"SELECT sleep({seconds})"
    slow = threading.Thread(target=lambda: outcome.append(first.command(sql)))
    slow.start()
    time.sleep(after)
    return slow, outcome, second


def test_one_session_serves_one_request_at_a_time(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str
) -> None:
    slow, outcome, second = _session_held(clickhouse_endpoint, clickhouse_db, 3.0, after=1.0)
    with pytest.raises(DatabaseError) as err:
        second.command("SELECT 1")
    slow.join()
    assert err.value.code == 373 and "SESSION_IS_LOCKED" in str(err.value)
    assert outcome == [0]  # the first request was not disturbed
    assert second.command("SELECT 1") == 1  # free again once the first request is done


def test_a_request_arriving_as_its_sessions_last_one_ends_is_served(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str
) -> None:
    # A reply's last bytes leave before its handler lets go of the session: a client's next
    # request may come in that moment (a CI run was refused after a streamed result).
    slow, outcome, second = _session_held(clickhouse_endpoint, clickhouse_db, 0.3, after=0.1)
    assert second.command("SELECT 1") == 1  # waited for the first, not refused
    slow.join()
    assert outcome == [0]
    for _ in range(50):  # back to back, streamed: each waits out the one before
        with second.query_row_block_stream("SELECT number FROM numbers(3)") as s:
            assert [r for b in s for r in b] == [(0,), (1,), (2,)]


def test_a_session_ends_after_its_timeout(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str
) -> None:
    sid = f"s-{uuid.uuid4()}"
    c = client(clickhouse_endpoint, clickhouse_db, session_id=sid, settings={"session_timeout": 1})
    c.command("CREATE TEMPORARY TABLE brief (a UInt8)")
    assert c.command("EXISTS TEMPORARY TABLE brief") == 1
    time.sleep(3)
    with pytest.raises(DatabaseError) as err:
        c.command("SELECT count() FROM brief")
    assert err.value.code == 60


def test_several_statements_in_one_request_are_refused(clickhouse_client: Client) -> None:
    for sql in ("SELECT 1; SELECT 2", "CREATE TABLE one (a UInt8) ENGINE = Memory; SELECT 1"):
        with pytest.raises(DatabaseError) as err:
            clickhouse_client.command(sql)
        assert err.value.code == 62 and "Multi-statements are not allowed" in str(err.value)
    assert clickhouse_client.command("EXISTS TABLE one") == 0
    assert clickhouse_client.command("SELECT 1;") == 1  # one statement and its semicolon


def test_binary_string_parameters_and_query_text(clickhouse_client: Client) -> None:
    value = b"\xff\x00\xfe raw"
    bound = clickhouse_client.query("SELECT hex({b:String}) AS h", parameters={"b": value})
    assert bound.result_rows == [(value.hex().upper(),)]
    inline = clickhouse_client.query("SELECT hex(%(b)s) AS h", parameters={"b": value})
    assert inline.result_rows == [(value.hex().upper(),)]


def test_the_engine_connection_seam_is_still_there() -> None:
    # chengine.classify reads chDB's inner connection (multi-statement and GET checks)
    import chdb

    conn = chdb.connect(":memory:")
    info = conn._conn.classify_query("SELECT 1; SELECT 2")
    assert info["statement_count"] == 2 and info["query_class"].name == "READ_ONLY"
    conn.close()


# --- the JDBC driver --------------------------------------------------------------------


@pytest.fixture(scope="session")
def jdbc_classpath() -> str:
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.skip("java and mvn are needed to build the JDBC client (tests/conformance/jdbc)")
    with (JDBC_DIR / "pom.xml").open() as pom:
        fcntl.flock(pom, fcntl.LOCK_EX)  # one build at a time: test runs may share the tree
        built = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(JDBC_DIR / "pom.xml"), "compile"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    deps = (JDBC_DIR / "target" / "classpath.txt").read_text().strip()
    return f"{deps}:{JDBC_DIR / 'target' / 'classes'}"


@pytest.mark.parametrize("props", [[], ["decompress=true"]], ids=["defaults", "request-lz4"])
def test_jdbc_driver(
    jdbc_classpath: str, clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str, props: list
) -> None:
    ep = clickhouse_endpoint
    url = f"jdbc:clickhouse://{ep.url.removeprefix('http://')}/{clickhouse_db}"
    done = subprocess.run(
        ["java", "-cp", jdbc_classpath, "Main", url, ep.user, ep.password, *props],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert seen["version"].startswith("26.")
    assert (seen["inserted"], seen["count"], seen["id_sum"]) == ("5000", "5000", "12497500")
    assert seen["name_7"] == "name-7" and seen["epoch_0"] == "1700000000"
    assert seen["at_type"] == "DateTime('Asia/Shanghai')"
    assert (seen["big_rows"], seen["big_sum"]) == ("300000", "44999850000")
    assert seen["error_code"] == "60"


# --- curl -------------------------------------------------------------------------------


def test_curl_sees_clickhouse_headers(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str
) -> None:
    ep, db = clickhouse_endpoint, clickhouse_db
    code, out = curl(
        ep, "-D", "-", f"{ep.url}/?database={db}", data=b"CREATE TABLE c (a UInt8) ENGINE = Memory"
    )
    head = out.decode().lower()
    assert code == 0 and "x-clickhouse-summary" in head and "x-clickhouse-format" not in head
    code, out = curl(
        ep, "-D", "-", f"{ep.url}/?database={db}&query=INSERT+INTO+c+FORMAT+TSV", data=b"1\n2\n"
    )
    assert code == 0 and b"x-clickhouse-format" not in out.lower()
    assert b'"written_rows": "2"' in out or b'"written_rows":"2"' in out
    code, out = curl(ep, "-D", "-", f"{ep.url}/?database={db}&query=SELECT+sum(a)+FROM+c")
    assert (
        code == 0 and b"X-ClickHouse-Format: TabSeparated" in out and out.endswith(b"\r\n\r\n3\n")
    )
    code, out = curl(ep, "-D", "-", f"{ep.url}/?query=SELECT+*+FROM+nowhere")
    assert b"X-ClickHouse-Exception-Code: 60" in out and b"Code: 60. DB::Exception:" in out
    assert out.startswith(b"HTTP/1.1 404")


def test_curl_gets_compressed_answers_and_sends_raw_bytes(
    clickhouse_endpoint: ClickHouseEndpoint,
) -> None:
    ep = clickhouse_endpoint
    url = f"{ep.url}/?enable_http_compression=1&query=SELECT+number+FROM+numbers(100000)"
    code, out = curl(ep, "--compressed", "-H", "Accept-Encoding: gzip", url)
    assert code == 0 and out.splitlines()[-1] == b"99999"
    code, out = curl(ep, f"{ep.url}/", data=b"SELECT hex('\xff\xfe')")
    assert (code, out) == (0, b"FFFE\n")
    code, out = curl(ep, f"{ep.url}/?query=SELECT+hex('%FF%00')+AS+h")
    assert (code, out) == (0, b"FF00\n")
    code, out = curl(ep, f"{ep.url}/?param_b=%FF%FEok", data=b"SELECT hex({b:String})")
    assert (code, out) == (0, b"FFFE6F6B\n")


def test_curl_sees_an_error_part_way_through_in_the_stream(
    clickhouse_endpoint: ClickHouseEndpoint,
) -> None:
    ep = clickhouse_endpoint
    sql = (
        b"SELECT number, throwIf(number = 200000) FROM numbers(500000) SETTINGS max_block_size=1000"
    )
    code, out = curl(ep, "-D", "-", f"{ep.url}/", data=sql)
    assert out.startswith(b"HTTP/1.1 200")
    tag = out.split(b"X-ClickHouse-Exception-Tag: ")[1].split(b"\r\n")[0]
    assert b"\r\n__exception__\r\n" + tag + b"\r\nCode: 395." in out
    assert out.endswith(b" " + tag + b"\r\n__exception__\r\n")
    assert code == 18  # curl: the chunked body never ended, the answer is not whole
