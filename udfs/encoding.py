"""Encoded JSON that stays in memory."""

from __future__ import annotations


def kept(encoded: bytes) -> bytes:
    """An exact-size copy of ``encoded``, for bytes that stay in memory.

    orjson writes into a buffer of about 4 KiB and shrinks it in place; the rest of the block
    stays unusable for the next (again 4 KiB) encoding, so every orjson result kept alive pins
    ~4 KiB of heap (measured: 100,000 kept 142-byte results, 393 MiB of RSS; exact copies,
    17 MiB). Used for the gateway's replay history and subscription ids and the dispatcher's
    queued deliveries.
    """
    return bytes(memoryview(encoded))
