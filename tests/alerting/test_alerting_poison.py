"""Every poison record (tests/poison_corpus.py) becomes one bounded dead letter with the reason
the dispatcher gives it, its Kafka key kept, and the source topic as the dead letter's key
(issue 27); valid-looking alerts that could not be stored are rejected at decoding."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import orjson
import pytest
from alert_poison_reasons import EXPECTED_REASON, original_key
from alerting_receiver import alert_doc
from click.testing import CliRunner
from poison_corpus import poison_records

from alerting.cli import alerts
from alerting.dead_letters import dlq_record
from alerting.engine import EngineState, Notification
from alerting.kafka_io import InRecord
from alerting.records import Alert, decode
from alerting.store import Store
from udfs.models import (
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTER_RAW_BYTES,
    Rejection,
)

pytestmark = pytest.mark.unit

TOPIC = "fleet.alerts"
CORPUS = poison_records()


def test_every_corpus_record_has_an_expected_reason() -> None:
    assert sorted(EXPECTED_REASON) == sorted(name for name, _, _ in CORPUS)


@pytest.mark.parametrize(("name", "key", "value"), CORPUS, ids=[n for n, _, _ in CORPUS])
def test_poison_record_becomes_one_bounded_dead_letter(
    name: str, key: bytes | None, value: bytes
) -> None:
    result = decode(value, record_ts_ms=1)
    assert isinstance(result, Rejection), name
    assert result.reason == EXPECTED_REASON[name]
    assert 0 < len(result.detail) <= 300

    rec = InRecord(TOPIC, 1, 1234, 1, value, key)
    dlq_key, dlq_value = dlq_record(rec, result, 99)
    assert dlq_key == TOPIC.encode()
    assert len(dlq_value) < DEAD_LETTER_MAX_BYTES
    d = orjson.loads(dlq_value)
    assert (d["source_topic"], d["partition"], d["offset"], d["reason"], d["ts"]) == (
        TOPIC,
        1,
        1234,
        EXPECTED_REASON[name],
        99,
    )
    assert d["raw_size"] == len(value)
    assert d["raw_sha256"] == hashlib.sha256(value).hexdigest()
    assert d["raw_truncated"] is (len(value) > DEAD_LETTER_RAW_BYTES)
    raw = base64.b64decode(d["raw"]) if d["raw_encoding"] == "base64" else d["raw"].encode()
    assert value.startswith(raw)
    if key is not None and len(key) > DEAD_LETTER_KEY_BYTES:
        assert d.get("key_truncated") is True and key.startswith(original_key(d) or b"")
    else:
        assert original_key(d) == key


def test_a_tombstone_is_a_dead_letter_with_an_empty_raw() -> None:
    result = decode(None)
    assert isinstance(result, Rejection) and result.reason == "MISSING_FIELD"
    _, value = dlq_record(InRecord(TOPIC, 0, 5, 0, None, None), result, 1)
    d = orjson.loads(value)
    assert (d["raw"], d["raw_size"], d["key"]) == ("", 0, None)


def test_a_detail_with_a_lone_surrogate_still_encodes() -> None:
    """An internal error's text can hold characters no UTF-8 encoder writes."""
    rejection = Rejection("BAD_VALUE", "internal error: '\ud800'")  # type: ignore[arg-type]
    _, value = dlq_record(InRecord(TOPIC, 0, 5, 0, b"{}", b"k"), rejection, 1)
    assert orjson.loads(value)["detail"] == "internal error: '\\ud800'"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_an_alert_nested_deeper_than_it_can_be_stored_is_rejected() -> None:
    """orjson reads 1024 levels but writes 254: such an alert would fail the service's state
    transaction (the store re-encodes it) instead of its decoding."""
    doc = orjson.dumps(alert_doc(extra="PLACEHOLDER"))
    deep = decode(doc.replace(b'"PLACEHOLDER"', nested(300)))
    assert isinstance(deep, Rejection) and deep.reason == "BAD_VALUE"
    assert "re-encoded" in deep.detail
    assert isinstance(decode(doc.replace(b'"PLACEHOLDER"', nested(200))), Alert)


@pytest.mark.parametrize("field", ["event_action", "dedup_key"])
def test_a_deep_value_in_a_quoted_field_is_described_not_repr_d(field: str) -> None:
    doc = orjson.dumps({**alert_doc(), field: "PLACEHOLDER"})
    result = decode(doc.replace(b'"PLACEHOLDER"', nested(1000)))
    assert isinstance(result, Rejection) and result.reason == "BAD_TYPE"
    assert len(result.detail) < 100


def test_a_long_quoted_value_is_cut_in_the_detail() -> None:
    result = decode(orjson.dumps({**alert_doc(), "event_action": "x" * 100_000}))
    assert isinstance(result, Rejection) and result.reason == "BAD_VALUE"
    assert "100000 characters" in result.detail and len(result.detail) < 200


def test_hostile_text_in_a_valid_alert_is_accepted_and_encodes_again() -> None:
    """Escape sequences and bidi overrides are text to the dispatcher: it delivers them as JSON
    string content, never as terminal or log control."""
    doc = alert_doc(subject="\u202eT1\x1b[2J\u0000")
    a = decode(orjson.dumps(doc))
    assert isinstance(a, Alert) and a.dedup_key == "truck_offline:\u202eT1\x1b[2J\u0000"
    assert Alert.from_dict(orjson.loads(orjson.dumps(a.to_dict()))) == a


def test_replay_list_prints_hostile_dead_letters_escaped(tmp_path: Path) -> None:
    """A dedup key comes from fleet.alerts and an error from a receiver's answer: neither
    reaches the terminal as control characters."""
    store = Store(tmp_path / "state")
    try:
        a = decode(orjson.dumps(alert_doc(subject="\x1b]0;pwned\x07\u202eT1")))
        assert isinstance(a, Alert)
        [item] = store.commit_batch(
            EngineState(), [Notification("hook", a.dedup_key, a.event_action, a.event(), 1)], 1
        )
        store.apply_outcomes([("dead", item, "HTTP 400: \x1b[2J\r\nfake line", 2)])
    finally:
        store.close()
    res = CliRunner().invoke(alerts, ["replay", "--list", "--state-dir", str(tmp_path / "state")])
    assert res.exit_code == 0, res.output
    [line] = res.output.splitlines()
    assert line.replace("\t", " ").isprintable()
    assert "truck_offline:\\x1b]0;pwned\\x07\\u202eT1" in line
    assert line.endswith("HTTP 400: \\x1b[2J\\x0d\\x0afake line")
