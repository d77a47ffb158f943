"""HMAC-signed access tokens: who may see which regions, until when.

A token is ``base64url(payload JSON) + "." + base64url(HMAC-SHA256(secret, payload part))``.
The payload holds ``sub`` (a name for logs), ``regions`` (Census region names, or ``["*"]`` for
everything) and ``exp`` (epoch seconds). Stateless on purpose: any gateway process with the
secret verifies a token without a shared store; revocation is by short expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from ws_gateway import AuthError

ALL_REGIONS = "*"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token allows."""

    subject: str
    regions: frozenset[str]
    expires_s: int

    @property
    def everything(self) -> bool:
        return ALL_REGIONS in self.regions


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(secret: str, subject: str, regions: list[str], expires_s: int) -> str:
    """Issue a token for ``regions`` valid until ``expires_s`` (epoch seconds)."""
    if not secret:
        raise AuthError("a token secret is needed to sign tokens")
    payload = _b64(
        orjson.dumps({"sub": subject, "regions": sorted(set(regions)), "exp": int(expires_s)})
    )
    mac = hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify_token(secret: str, token: str, now_s: float) -> Grant:
    """The grant of a genuine, unexpired token; :class:`AuthError` otherwise."""
    if not token or token.count(".") != 1:
        raise AuthError("malformed token")
    payload, mac = token.split(".")
    want = hmac.new(secret.encode(), payload.encode("ascii", "replace"), hashlib.sha256).digest()
    try:
        got = _unb64(mac)
        data = orjson.loads(_unb64(payload))
    except (ValueError, orjson.JSONDecodeError):
        raise AuthError("malformed token") from None
    if not hmac.compare_digest(want, got):
        raise AuthError("bad token signature")
    if not isinstance(data, dict):
        raise AuthError("malformed token")
    regions, exp = data.get("regions"), data.get("exp")
    if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
        raise AuthError("token has no region list")
    if not isinstance(exp, int) or exp <= now_s:
        raise AuthError("token expired")
    return Grant(str(data.get("sub", "")), frozenset(regions), exp)
