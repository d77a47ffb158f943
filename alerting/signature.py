"""HMAC-SHA256 signatures of webhook deliveries (pure), so a receiver can check origin, reject
replays and dedupe, with nothing but the standard library (alerting/verify_standalone.py).

Signed bytes, for both header sets (the Standard Webhooks order)::

    "<delivery id>.<timestamp>." + raw body

where the delivery id is the decimal id sent in ``X-Fleetpulse-Delivery-Id`` (stable across
retries) and the timestamp the unix seconds of this attempt. Header sets (receiver option
``signature``):

- ``fleetpulse`` (default): ``X-Fleetpulse-Delivery-Id``, ``X-Fleetpulse-Timestamp`` and
  ``X-Fleetpulse-Signature: v2=<hex HMAC-SHA256(secret as UTF-8, signed bytes)>``.
- ``standard-webhooks`` (https://www.standardwebhooks.com): ``webhook-id``,
  ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256(key, signed bytes)>``,
  the key being the base64-decoded secret after its ``whsec_`` prefix, as the Standard
  Webhooks libraries expect.

A receiver recomputes the HMAC over the raw body, compares in constant time, rejects a
timestamp more than its tolerance (default 300 s) away, and dedupes on the id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

TIMESTAMP_HEADER = "X-Fleetpulse-Timestamp"
SIGNATURE_HEADER = "X-Fleetpulse-Signature"
DELIVERY_ID_HEADER = "X-Fleetpulse-Delivery-Id"
SW_ID_HEADER = "webhook-id"
SW_TIMESTAMP_HEADER = "webhook-timestamp"
SW_SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE_S = 300
SCHEMES = ("fleetpulse", "standard-webhooks")


def signed_bytes(delivery_id: str | int, timestamp_s: str | int, body: bytes) -> bytes:
    return f"{delivery_id}.{timestamp_s}.".encode() + body


def sign(secret: str, delivery_id: str | int, timestamp_s: int, body: bytes) -> str:
    """The ``X-Fleetpulse-Signature`` value."""
    mac = hmac.new(secret.encode(), signed_bytes(delivery_id, timestamp_s, body), hashlib.sha256)
    return "v2=" + mac.hexdigest()


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_<base64>``); ValueError if it is
    not base64."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a base64 secret (expected whsec_<base64>)") from None
    if not key:
        raise ValueError("empty secret")
    return key


def sign_standard_webhooks(
    secret: str, delivery_id: str | int, timestamp_s: int, body: bytes
) -> str:
    """The ``webhook-signature`` value."""
    key = standard_webhooks_key(secret)
    mac = hmac.new(key, signed_bytes(delivery_id, timestamp_s, body), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signature_headers(
    secret: str, delivery_id: int, timestamp_s: int, body: bytes, scheme: str = "fleetpulse"
) -> dict[str, str]:
    """The headers identifying and signing one attempt, for ``scheme`` (see module doc)."""
    if scheme == "standard-webhooks":
        return {
            SW_ID_HEADER: str(delivery_id),
            SW_TIMESTAMP_HEADER: str(timestamp_s),
            SW_SIGNATURE_HEADER: sign_standard_webhooks(secret, delivery_id, timestamp_s, body),
        }
    return {
        TIMESTAMP_HEADER: str(timestamp_s),
        SIGNATURE_HEADER: sign(secret, delivery_id, timestamp_s, body),
    }


def verify(
    secret: str,
    delivery_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now_s: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> tuple[bool, str]:
    """(ok, reason) for the ``fleetpulse`` headers. Rejects missing headers, bad signatures
    and stale or future timestamps."""
    if not delivery_id or not timestamp or not signature:
        return False, "missing signature headers"
    if not timestamp.isascii() or not timestamp.isdigit():
        return False, "bad timestamp"
    ts = int(timestamp)
    if abs(now_s - ts) > tolerance_s:
        return False, "timestamp outside tolerance (replay?)"
    expected = sign(secret, delivery_id, ts, body)
    for candidate in signature.split(","):
        if hmac.compare_digest(candidate.strip(), expected):
            return True, ""
    return False, "signature mismatch"
