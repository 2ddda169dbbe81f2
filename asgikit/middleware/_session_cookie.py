"""The session cookie's codec: JSON payloads signed with HMAC-SHA256 and a timestamp."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

SecretKey = str | bytes | Sequence[str | bytes]


class Signer:
    """HMAC-SHA256 signatures with a timestamp: ``payload.timestamp.signature``, base64url.

    ``salt`` separates uses of one secret: a value signed for one salt never
    verifies for another.  The first of several keys signs; all verify.
    """

    __slots__ = ("_keys",)

    def __init__(self, secret_key: SecretKey, *, salt: bytes) -> None:
        keys = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
        if not keys or not all(isinstance(k, (str, bytes)) and k for k in keys):
            raise ValueError("secret_key must be a non-empty str or bytes, or a list of them")
        # One derived key per purpose, so the raw secret signs nothing directly.
        self._keys = [
            hmac.new(k.encode("utf-8") if isinstance(k, str) else k, salt, hashlib.sha256).digest()
            for k in keys
        ]

    def sign(self, payload: bytes, *, timestamp: int | None = None) -> str:
        """``payload`` signed with the first key, stamped with ``timestamp`` (default: now)."""
        stamp = int(time.time()) if timestamp is None else timestamp
        body = f"{b64encode(payload)}.{stamp}"
        digest = hmac.new(self._keys[0], body.encode("ascii"), hashlib.sha256).digest()
        return f"{body}.{b64encode(digest)}"

    def unsign(self, token: str, *, max_age: int | None) -> bytes | None:
        """The payload of a valid ``token`` not older than ``max_age`` seconds, else ``None``."""
        body, dot, signature = token.rpartition(".")
        if not dot:
            return None
        try:
            body_bytes = body.encode("ascii")
            expected = b64decode(signature)
        except ValueError:  # non-ASCII text, bad base64
            return None
        if not any(
            hmac.compare_digest(hmac.new(key, body_bytes, hashlib.sha256).digest(), expected)
            for key in self._keys
        ):
            return None
        encoded, dot, stamp = body.rpartition(".")
        if not dot or not stamp.isdigit():
            return None
        if max_age is not None and time.time() - int(stamp) > max_age:
            return None
        try:
            return b64decode(encoded)
        except ValueError:
            return None


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_session(session: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(session, separators=(",", ":"), ensure_ascii=False)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate has no UTF-8 form; escaped it is the same JSON.
            return json.dumps(session, separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"session values must be JSON-serializable: {exc}") from exc


def decode_session(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = ["SecretKey", "Signer", "b64decode", "b64encode", "decode_session", "encode_session"]
