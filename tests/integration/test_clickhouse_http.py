"""The embedded ClickHouse store behind the ClickHouse HTTP interface, end to end.

Everything here goes through real HTTP to the real engine: clickhouse-connect with its
default settings (compression negotiated), and raw requests the way curl or another
ClickHouse client would send them.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import http.client
import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from pathlib import Path

import lz4.frame
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from deploy.chcompress import compress_block, zstd
from deploy.clickhouse import EmbeddedClickHouse
from tests.conftest import ClickHouseEndpoint
from vdp.net import free_port

RICH_DDL = """
CREATE TABLE readings (
    ts DateTime64(3, 'UTC'),
    vin LowCardinality(String),
    speed Nullable(Float32),
    codes Array(String),
    tyres Map(String, Float64),
    odometer Decimal(12, 3)
) ENGINE = MergeTree ORDER BY (vin, ts)
"""
COLUMNS = ["ts", "vin", "speed", "codes", "tyres", "odometer"]


def raw(
    ep: ClickHouseEndpoint,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    **params: str,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One raw request; returns (status, headers, body) for errors as well."""
    user, password = auth or (ep.user, ep.password)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    url = f"{ep.url}/?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, data=body, headers={"Authorization": f"Basic {token}"})
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def chunked_post(ep: ClickHouseEndpoint, params: dict[str, str], chunks: list[bytes]) -> int:
    host, port = urllib.parse.urlsplit(ep.url).netloc.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    token = base64.b64encode(f"{ep.user}:{ep.password}".encode()).decode()
    conn.request(
        "POST",
        f"/?{urllib.parse.urlencode(params)}",
        body=iter(chunks),
        headers={"Authorization": f"Basic {token}"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def rich_rows(n: int) -> list[list[object]]:
    base = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
    return [
        [
            base + dt.timedelta(milliseconds=i * 250 + 1),
            f"VIN{i % 3}",
            None if i % 4 == 0 else float(i),
            [f"P{i:04d}"] * (i % 3),
            {"fl": 2.4, "fr": 2.5 + i / 100},
            Decimal(f"{1000 + i}.125"),
        ]
        for i in range(n)
    ]


def utc_naive(value: object) -> object:
    assert isinstance(value, dt.datetime)
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


@pytest.fixture
def readings(clickhouse_client: Client) -> Client:
    clickhouse_client.command(RICH_DDL)
    return clickhouse_client


def test_clickhouse_connect_round_trips_rich_types(readings: Client) -> None:
    rows = rich_rows(1000)
    summary = readings.insert("readings", rows, column_names=COLUMNS)
    assert summary.written_rows == 1000
    got = readings.query("SELECT * FROM readings ORDER BY ts").result_rows
    # clickhouse-connect hands back naive datetimes when the column's zone is the server's
    assert [[utc_naive(r[0]), *r[1:]] for r in got] == [[utc_naive(r[0]), *r[1:]] for r in rows]
    assert readings.command("SELECT count() FROM readings WHERE speed IS NULL") == 250


def test_query_df_and_query_arrow(readings: Client) -> None:
    readings.insert("readings", rich_rows(100), column_names=COLUMNS)
    df = readings.query_df("SELECT vin, count() AS n FROM readings GROUP BY vin ORDER BY vin")
    assert df["vin"].tolist() == ["VIN0", "VIN1", "VIN2"]
    assert df["n"].tolist() == [34, 33, 33]
    table = readings.query_arrow("SELECT ts, odometer, tyres FROM readings ORDER BY ts LIMIT 5")
    assert table.num_rows == 5
    assert pa.types.is_timestamp(table.schema.field("ts").type)
    assert table.column("odometer")[0].as_py() == Decimal("1000.125")
    readings.insert_df("readings", readings.query_df("SELECT * FROM readings LIMIT 10"))
    assert readings.command("SELECT count() FROM readings") == 110


def test_parameters_are_bound_by_the_engine(readings: Client) -> None:
    readings.insert("readings", rich_rows(20), column_names=COLUMNS)
    hostile = "VIN1' OR 1=1 --"
    result = readings.query(
        "SELECT count() FROM readings WHERE vin = {vin:String} AND ts >= {since:DateTime64(3)}",
        parameters={"vin": "VIN1", "since": dt.datetime(2025, 3, 1, 8, 0, 2)},
    )
    assert result.result_rows == [(4,)]  # VIN1 rows 10, 13, 16, 19 are from 08:00:02 on
    assert readings.query(
        "SELECT count() FROM readings WHERE vin = {vin:String}", parameters={"vin": hostile}
    ).result_rows == [(0,)]
    assert readings.query("SELECT {s:String}", parameters={"s": hostile}).result_rows == [
        (hostile,)
    ]
    # a long value makes clickhouse-connect send the query as a multipart form
    long_value = "x" * 50_000
    assert readings.query(
        "SELECT length({s:String})", parameters={"s": long_value}
    ).result_rows == [(50_000,)]


def test_default_client_negotiates_compression(clickhouse_client: Client) -> None:
    assert clickhouse_client.compression  # get_client's default: compress=True
    df = clickhouse_client.query_df("SELECT number, toString(number) AS s FROM numbers(200000)")
    assert len(df) == 200_000 and df["s"].iloc[-1] == "199999"


def test_engine_error_reaches_the_client_with_its_code(clickhouse_client: Client) -> None:
    with pytest.raises(DatabaseError) as err:
        clickhouse_client.query("SELECT * FROM no_such_table")
    assert err.value.code == 60
    assert "UNKNOWN_TABLE" in str(err.value)


def test_raw_native_insert_with_chunked_body(
    clickhouse_endpoint: ClickHouseEndpoint, readings: Client
) -> None:
    db = readings.database
    status, _, native = raw(
        clickhouse_endpoint,
        query="SELECT number::UInt64 AS a, toString(number) AS b FROM numbers(50000) FORMAT Native",
    )
    assert status == 200
    readings.command("CREATE TABLE kv (a UInt64, b String) ENGINE = MergeTree ORDER BY a")
    chunks = [native[i : i + 7001] for i in range(0, len(native), 7001)]
    params = {"query": "INSERT INTO kv (a, b) FORMAT Native", "database": db}
    assert chunked_post(clickhouse_endpoint, params, chunks) == 200
    assert readings.query("SELECT count(), sum(a) FROM kv").result_rows == [(50000, 1249975000)]


def test_insert_summary_and_compressed_request_bodies(
    clickhouse_endpoint: ClickHouseEndpoint, readings: Client
) -> None:
    db = readings.database
    readings.command("CREATE TABLE kv (a UInt64, b String) ENGINE = MergeTree ORDER BY a")
    q = "INSERT INTO kv FORMAT CSV"
    status, headers, _ = raw(clickhouse_endpoint, b"1,one\n2,two\n", query=q, database=db)
    assert status == 200
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert summary["written_rows"] == "2"
    assert set(summary) >= {"read_rows", "read_bytes", "written_bytes", "elapsed_ns"}
    # clickhouse-connect compresses each block as its own lz4 frame: several frames per body
    lz4_body = lz4.frame.compress(b"3,three\n") + lz4.frame.compress(b"4,four\n")
    status, _, _ = raw(
        clickhouse_endpoint, lz4_body, {"Content-Encoding": "lz4"}, query=q, database=db
    )
    assert status == 200
    gz_body = gzip.compress(b"INSERT INTO kv FORMAT CSV\n5,five\n")
    assert raw(clickhouse_endpoint, gz_body, {"Content-Encoding": "gzip"}, database=db)[0] == 200
    got = readings.query("SELECT b FROM kv ORDER BY a").result_columns[0]
    assert got == ["one", "two", "three", "four", "five"]


def test_output_formats_and_query_in_body(
    clickhouse_endpoint: ClickHouseEndpoint, readings: Client
) -> None:
    readings.insert("readings", rich_rows(10), column_names=COLUMNS)
    db = readings.database
    sql = b"SELECT vin, count() AS n FROM readings GROUP BY vin ORDER BY vin"
    status, headers, body = raw(clickhouse_endpoint, sql, database=db, default_format="JSONEachRow")
    assert status == 200 and headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert [json.loads(line) for line in body.splitlines()][0] == {"vin": "VIN0", "n": 4}
    status, headers, body = raw(clickhouse_endpoint, sql + b" FORMAT CSV", database=db)
    assert headers["X-ClickHouse-Format"] == "CSV"
    assert body == b'"VIN0",4\n"VIN1",3\n"VIN2",3\n'
    # URL query prefix + body, as ClickHouse concatenates them
    status, _, body = raw(
        clickhouse_endpoint, b"ORDER BY ts LIMIT 3 FORMAT Parquet", database=db,
        query="SELECT ts, odometer, codes FROM readings",
    )  # fmt: skip
    table = pq.read_table(pa.BufferReader(body))
    assert table.num_rows == 3 and table.column_names == ["ts", "odometer", "codes"]
    status, headers, body = raw(
        clickhouse_endpoint, None, {"Accept-Encoding": "gzip"},
        query="SELECT number FROM numbers(5000) FORMAT TSV", enable_http_compression="1",
    )  # fmt: skip
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).splitlines()[-1] == b"4999"


def test_credentials_are_required_and_checked(clickhouse_endpoint: ClickHouseEndpoint) -> None:
    status, headers, body = raw(clickhouse_endpoint, auth=("nobody", "wrong"), query="SELECT 1")
    assert status in (401, 403)
    assert headers["X-ClickHouse-Exception-Code"] == "516"
    assert b"AUTHENTICATION_FAILED" in body
    wrong = (clickhouse_endpoint.user, clickhouse_endpoint.password + "x")
    assert raw(clickhouse_endpoint, auth=wrong, query="SELECT 1")[0] in (401, 403)
    url = f"{clickhouse_endpoint.url}/?query=SELECT%201"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, timeout=10)
    assert err.value.code in (401, 403)
    req = urllib.request.Request(url)
    req.add_header("X-ClickHouse-User", clickhouse_endpoint.user)
    req.add_header("X-ClickHouse-Key", clickhouse_endpoint.password)
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.read() == b"1\n"
    with urllib.request.urlopen(f"{clickhouse_endpoint.url}/ping", timeout=10) as resp:
        assert resp.read() == b"Ok.\n"


def test_get_requests_are_read_only(clickhouse_endpoint: ClickHouseEndpoint) -> None:
    token = base64.b64encode(f"{clickhouse_endpoint.user}:{clickhouse_endpoint.password}".encode())
    query = urllib.parse.quote("CREATE TABLE default.should_not_exist (a UInt8) ENGINE = Memory")
    req = urllib.request.Request(f"{clickhouse_endpoint.url}/?query={query}")
    req.add_header("Authorization", f"Basic {token.decode()}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.headers["X-ClickHouse-Exception-Code"] == "164"  # READONLY


def test_data_survives_a_restart_and_a_crash(tmp_path: Path) -> None:
    server = EmbeddedClickHouse(tmp_path / "ch", free_port(), "restart-user", "restart-pw")
    server.start(timeout=60, die_with_parent=True)
    try:
        ep = ClickHouseEndpoint(server.url, server.user, server.password)
        client = ep.client()
        client.command("CREATE DATABASE keep")
        client.command("CREATE TABLE keep.t (a UInt32) ENGINE = MergeTree ORDER BY a")
        client.insert("keep.t", [[i] for i in range(1234)], column_names=["a"])
        client.close()
        assert server.version().startswith("26.")
        server.stop()
        assert not server.running()
        server.start(timeout=60, die_with_parent=True)
        client = ep.client()
        assert client.command("SELECT count() FROM keep.t") == 1234
        client.insert("keep.t", [[i] for i in range(766)], column_names=["a"])
        client.close()
        server.kill()  # a crash: every acknowledged insert must still be there
        assert not server.running()
        server.start(timeout=60, die_with_parent=True)
        client = ep.client()
        assert client.command("SELECT count() FROM keep.t") == 2000
        client.close()
    finally:
        server.stop()
    assert (tmp_path / "ch" / "password").stat().st_mode & 0o077 == 0


WORKER = textwrap.dedent(
    """
    import sys, clickhouse_connect
    url, user, password, db, worker = sys.argv[1:6]
    client = clickhouse_connect.get_client(dsn=url, username=user, password=password, database=db)
    for batch in range(5):
        rows = [[int(worker), batch, i] for i in range(10_000)]
        client.insert("events", rows, column_names=["worker", "batch", "i"])
        seen = client.command("SELECT count() FROM events WHERE worker = " + worker)
        assert seen == (batch + 1) * 10_000, seen
    """
)


def test_concurrent_clients_in_several_processes(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_client: Client
) -> None:
    clickhouse_client.command(
        "CREATE TABLE events (worker UInt8, batch UInt8, i UInt32) ENGINE = MergeTree ORDER BY i"
    )
    ep, db = clickhouse_endpoint, clickhouse_client.database
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, ep.url, ep.user, ep.password, db, str(w)],
            stderr=subprocess.PIPE,
        )
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    assert clickhouse_client.query(
        "SELECT count(), uniqExact(worker, batch, i) FROM events"
    ).result_rows == [(200_000, 200_000)]


# --- request bodies that end early or are corrupt: refused, and nothing of them stored ------

CSV_ROWS = 200_000
CSV_BODY = b"".join(b"%d,value-%d\n" % (i, i) for i in range(CSV_ROWS))


def raw_post(
    ep: ClickHouseEndpoint,
    params: dict[str, str],
    body: bytes,
    headers: dict[str, str],
    cut: str = "shutdown",
) -> bytes:
    """A POST written by hand; `cut`: "shutdown" stops sending but reads the answer,
    "close" drops the connection mid-body."""
    host, port = urllib.parse.urlsplit(ep.url).netloc.rsplit(":", 1)
    token = base64.b64encode(f"{ep.user}:{ep.password}".encode()).decode()
    lines = [f"POST /?{urllib.parse.urlencode(params)} HTTP/1.1", f"Host: {host}"]
    lines += [f"Authorization: Basic {token}", *(f"{k}: {v}" for k, v in headers.items())]
    sock = socket.create_connection((host, int(port)), timeout=60)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        if cut == "close":
            return b""
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer
    finally:
        sock.close()


def _truncations() -> list[tuple[str, bytes, dict[str, str], dict[str, str], str]]:
    half = len(CSV_BODY) // 2
    lz4_body = lz4.frame.compress(CSV_BODY)
    gz_body = gzip.compress(CSV_BODY)
    native = compress_block(CSV_BODY[: 1 << 20]) + compress_block(CSV_BODY[1 << 20 :])
    length = {"Content-Length": str(len(CSV_BODY))}
    return [
        ("short of Content-Length", CSV_BODY[:half], length, {}, "shutdown"),
        ("cut mid-body", CSV_BODY[:half], length, {}, "close"),
        ("no final chunk", b"%x\r\n%s\r\n" % (half, CSV_BODY[:half]),
         {"Transfer-Encoding": "chunked"}, {}, "shutdown"),
        ("lz4 frame ends early", lz4_body[: len(lz4_body) // 2],
         {"Content-Encoding": "lz4", "Content-Length": str(len(lz4_body) // 2)}, {}, "shutdown"),
        ("gzip ends early", gz_body[: len(gz_body) // 2],
         {"Content-Encoding": "gzip", "Content-Length": str(len(gz_body) // 2)}, {}, "shutdown"),
        ("ClickHouse block ends early", native[:-100],
         {"Content-Length": str(len(native) - 100)}, {"decompress": "1"}, "shutdown"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "headers", "params", "cut"),
    [case[1:] for case in _truncations()],
    ids=[case[0] for case in _truncations()],
)
def test_a_truncated_insert_body_is_refused_and_stores_nothing(
    clickhouse_endpoint: ClickHouseEndpoint,
    readings: Client,
    body: bytes,
    headers: dict[str, str],
    params: dict[str, str],
    cut: str,
) -> None:
    readings.command("CREATE TABLE kv (a UInt64, b String) ENGINE = MergeTree ORDER BY a")
    query = {"query": "INSERT INTO kv FORMAT CSV", "database": readings.database, **params}
    answer = raw_post(clickhouse_endpoint, query, body, headers, cut)
    if cut == "shutdown":
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        assert b"X-ClickHouse-Exception-Code: 33" in answer
        assert b"Code: 33. DB::Exception: Cannot read all data" in answer
    time.sleep(0.5)  # a dropped connection: give the server time to have stored, if it would
    assert readings.command("SELECT count() FROM kv") == 0
    # the whole body, once, is stored whole
    status, _, _ = raw(
        clickhouse_endpoint,
        CSV_BODY,
        **{"database": readings.database, "query": "INSERT INTO kv FORMAT CSV"},
    )
    assert status == 200
    assert readings.command("SELECT count() FROM kv") == CSV_ROWS


@pytest.mark.parametrize("encoding", ["lz4", "gzip", "zstd", "clickhouse"])
def test_a_corrupt_compressed_body_gets_a_4xx_in_clickhouse_shape(
    clickhouse_endpoint: ClickHouseEndpoint, readings: Client, encoding: str
) -> None:
    readings.command("CREATE TABLE kv (a UInt64, b String) ENGINE = MergeTree ORDER BY a")
    query = {"query": "INSERT INTO kv FORMAT CSV", "database": readings.database}
    headers: dict[str, str] = {}
    if encoding == "clickhouse":
        packed, query["decompress"] = compress_block(CSV_BODY), "1"
    else:
        packed = {"lz4": lz4.frame.compress, "gzip": gzip.compress, "zstd": zstd.compress}[
            encoding
        ](CSV_BODY)
        headers["Content-Encoding"] = encoding
    middle = len(packed) // 2
    corrupt = packed[:middle] + bytes(b ^ 0xA5 for b in packed[middle : middle + 64])
    corrupt += packed[middle + 64 :]
    status, answer_headers, body = raw(clickhouse_endpoint, corrupt, headers, **query)
    assert 400 <= status < 500, body[:300]
    assert body.startswith(b"Code: ") and b"DB::Exception:" in body and b"Traceback" not in body
    assert answer_headers["X-ClickHouse-Exception-Code"] == body.split(b".")[0][6:].decode()
    assert readings.command("SELECT count() FROM kv") == 0
