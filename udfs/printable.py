"""Safe one-line text of values read from Kafka, for commands that print them to a terminal.

A topic carries whatever anyone wrote to it: escape sequences that repaint or retitle the
terminal, bidi overrides that make text read backwards, lone surrogates that make ``print``
raise, megabytes in one field, nesting deep enough for ``repr`` to overflow the stack. What a
command shows of such a value is bounded, on one line, and made of printable characters only.
"""

from __future__ import annotations

from typing import Any

import orjson

DEFAULT_LIMIT = 200


def printable(value: Any, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` as about ``limit`` printable characters (one escape more at most, and a note
    of what was cut).

    Strings keep their printable characters; every other character (controls, format
    characters such as U+202E, line breaks, surrogates) is shown as its Python escape. Bytes
    are shown as text where they are UTF-8, else escaped. Containers are shown as JSON when
    that is possible, else by their type: never by ``repr`` (which recurses).
    """
    text = _as_text(value, limit)
    parts: list[str] = []
    width = 0
    for used, ch in enumerate(text):
        if width >= limit:
            parts.append(f"…(+{len(text) - used} chars)")
            break
        part = ch if ch.isprintable() else _escape(ch)
        parts.append(part)
        width += len(part)
    return "".join(parts)


def _as_text(value: Any, limit: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        head = data[: limit * 4]  # enough bytes for ``limit`` characters of any UTF-8
        text = head.decode("utf-8", errors="backslashreplace")
        return text + ("…" * (len(data) > len(head)))
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # past Python's digit limit for str() of an int
            return f"<int of {value.bit_length()} bits>"
    if isinstance(value, bool | float):
        return str(value)
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return f"<{type(value).__name__}>"


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
