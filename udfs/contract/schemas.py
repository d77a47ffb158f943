"""JSON Schema of every record on the wire, generated from the Structs (docs/schemas).

``python -m udfs.contract --write docs/schemas`` regenerates the committed files, and
tests/unit/test_contract.py fails when they differ from what the code generates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from udfs.contract.records import (
    AlertRecord,
    DeadLetterRecord,
    GeofenceRecord,
    PingRecord,
    ScanSchema,
)
from udfs.contract.websocket import ClientFrame, ServerFrame

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SUFFIX = ".schema.json"

# file stem -> (title, type the schema is generated from)
RECORDS: dict[str, tuple[str, Any]] = {
    "gps-ping": ("GPS ping (fleet.gps)", PingRecord),
    "scan-event": ("Scan event (fleet.scans)", ScanSchema),
    "alert-event": ("Alert event (fleet.alerts)", AlertRecord),
    "geofence-event": ("Geofence transition (fleet.geofence-events)", GeofenceRecord),
    "dead-letter": ("Dead letter (fleet.dlq)", DeadLetterRecord),
    "ws-client-frame": ("Websocket frame, client to gateway", ClientFrame),
    "ws-server-frame": ("Websocket frame, gateway to client", ServerFrame),
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one record of :data:`RECORDS`."""
    title, tp = RECORDS[name]
    return {"$schema": DRAFT, "title": title, **msgspec.json.schema(tp)}


def render(name: str) -> str:
    """A schema file's text: stable, so the committed files can be compared."""
    return json.dumps(json_schema(name), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in RECORDS:
        path = directory / f"{name}{SUFFIX}"
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


def stale_schemas(directory: Path) -> list[str]:
    """Names of the schema files in ``directory`` that are missing or differ from the code."""
    stale = []
    for name in RECORDS:
        path = directory / f"{name}{SUFFIX}"
        if not path.is_file() or path.read_text(encoding="utf-8") != render(name):
            stale.append(path.name)
    return stale
