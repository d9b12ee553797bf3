"""The ClickHouse HTTP interface's conventions, as pure functions.

What `deploy/chserver.py` needs to speak to ClickHouse clients: which URL parameters are
settings, how errors look and map to HTTP statuses, where an insert's data starts, how a
request body is framed, credentials. Nothing here touches the engine or a socket
(compression is in `deploy/chcompress.py`, the Native format in `deploy/chnative.py`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY
from io import BufferedIOBase
from urllib.parse import parse_qsl

Headers = Mapping[str, str] | Message  # the request's headers; unit tests pass a dict

# URL parameters the HTTP layer consumes; every other one is a setting for the engine.
# The transport-only settings among them change nothing in an in-process engine.
CONTROL_PARAMS = frozenset(
    {
        "query", "database", "user", "password", "default_format", "query_id", "session_id",
        "session_timeout", "session_check", "compress", "decompress", "quota_key",
        "enable_http_compression", "http_zlib_compression_level", "wait_end_of_query",
        "buffer_size", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close", "client_protocol_version", "stacktrace",
        "role", "http_response_buffer_size", "default_session_timeout",
    }
)  # fmt: skip
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# chDB's Python layer turns these "formats" into Python objects; they are no wire format.
PYTHON_ONLY_FORMATS = frozenset({"dataframe", "arrowtable", "datastore", "debug"})
MULTI_STATEMENTS = "Syntax error (Multi-statements are not allowed)"
GET_IS_READONLY = (
    "Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
    "readonly. You should use method POST for modifying queries"
)

# ClickHouse's exceptionCodeToHTTPStatus, keyed by the error name the engine prints.
_STATUS_BY_ERROR = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED"), 403),
    **dict.fromkeys(
        "BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE "
        "CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER "
        "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6 "
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN ILLEGAL_COLUMN "
        "UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST "
        "TOO_BIG_AST UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH "
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE CANNOT_READ_ALL_DATA".split(),
        400,
    ),
    **dict.fromkeys(
        "UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE "
        "UNKNOWN_DATABASE UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION "
        "UNKNOWN_FORMAT UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE".split(),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "TIMEOUT_EXCEEDED": 408,
}
_ERROR = re.compile(r"Code: (\d+)\. (.*)", re.S)
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\s*$")

# An INSERT whose data follows: `INSERT INTO t (a, b) FORMAT Native`, or a body that
# starts with it (data after the FORMAT name and one line break, as ClickHouse parses it).
_URL_INSERT = re.compile(r"\s*(INSERT\s.*)\s+FORMAT\s+(\w+)\s*;?\s*", re.I | re.S)
_URL_INSERT_VALUES = re.compile(r"\s*(INSERT\s.*?)\s+VALUES\s*", re.I | re.S)
_BODY_INSERT = re.compile(r"\s*(INSERT\s.*?)\s+FORMAT\s+(\w+)[ \t]*(?:\r?\n)?", re.I | re.S)
_VALUES = re.compile(r"\bVALUES\b", re.I)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)


@dataclass
class ChError(Exception):
    """An error as ClickHouse reports it: numeric code, name, and the full message."""

    code: int
    name: str
    message: str
    http_status: int | None = None  # when this server's answer differs from the table

    @classmethod
    def from_engine(cls, exc: BaseException) -> ChError:
        text = str(exc)
        m = _ERROR.search(text)
        if m is None:
            return ch_error(1001, "STD_EXCEPTION", text)
        name = _ERROR_NAME.search(m.group(2))
        return cls(int(m.group(1)), name.group(1) if name else "", m.group(0).strip())

    @property
    def status(self) -> int:
        return self.http_status or _STATUS_BY_ERROR.get(self.name, 500)

    def body(self, version: str) -> bytes:
        text = (
            self.message if "(version " in self.message else f"{self.message} (version {version})"
        )
        return f"{text}\n".encode()


def ch_error(code: int, name: str, text: str) -> ChError:
    return ChError(code, name, f"Code: {code}. DB::Exception: {text}. ({name})")


def auth_failed(user: str) -> ChError:
    text = "Authentication failed: password is incorrect, or there is no user with such name"
    return ch_error(516, "AUTHENTICATION_FAILED", f"{user}: {text}")


@dataclass
class RequestParams:
    """A request's URL parameters sorted into what the HTTP layer and the engine need."""

    control: dict[str, str]
    settings: dict[str, str]
    query_params: dict[str, str]
    query: bytes = b""  # the `query` parameter: ClickHouse takes any bytes as query text

    def update(self, other: RequestParams) -> None:
        self.control.update(other.control)
        self.settings.update(other.settings)
        self.query_params.update(other.query_params)
        self.query = other.query or self.query


def url_pairs(query_string: str) -> list[tuple[str, bytes]]:
    """A URL's parameters with their values as the bytes the client percent-encoded."""
    # latin-1 maps each byte to one character, so nothing is lost on the way back to bytes.
    pairs = parse_qsl(query_string, keep_blank_values=True, encoding="latin-1")
    return [(key, value.encode("latin-1")) for key, value in pairs]


def split_params(pairs: Iterable[tuple[str, bytes]]) -> RequestParams:
    out = RequestParams({}, {}, {})
    for key, value in pairs:
        if key.startswith("param_"):
            # ClickHouse parses a parameter from its escaped text form, so a byte that is not
            # UTF-8 can travel to the engine as the escape sequence `\xNN` for that byte.
            out.query_params[key[6:]] = value.decode("utf-8", "backslashreplace")
        elif key == "query":
            out.query = value
        elif key in CONTROL_PARAMS:
            out.control[key] = value.decode("utf-8", "replace")
        elif _SETTING_NAME.fullmatch(key):
            out.settings[key] = value.decode("utf-8", "replace")
        else:
            raise ch_error(115, "UNKNOWN_SETTING", f"Unknown setting '{key}'")
    return out


def quote_string(value: str) -> str:
    """A ClickHouse string literal: the value can never end the literal early."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def set_statement(settings: Mapping[str, str]) -> str | None:
    # Values go in as string literals: ClickHouse converts them to the setting's type,
    # exactly as it does for settings given in a URL.
    if not settings:
        return None
    return "SET " + ", ".join(f"{k} = {quote_string(v)}" for k, v in settings.items())


def url_insert(raw: bytes) -> tuple[str, str] | None:
    """`INSERT … FORMAT F` (or `… VALUES`) in the URL: (statement, F) when the body is data."""
    query = raw.decode("utf-8", "replace")
    if m := _URL_INSERT.fullmatch(query):
        return m.group(1), m.group(2)
    if m := _URL_INSERT_VALUES.fullmatch(query):
        return m.group(1), "Values"
    return None


def body_insert(head: bytes) -> tuple[str, str, int] | None:
    """A body starting `INSERT … FORMAT F`: (statement, F, offset of the data)."""
    # latin-1 maps bytes to characters one to one, so offsets are byte offsets.
    m = _BODY_INSERT.match(head.decode("latin-1"))
    if m is None or _VALUES.search(m.group(1)):
        return None
    return m.group(1).encode("latin-1").decode(), m.group(2), m.end()


def output_format(query: bytes, default: str) -> str:
    m = _TRAILING_FORMAT.search(query[-4096:].decode("latin-1"))
    return m.group(1) if m else default


def credentials(headers: Headers, control: Mapping[str, str]) -> tuple[str, str]:
    if "X-ClickHouse-User" in headers:
        return headers["X-ClickHouse-User"], headers.get("X-ClickHouse-Key", "")
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        return user, password
    return control.get("user", "default"), control.get("password", "")


def content_type(fmt: str) -> str:
    f = fmt.lower()
    if f.startswith("json"):
        return "application/json; charset=UTF-8"
    if f.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if f.startswith(("pretty", "vertical", "values", "markdown", "xml")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


class BodyError(Exception):
    """The request body is cut short or badly framed; the engine must see none of it."""


def read_body(rfile: BufferedIOBase, headers: Headers, size: int = 1 << 20) -> Iterator[bytes]:
    """The raw request body, by Content-Length or chunked transfer encoding.

    A body that ends early (connection cut mid-body, fewer bytes than Content-Length, no
    final chunk) raises BodyError, so the insert it carries is never committed.
    """
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        yield from _read_chunked(rfile)
        return
    remaining = int(headers.get("Content-Length") or 0)
    while remaining > 0:
        chunk = rfile.read(min(size, remaining))
        if not chunk:
            raise BodyError(f"connection closed with {remaining} bytes of the body unsent")
        remaining -= len(chunk)
        yield chunk


def _read_chunked(rfile: BufferedIOBase) -> Iterator[bytes]:
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise BodyError("connection closed inside a chunk header")
        try:
            length = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise BodyError(f"bad chunk size line {line[:40]!r}") from None
        if length == 0:
            while (trailer := rfile.readline(65536)) not in (b"\r\n", b"\n"):
                if not trailer:
                    raise BodyError("connection closed inside the trailers")
            return
        data = rfile.read(length)
        if len(data) < length or rfile.readline(2) not in (b"\r\n", b"\n"):
            raise BodyError("connection closed inside a chunk")
        yield data


def parse_multipart(body: bytes, content_type_header: str) -> list[tuple[str, bytes]]:
    """Form fields of a multipart request (clickhouse-connect sends long params that way)."""
    head = f"Content-Type: {content_type_header}\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP_POLICY).parsebytes(head + body)
    fields: list[tuple[str, bytes]] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_filename():
            raise ch_error(48, "NOT_IMPLEMENTED", "External data tables are not supported")
        payload = part.get_payload(decode=True)
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and isinstance(payload, bytes):
            fields.append((name, payload))
    return fields


# Where a statement starts, after blanks and comments: which kind of statement it is.
_LEAD = r"(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/)*"
_RESULT_STREAMED = re.compile(_LEAD + r"(?:\(|SELECT\b|WITH\b|FROM\b)", re.I | re.S)
_SET = re.compile(_LEAD + r"SET\b(?!\s+ROLE\b)", re.I | re.S)
_USE = re.compile(_LEAD + r"USE\b", re.I | re.S)


def statement_kind(query: bytes) -> str:
    """ "select" (its result can be streamed), "set", "use" or "other"."""
    head = query[:4096].decode("latin-1")
    for kind, pattern in (("select", _RESULT_STREAMED), ("set", _SET), ("use", _USE)):
        if pattern.match(head):
            return kind
    return "other"


def strip_format(query: bytes) -> bytes:
    """The query without its trailing `FORMAT x` (to DESCRIBE it)."""
    text = query.decode("latin-1")
    m = _TRAILING_FORMAT.search(text)
    return (text[: m.start()] if m else text).rstrip().rstrip(";").encode("latin-1")
