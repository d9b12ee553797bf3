"""Page cursors the service signs (HMAC-SHA256), so it accepts only positions it issued.

A cursor is `base64url(JSON list of values).base64url(MAC)`; the MAC covers the values and
the context the cursor was issued in (route, owner, car). A cursor edited by hand, made up,
or carried to another route, owner or car is refused as 400 before any of its values is
looked at, let alone sent to ClickHouse. The values are still range-checked after that
(`query.params.cursor_position`): a signature says who wrote a cursor, not that the code
that wrote it was right.

The key is `VDP_QUERY_CURSOR_KEY`; empty means one derived from the token key, allowed only
locally, as the development token secret is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from query.problems import bad_request
from vdp.errors import ConfigurationError
from vdp.settings import Settings

_MAC_BYTES = 16  # 128 bits: forging one is out of reach; a cursor stays short in a URL
_DERIVATION = b"vdp owner query service: page cursors"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, context: str, payload: bytes) -> bytes:
        message = context.encode() + b"\0" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, context: str, values: list[Any]) -> str:
        payload = json.dumps(values, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(context, payload))}"

    def open(self, context: str, cursor: str) -> list[Any]:
        """The values of a cursor this service issued in `context`; 400 for any other."""
        refused = bad_request("invalid-cursor", "the cursor is not one this service issued")
        body, _, mac = cursor.partition(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (ValueError, binascii.Error) as e:
            raise refused from e
        if not hmac.compare_digest(given, self._mac(context, payload)):
            raise refused
        try:
            values = json.loads(payload)
        except ValueError as e:  # signed but unreadable: only a bug of ours could do that
            raise refused from e
        if not isinstance(values, list):
            raise refused
        return values


def signer_from_settings(settings: Settings) -> CursorSigner:
    """The signer, after refusing unsafe keys (checked once at start-up, like the token key)."""
    key = settings.query_cursor_key.get_secret_value()
    if not key:
        if settings.query_environment != "local":
            raise ConfigurationError(
                "VDP_QUERY_CURSOR_KEY is empty; production needs a secret of 32+ characters"
            )
        # Local use: derived from the token key, so a second service on the same secret
        # reads this one's cursors and nothing needs configuring.
        token_key = settings.query_jwt_key.get_secret_value().encode()
        return CursorSigner(hmac.new(token_key, _DERIVATION, hashlib.sha256).digest())
    if len(key) < 32:
        raise ConfigurationError("VDP_QUERY_CURSOR_KEY needs 32+ characters")
    return CursorSigner(key.encode())
