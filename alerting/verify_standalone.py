"""Verify a fleetpulse webhook delivery with the Python standard library only: copy this file.

``verify(secret, headers, body)`` for the default ``X-Fleetpulse-*`` headers;
``verify_standard_webhooks(secret, headers, body)`` for a receiver configured with
``signature: standard-webhooks``. ``headers`` is any mapping of the request's headers, ``body``
the raw request body (bytes, before any JSON parsing). Dedupe on the delivery id.
"""

import base64
import hashlib
import hmac
import time


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    h = {k.lower(): v for k, v in headers.items()}
    delivery_id = h.get("x-fleetpulse-delivery-id", "")
    timestamp = h.get("x-fleetpulse-timestamp", "")
    signatures = h.get("x-fleetpulse-signature", "").split(",")
    if not delivery_id or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False  # stale or from the future: a replay?
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    expected = "v2=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s.strip()) for s in signatures)


def verify_standard_webhooks(
    secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300
) -> bool:
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, timestamp = h.get("webhook-id", ""), h.get("webhook-timestamp", "")
    if not msg_id or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(expected, s) for s in h.get("webhook-signature", "").split())
