"""The embedded ClickHouse server's protocol helpers: pure functions, no socket, no engine."""

from __future__ import annotations

import base64
import gzip
import io
import zlib

import lz4.frame
import pytest

from deploy import chprotocol
from deploy.chprotocol import ChError


def test_url_params_split_into_control_settings_and_query_params() -> None:
    p = chprotocol.split_params(
        [("query", "SELECT 1"), ("database", "vdp"), ("param_vin", "X1"), ("max_threads", "2"),
         ("session_id", "s"), ("enable_http_compression", "1"), ("async_insert", "0")]
    )  # fmt: skip
    assert p.control == {
        "query": "SELECT 1", "database": "vdp", "session_id": "s", "enable_http_compression": "1"
    }  # fmt: skip
    assert p.settings == {"max_threads": "2", "async_insert": "0"}
    assert p.query_params == {"vin": "X1"}


def test_a_setting_name_that_is_no_identifier_is_refused() -> None:
    with pytest.raises(ChError) as err:
        chprotocol.split_params([("max_threads = 1; DROP TABLE x; --", "1")])
    assert err.value.code == 115 and err.value.status == 404


def test_setting_values_cannot_escape_their_string_literal() -> None:
    stmt = chprotocol.set_statement({"insert_deduplication_token": "a' , readonly = '1\\"})
    assert stmt == "SET insert_deduplication_token = 'a\\' , readonly = \\'1\\\\'"
    assert chprotocol.set_statement({}) is None
    assert chprotocol.quote_identifier("we`ird") == "`we\\`ird`"


@pytest.mark.parametrize(
    ("message", "code", "name", "status"),
    [
        ("Code: 60. DB::Exception: Unknown table expression identifier 'x'. (UNKNOWN_TABLE)",
         60, "UNKNOWN_TABLE", 404),
        ("Code: 62. DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR)",
         62, "SYNTAX_ERROR", 400),
        ("Streaming insert append failed: Code: 33. DB::Exception: Cannot read all data. "
         "(CANNOT_READ_ALL_DATA) (version 26.9.2.1)", 33, "CANNOT_READ_ALL_DATA", 400),
        ("Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)",
         241, "MEMORY_LIMIT_EXCEEDED", 500),
        ("something without a code", 1001, "STD_EXCEPTION", 500),
    ],
)  # fmt: skip
def test_engine_errors_map_to_clickhouse_codes_and_statuses(
    message: str, code: int, name: str, status: int
) -> None:
    err = ChError.from_engine(RuntimeError(message))
    assert (err.code, err.name, err.status) == (code, name, status)
    body = err.body("26.9.2.1").decode()
    assert body.startswith(f"Code: {code}. ") and body.count("(version ") == 1


def test_authentication_failure_reads_like_clickhouse() -> None:
    err = chprotocol.auth_failed("bob")
    assert (err.code, err.status) == (516, 403)
    assert err.message.startswith("Code: 516. DB::Exception: bob: Authentication failed")
    assert err.message.endswith("(AUTHENTICATION_FAILED)")


def test_credentials_come_from_headers_basic_auth_or_params() -> None:
    assert chprotocol.credentials({"X-ClickHouse-User": "u", "X-ClickHouse-Key": "k"}, {}) == (
        "u", "k"
    )  # fmt: skip
    basic = "Basic " + base64.b64encode(b"u:p:with:colons").decode()
    assert chprotocol.credentials({"Authorization": basic}, {}) == ("u", "p:with:colons")
    assert chprotocol.credentials({}, {"user": "u", "password": "p"}) == ("u", "p")
    assert chprotocol.credentials({}, {}) == ("default", "")


def test_insert_routing_finds_statement_and_format() -> None:
    assert chprotocol.url_insert("INSERT INTO t (a, b) FORMAT Native") == (
        "INSERT INTO t (a, b)", "Native"
    )  # fmt: skip
    assert chprotocol.url_insert("insert into t settings async_insert=0 format RowBinary ") == (
        "insert into t settings async_insert=0", "RowBinary"
    )  # fmt: skip
    assert chprotocol.url_insert("INSERT INTO t VALUES") == ("INSERT INTO t", "Values")
    assert chprotocol.url_insert("SELECT 1 FORMAT Native") is None
    head = b"INSERT INTO t\n  (a, b)\nFORMAT Native\n\x00\x01\xff"
    stmt, fmt, offset = chprotocol.body_insert(head) or ("", "", 0)
    assert (stmt, fmt, head[offset:]) == ("INSERT INTO t\n  (a, b)", "Native", b"\x00\x01\xff")
    assert chprotocol.body_insert(b"INSERT INTO t VALUES ('a FORMAT b')") is None
    assert chprotocol.body_insert(b"SELECT 1") is None


def test_output_format_is_the_query_clause_or_the_default() -> None:
    assert chprotocol.output_format("SELECT 1 FORMAT JSONEachRow", "TSV") == "JSONEachRow"
    assert chprotocol.output_format("SELECT 1 format Parquet;\n", "TSV") == "Parquet"
    assert chprotocol.output_format("SELECT 'FORMAT CSV' AS x", "TSV") == "TSV"


def test_compressed_bodies_of_several_frames_decode_whole() -> None:
    frames = [lz4.frame.compress(b"abc"), lz4.frame.compress(b"def")]
    blob = b"".join(frames)
    pieces = [blob[i : i + 5] for i in range(0, len(blob), 5)]
    assert b"".join(chprotocol.decode_stream(pieces, "lz4")) == b"abcdef"
    assert b"".join(chprotocol.decode_stream([gzip.compress(b"x") * 2], "gzip")) == b"xx"
    assert b"".join(chprotocol.decode_stream([zlib.compress(b"y")], "deflate")) == b"y"
    assert b"".join(chprotocol.decode_stream([b"plain"], "")) == b"plain"
    with pytest.raises(ChError):
        list(chprotocol.decode_stream([b"?"], "snappy"))


def test_response_encoding_follows_the_clients_first_supported_choice() -> None:
    assert chprotocol.response_encoding("lz4,zstd,gzip,deflate") == "lz4"
    assert chprotocol.response_encoding("br, gzip;q=0.8") == "gzip"
    assert chprotocol.response_encoding("identity") is None


def test_chunked_and_sized_bodies_are_read_exactly() -> None:
    chunked = io.BytesIO(b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT")
    assert b"".join(chprotocol.read_body(chunked, {"Transfer-Encoding": "chunked"})) == b"abcde"
    assert chunked.read() == b"NEXT"
    sized = io.BytesIO(b"hello world")
    assert b"".join(chprotocol.read_body(sized, {"Content-Length": "5"}, size=2)) == b"hello"


def test_multipart_form_fields_are_read_and_external_tables_refused() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT {x:UInt8}\r\n'
        b'--B\r\nContent-Disposition: form-data; name="param_x"\r\n\r\n7\r\n--B--\r\n'
    )
    fields = chprotocol.parse_multipart(body, "multipart/form-data; boundary=B")
    assert fields == {"query": "SELECT {x:UInt8}", "param_x": "7"}
    with_file = body.replace(b'name="param_x"', b'name="t"; filename="t.tsv"')
    with pytest.raises(ChError):
        chprotocol.parse_multipart(with_file, "multipart/form-data; boundary=B")
