"""The embedded ClickHouse server's protocol helpers: pure functions, no socket, no engine."""

from __future__ import annotations

import base64
import gzip
import io
import zlib

import lz4.frame
import pytest

from deploy import chcompress, chprotocol
from deploy.chprotocol import BodyError, ChError


def test_url_params_split_into_control_settings_and_query_params() -> None:
    p = chprotocol.split_params(
        chprotocol.url_pairs(
            "query=SELECT+1&database=vdp&param_vin=X1&max_threads=2&session_id=s"
            "&enable_http_compression=1&async_insert=0"
        )
    )
    assert p.query == b"SELECT 1"
    assert p.control == {"database": "vdp", "session_id": "s", "enable_http_compression": "1"}
    assert p.settings == {"max_threads": "2", "async_insert": "0"}
    assert p.query_params == {"vin": "X1"}


def test_query_text_and_parameters_keep_bytes_that_are_not_utf8() -> None:
    p = chprotocol.split_params(chprotocol.url_pairs("query=SELECT+%27%FF%27&param_b=a%FE%00"))
    assert p.query == b"SELECT '\xff'"
    # ClickHouse reads a parameter in its escaped form, where \xFE is that one byte
    assert p.query_params == {"b": "a\\xfe\x00"}


def test_a_setting_name_that_is_no_identifier_is_refused() -> None:
    with pytest.raises(ChError) as err:
        chprotocol.split_params([("max_threads = 1; DROP TABLE x; --", b"1")])
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
    assert chprotocol.url_insert(b"INSERT INTO t (a, b) FORMAT Native") == (
        "INSERT INTO t (a, b)", "Native"
    )  # fmt: skip
    assert chprotocol.url_insert(b"insert into t settings async_insert=0 format RowBinary ") == (
        "insert into t settings async_insert=0", "RowBinary"
    )  # fmt: skip
    assert chprotocol.url_insert(b"INSERT INTO t VALUES") == ("INSERT INTO t", "Values")
    assert chprotocol.url_insert(b"SELECT 1 FORMAT Native") is None
    head = b"INSERT INTO t\n  (a, b)\nFORMAT Native\n\x00\x01\xff"
    stmt, fmt, offset = chprotocol.body_insert(head) or ("", "", 0)
    assert (stmt, fmt, head[offset:]) == ("INSERT INTO t\n  (a, b)", "Native", b"\x00\x01\xff")
    assert chprotocol.body_insert(b"INSERT INTO t VALUES ('a FORMAT b')") is None
    assert chprotocol.body_insert(b"SELECT 1") is None


def test_output_format_is_the_query_clause_or_the_default() -> None:
    assert chprotocol.output_format(b"SELECT 1 FORMAT JSONEachRow", "TSV") == "JSONEachRow"
    assert chprotocol.output_format(b"SELECT 1 format Parquet;\n", "TSV") == "Parquet"
    assert chprotocol.output_format(b"SELECT 'FORMAT CSV' AS x", "TSV") == "TSV"
    assert chprotocol.strip_format(b"SELECT 1\n FORMAT Native") == b"SELECT 1"


@pytest.mark.parametrize(
    ("query", "kind"),
    [(b"SELECT 1", "select"), (b"-- note\n(SELECT 1) UNION ALL SELECT 2", "select"),
     (b"/* c */ WITH 1 AS x SELECT x", "select"), (b"set max_threads = 1", "set"),
     (b"SET ROLE r", "other"), (b"USE db", "use"), (b"SHOW TABLES", "other"),
     (b"INSERT INTO t SELECT 1", "other")],
)  # fmt: skip
def test_statement_kind_reads_past_comments(query: bytes, kind: str) -> None:
    assert chprotocol.statement_kind(query) == kind


def test_compressed_bodies_of_several_frames_decode_whole() -> None:
    frames = [lz4.frame.compress(b"abc"), lz4.frame.compress(b"def")]
    blob = b"".join(frames)
    pieces = [blob[i : i + 5] for i in range(0, len(blob), 5)]
    assert b"".join(chcompress.decode_stream(pieces, "lz4")) == b"abcdef"
    assert b"".join(chcompress.decode_stream([gzip.compress(b"x") * 2], "gzip")) == b"xx"
    assert b"".join(chcompress.decode_stream([zlib.compress(b"y")], "deflate")) == b"y"
    assert b"".join(chcompress.decode_stream([b"plain"], "")) == b"plain"
    with pytest.raises(ChError):
        list(chcompress.decode_stream([b"?"], "snappy"))


@pytest.mark.parametrize("encoding", ["lz4", "gzip", "zstd", "deflate"])
def test_a_compressed_body_that_ends_early_or_is_corrupt_is_refused(encoding: str) -> None:
    data = b"1,one\n" * 5000
    encoder = chcompress.http_encoder(encoding)
    blob = encoder.compress(data) + encoder.finish()
    assert b"".join(chcompress.decode_stream([blob], encoding)) == data
    with pytest.raises(ChError) as err:
        list(chcompress.decode_stream([blob[: len(blob) // 2]], encoding))
    assert (err.value.name, err.value.status) == ("CANNOT_READ_ALL_DATA", 400)
    corrupt = blob[:12] + bytes(b ^ 0x5A for b in blob[12:40]) + blob[40:]
    with pytest.raises(ChError) as err:
        list(chcompress.decode_stream([corrupt], encoding))
    assert err.value.status == 400 and err.value.message.startswith("Code: ")


def test_response_encoding_follows_the_clients_first_supported_choice() -> None:
    assert chcompress.response_encoding("lz4,zstd,gzip,deflate") == "lz4"
    assert chcompress.response_encoding("br, gzip;q=0.8") == "gzip"
    assert chcompress.response_encoding("identity") is None


def test_clickhouse_block_compression_round_trips_and_checks_its_checksum() -> None:
    data = bytes(range(256)) * 9000  # over one block
    for method in ("lz4", "zstd", "none"):
        blob = chcompress.NativeEncoder(method).compress(data)
        assert (
            b"".join(
                chcompress.decode_native([blob[i : i + 7777] for i in range(0, len(blob), 7777)])
            )
            == data
        )
    blob = chcompress.compress_block(b"hello", "lz4")
    with pytest.raises(ChError) as err:
        list(chcompress.decode_native([blob[:-3]]))
    assert err.value.name == "CANNOT_READ_ALL_DATA"
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(ChError) as err:
        list(chcompress.decode_native([flipped]))
    assert (err.value.name, err.value.status) == ("CHECKSUM_DOESNT_MATCH", 400)
    assert b"".join(chcompress.decode_native([flipped], verify=False)) != b"hello"


def test_chunked_and_sized_bodies_are_read_exactly() -> None:
    chunked = io.BytesIO(b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT")
    assert b"".join(chprotocol.read_body(chunked, {"Transfer-Encoding": "chunked"})) == b"abcde"
    assert chunked.read() == b"NEXT"
    sized = io.BytesIO(b"hello world")
    assert b"".join(chprotocol.read_body(sized, {"Content-Length": "5"}, size=2)) == b"hello"


@pytest.mark.parametrize(
    ("raw", "headers"),
    [(b"hello", {"Content-Length": "9"}),
     (b"3\r\nabc\r\n", {"Transfer-Encoding": "chunked"}),
     (b"5\r\nab", {"Transfer-Encoding": "chunked"}),
     (b"3\r\nabc\r\n0\r\n", {"Transfer-Encoding": "chunked"})],
)  # fmt: skip
def test_a_body_cut_short_raises_instead_of_ending(raw: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(BodyError):
        list(chprotocol.read_body(io.BytesIO(raw), headers))


def test_multipart_form_fields_are_read_and_external_tables_refused() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT {x:UInt8}\r\n'
        b'--B\r\nContent-Disposition: form-data; name="param_x"\r\n\r\n7\r\n--B--\r\n'
    )
    fields = chprotocol.parse_multipart(body, "multipart/form-data; boundary=B")
    assert fields == [("query", b"SELECT {x:UInt8}"), ("param_x", b"7")]
    with_file = body.replace(b'name="param_x"', b'name="t"; filename="t.tsv"')
    with pytest.raises(ChError):
        chprotocol.parse_multipart(with_file, "multipart/form-data; boundary=B")
