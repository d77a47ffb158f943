"""``fleetpulse dlq`` and the text it prints survive any record (issue 27): the dead-letter topic
quotes hostile input by design and anyone can write to it, so every line printed is one line of
printable characters, bounded, whatever the record's bytes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from poison_corpus import poison_records

from fleetpulse.commands import dlq
from fleetpulse.dlq_view import describe_dead_letter
from udfs.models import DeadLetter
from udfs.printable import printable

pytestmark = pytest.mark.unit

CORPUS = poison_records()
MAX_LINE = 1200  # every field of a line is bounded (fleetpulse.dlq_view)


def safe_line(line: str) -> bool:
    return "\n" not in line and line.isprintable() and len(line) <= MAX_LINE


def dead_letters() -> list[bytes]:
    """Real dead letters of the corpus records, as a reader writes them."""
    return [
        DeadLetter(
            "fleet.alerts", 1, i, "MALFORMED_JSON", f"bad {name}\x1b[2J\u202e", value, 1, key=key
        ).to_json()
        for i, (name, key, value) in enumerate(CORPUS)
    ]


def hostile_dead_letters() -> list[bytes]:
    """Shaped like dead letters, with fields no reader writes."""
    deep = b"[" * 1000 + b"]" * 1000
    return [
        b'{"source_topic":' + deep + b',"detail":' + deep + b',"reason":{"a":1}}',
        orjson.dumps(
            {
                "source_topic": "\x1b]0;pwned\x07",
                "partition": -1,
                "offset": 2**64 - 1,
                "reason": "X" * 100_000,
                "detail": "\u202e\u0000" * 50_000,
                "key": "\r\n",
                "raw_size": "many",
                "raw_truncated": "yes",
            }
        ),
        b'{"detail":"\\ud800"}',  # refused by orjson: shown as unreadable
    ]


@pytest.mark.parametrize(
    "value",
    [v for _, _, v in CORPUS] + dead_letters() + hostile_dead_letters() + [None],
    ids=[n for n, _, _ in CORPUS]
    + [f"dl_{n}" for n, _, _ in CORPUS]
    + ["hostile_deep", "hostile_text", "hostile_surrogate", "tombstone"],
)
def test_every_record_is_one_safe_line(value: bytes | None) -> None:
    assert safe_line(describe_dead_letter(value, 0, 7))


def test_a_dead_letter_line_names_its_origin_reason_and_key() -> None:
    line = describe_dead_letter(dead_letters()[1], 0, 1)
    assert line.startswith(
        "fleet.alerts[1]@1 MALFORMED_JSON: bad huge_random_bytes\\x1b[2J"
        "\\u202e (key poison-huge_random_bytes, 999000 bytes, raw truncated)"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        ("\x1b[31mred\r\n", "\\x1b[31mred\\x0d\\x0a"),
        ("\u202eT1\u200b", "\\u202eT1\\u200b"),
        ("\ud800", "\\ud800"),
        ("\U000e0001", "\\U000e0001"),
        (b"\xff\x00ok", "\\xff\\x00ok"),
        (None, "null"),
        (10**5000, "<int of 16610 bits>"),
        ({"a": [1]}, '{"a":[1]}'),
        ({1: 2}, "<dict>"),
    ],
    ids=[
        "plain",
        "ansi",
        "bidi",
        "surrogate",
        "tag_char",
        "bytes",
        "none",
        "huge_int",
        "json",
        "unencodable",
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(value: Any, shown: str) -> None:
    assert printable(value) == shown


def test_printable_bounds_what_it_shows() -> None:
    assert printable("x" * 1000, limit=10) == "x" * 10 + "…(+990 chars)"
    assert len(printable(b"\xff" * 1_000_000, limit=50)) < 100
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert printable(deep) == "<list>"


@dataclass
class FakeRecord:
    partition: int
    offset: int
    value: bytes | None


class FakeConsumer:
    """kafka-python's consumer as ``fleetpulse dlq`` uses it: iterated, then closed."""

    records: list[FakeRecord] = []

    def __init__(self, *topics: str, **config: Any) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[FakeRecord]:
        return iter(self.records)

    def close(self) -> None:
        self.closed = True


def test_the_dlq_command_prints_one_safe_line_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    values = [v for _, _, v in CORPUS] + dead_letters() + hostile_dead_letters() + [None]
    FakeConsumer.records = [FakeRecord(0, i, v) for i, v in enumerate(values)]
    monkeypatch.setattr(kafka, "KafkaConsumer", FakeConsumer)
    res = CliRunner().invoke(dlq, ["--bootstrap", "127.0.0.1:1"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) == len(values)
    assert all(safe_line(line) for line in lines)
