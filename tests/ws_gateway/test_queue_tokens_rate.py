"""Coalescing queue, tokens and rate limit (pure)."""

from __future__ import annotations

import pytest

from ws_gateway import AuthError
from ws_gateway.queue import CoalescingQueue, QueueFull
from ws_gateway.ratelimit import TokenBucket
from ws_gateway.tokens import sign_token, verify_token

pytestmark = pytest.mark.unit


def test_latest_position_per_truck_wins_and_keeps_its_turn() -> None:
    q = CoalescingQueue(max_items=10)
    assert q.put(("v", "T1"), b"t1-a", now=0.0) is False
    q.put(("v", "T2"), b"t2-a", now=1.0)
    assert q.put(("v", "T1"), b"t1-b", now=2.0) is True
    q.put(None, b"alert", now=3.0)
    q.put(None, b"alert2", now=3.0)  # None never coalesces
    assert q.coalesced == 1
    assert q.oldest_age(now=5.0) == 5.0  # T1 has waited since 0.0, though its data is newer
    assert q.pop_batch(10) == [b"t1-b", b"t2-a", b"alert", b"alert2"]
    assert len(q) == 0 and q.oldest_age(9.0) == 0.0


def test_bounded_by_distinct_keys() -> None:
    q = CoalescingQueue(max_items=2)
    q.put("a", b"1", 0)
    q.put("b", b"2", 0)
    q.put("a", b"3", 0)  # replacing is always possible
    with pytest.raises(QueueFull):
        q.put("c", b"4", 0)
    assert q.drop_where(lambda k: k == "a") == 1
    q.put("c", b"4", 0)
    assert q.pop_batch(1) == [b"2"] and q.drop_all() == 1


def test_token_round_trip_and_rejections() -> None:
    tok = sign_token("s3cret", "alice", ["WEST", "SOUTH"], expires_s=1000)
    g = verify_token("s3cret", tok, now_s=999)
    assert g.subject == "alice" and g.regions == {"WEST", "SOUTH"} and not g.everything
    assert verify_token("k", sign_token("k", "ops", ["*"], 10), 5).everything
    with pytest.raises(AuthError, match="expired"):
        verify_token("s3cret", tok, now_s=1000)
    with pytest.raises(AuthError, match="signature"):
        verify_token("other", tok, now_s=0)
    payload, mac = tok.split(".")
    forged = sign_token("x", "alice", ["*"], 1000).split(".")[0] + "." + mac
    with pytest.raises(AuthError, match="signature"):
        verify_token("s3cret", forged, now_s=0)
    for junk in ("", "abc", "a.b.c", "!!.??", payload + ".", "." + mac):
        with pytest.raises(AuthError):
            verify_token("s3cret", junk, now_s=0)


def test_token_bucket() -> None:
    b = TokenBucket(rate_per_s=2, burst=3, now=0.0)
    assert [b.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.allow(0.5) is True and b.allow(0.5) is False
    assert b.allow(100.0) and b.allow(100.0) and b.allow(100.0) and not b.allow(100.0)


def test_wire_frames_are_what_websockets_would_send() -> None:
    """The flush pass writes frames built by frames.wire_text: byte for byte websockets' own
    unmasked text frames, for every length encoding."""
    from websockets.frames import Frame, Opcode

    from ws_gateway.frames import wire_text

    def theirs(p: bytes) -> bytes:
        return Frame(Opcode.TEXT, p).serialize(mask=False, extensions=[])

    payloads = [b"x" * n for n in (0, 1, 125, 126, 4095, 4096, 65535, 65536, 70_000)]
    for p in payloads:
        assert wire_text([p]) == theirs(p)
    assert wire_text(payloads) == b"".join(theirs(p) for p in payloads)
