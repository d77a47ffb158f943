"""What the readers of ``fleet.alerts`` (the dispatcher and the gateway) make of each record of
tests/poison_corpus.py: the reason code of its dead letter (the dispatcher) or of the malformed
count (the gateway), and the original Kafka key read back from a dead letter."""

from __future__ import annotations

import base64
from typing import Any

# Over 512 KiB is TOO_LARGE before parsing; what orjson refuses (NaN, 1e400, bad UTF-8, a BOM,
# over 1024 levels) is MALFORMED_JSON; JSON that is not an object, or an event_action that is
# not a string, is BAD_TYPE; an object without event_action is MISSING_FIELD.
EXPECTED_REASON = {
    "huge_json_string": "TOO_LARGE",
    "huge_random_bytes": "TOO_LARGE",
    "deep_objects": "TOO_LARGE",
    **dict.fromkeys(
        [
            "empty_value",
            "control_bytes",
            "nul_bytes",
            "binary_random",
            "invalid_utf8_in_json",
            "overlong_utf8",
            "utf8_bom",
            "raw_control_in_string",
            "ansi_escape_text",
            "trailing_garbage",
            "truncated_json",
            "deep_arrays",
            "nan_literal",
            "infinity_literals",
            "number_1e400",
            "int_400_digits",
            "id_lone_high_surrogate",
            "id_lone_low_surrogate",
        ],
        "MALFORMED_JSON",
    ),
    **dict.fromkeys(
        [
            "json_array",
            "json_string",
            "json_number",
            "json_null",
            "json_true",
            "key_hostile_unicode",
            "deep_values",
        ],
        "BAD_TYPE",
    ),
    **dict.fromkeys(
        [
            "int_2_63_minus_1",
            "int_2_63",
            "int_2_64",
            "int_minus_2_63_minus_1",
            "id_rtl_override",
            "id_zero_width",
            "id_10000_chars",
            "id_escaped_nul_and_ansi",
            "id_300kb_multibyte",
            "id_combining_marks",
            "id_not_a_string",
            "key_100000_bytes",
            "key_binary",
        ],
        "MISSING_FIELD",
    ),
}


def original_key(d: dict[str, Any]) -> bytes | None:
    """The Kafka key a dead letter carries (its first 64 KiB), as bytes again."""
    key = d["key"]
    if key is None:
        return None
    assert isinstance(key, str)
    return base64.b64decode(key) if d.get("key_encoding") == "base64" else key.encode()
