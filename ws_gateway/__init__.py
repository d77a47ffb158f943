"""fleetpulse websocket gateway: geo-filtered live truck positions and alerts for map clients.

Every exception this package raises on purpose derives from :class:`GatewayError`; the ones a
client can cause carry a protocol error ``code`` so the server can answer with an error frame
and keep the connection.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of the gateway's exceptions."""


class ClientError(GatewayError):
    """Bad client input (malformed JSON, bad filter, unknown op): answered with an error frame.

    ``code`` is the protocol error code (``BAD_FILTER``, ``BAD_REQUEST`` ...).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AuthError(GatewayError):
    """A token is missing, malformed, forged or expired."""
