"""HMAC-SHA256 signatures of webhook bodies (pure), Stripe-style, so receivers can verify origin
and reject replays.

Headers sent: ``X-Fleetpulse-Timestamp: <unix seconds>`` and
``X-Fleetpulse-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``.
A receiver recomputes the HMAC over the raw body, compares in constant time, and rejects a
timestamp older than its tolerance (default 300 s). Deliveries also carry
``X-Fleetpulse-Delivery-Id`` (stable across retries) for idempotent consumers.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Fleetpulse-Timestamp"
SIGNATURE_HEADER = "X-Fleetpulse-Signature"
DELIVERY_ID_HEADER = "X-Fleetpulse-Delivery-Id"
DEFAULT_TOLERANCE_S = 300


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signature_headers(secret: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp_s), SIGNATURE_HEADER: sign(secret, timestamp_s, body)}


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now_s: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> tuple[bool, str]:
    """(ok, reason). Rejects missing headers, bad signatures and stale or future timestamps."""
    if not timestamp or not signature:
        return False, "missing signature headers"
    try:
        ts = int(timestamp)
    except ValueError:
        return False, "bad timestamp"
    if abs(now_s - ts) > tolerance_s:
        return False, "timestamp outside tolerance (replay?)"
    expected = sign(secret, ts, body)
    for candidate in signature.split(","):
        if hmac.compare_digest(candidate.strip(), expected):
            return True, ""
    return False, "signature mismatch"
