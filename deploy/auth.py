"""HMAC request signing shared by the CD notifier and the Pi's webhook.

The signature covers ``"<timestamp>.<raw body>"`` so neither the payload nor the time can be
changed without the secret, and a captured request stops working after the replay window.
One module signs and verifies, so CD and the deployer cannot drift apart.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

TIMESTAMP_HEADER = "X-Candlecast-Timestamp"
SIGNATURE_HEADER = "X-Candlecast-Signature"
SIGNATURE_PREFIX = "sha256="
#: A request older than this is a replay.
MAX_AGE_SECONDS = 300
#: Clock skew tolerated for timestamps ahead of ours (a future timestamp would otherwise
#: extend the replay window).
MAX_FUTURE_SECONDS = 60


class AuthError(Exception):
    """The request is not authentic; the message is for the server log, never the client."""


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Return the ``X-Candlecast-Signature`` value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_headers(secret: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    """Headers that authenticate ``body``, timestamped now."""
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def _parse_timestamp(value: str | None) -> int:
    if not value or not value.isascii() or not value.isdigit() or len(value) > 12:
        raise AuthError("missing or malformed timestamp header")
    return int(value)


def verify(
    secret: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float | None = None,
) -> int:
    """Check a request's signature and freshness; return its timestamp or raise AuthError."""
    timestamp = _parse_timestamp(timestamp_header)
    current = time.time() if now is None else now
    if timestamp < current - MAX_AGE_SECONDS:
        raise AuthError(f"timestamp {timestamp} is older than {MAX_AGE_SECONDS} s (replay)")
    if timestamp > current + MAX_FUTURE_SECONDS:
        raise AuthError(f"timestamp {timestamp} is more than {MAX_FUTURE_SECONDS} s ahead")
    if not signature_header or not signature_header.isascii():
        raise AuthError("missing or malformed signature header")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode("ascii"), signature_header.encode("ascii")):
        raise AuthError("signature mismatch")
    return timestamp


class ReplayGuard:
    """Remembers signatures seen inside the window so a captured request works at most once."""

    def __init__(self, window_seconds: int = MAX_AGE_SECONDS + MAX_FUTURE_SECONDS) -> None:
        self._window = window_seconds
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def check_and_remember(self, signature: str, now: float | None = None) -> None:
        """Raise AuthError when ``signature`` was already accepted within the window."""
        current = time.time() if now is None else now
        with self._lock:
            self._seen = {s: t for s, t in self._seen.items() if t > current - self._window}
            if signature in self._seen:
                raise AuthError("signature already used (replay)")
            self._seen[signature] = current
