"""The Alertmanager-shaped API v2 (issue 30) on a real SQLite store, without HTTP: field names
and states of ``gettableAlert``/``gettableSilence``, filters, silence create/update/expire,
validation errors, and ``/status`` with secrets redacted. amtool itself is exercised against
the running dispatcher in ``test_alerting_amtool.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from test_alerting_am_syntax import CONFIG, alert, seed

from alerting.api import AlertApi
from alerting.config import parse_config
from alerting.store import Store
from alerting.views import fingerprint, parse_iso_ms

pytestmark = pytest.mark.unit

NOW = parse_iso_ms("2026-11-25T21:00:00Z")


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[AlertApi]:
    state = str(tmp_path / "state")
    seed(
        state,
        CONFIG,
        alert("truck_offline", "T5", severity="critical", group="EAST"),
        alert("truck_stopped_unplanned", "T5"),
        alert("shipment_late", "S1"),
    )
    store = Store(state)
    text = CONFIG.replace("secret: s}", 'secret: "hunter2"}')
    a = AlertApi(store, parse_config(text, "am.yaml"), text, NOW - 60_000, clock=lambda: NOW)
    yield a
    store.close()


def get(api: AlertApi, target: str) -> object:
    code, body = api.handle("GET", target)
    assert code == 200, body
    return body


def post(api: AlertApi, doc: object) -> tuple[int, object]:
    return api.handle("POST", "/api/v2/silences", orjson.dumps(doc))


def by_key(alerts: object) -> dict[str, dict[str, object]]:
    assert isinstance(alerts, list)
    return {a["labels"]["dedup_key"]: a for a in alerts}


def test_alerts_are_gettable_alerts_with_state_receivers_and_times(api: AlertApi) -> None:
    got = by_key(get(api, "/api/v2/alerts"))
    assert set(got) == {"truck_offline:T5", "truck_stopped_unplanned:T5", "shipment_late:S1"}
    off = got["truck_offline:T5"]
    assert off["labels"]["alertname"] == "truck_offline"  # type: ignore[index]
    assert off["annotations"] == {"summary": "truck_offline T5"}
    assert off["startsAt"] == "2026-11-25T20:10:00.000Z"
    assert off["fingerprint"] == fingerprint("truck_offline:T5")
    assert off["receivers"] == [{"name": "pager"}]
    assert off["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": [], "mutedBy": []}
    for field in ("updatedAt", "endsAt", "generatorURL"):
        assert field in off
    stopped = got["truck_stopped_unplanned:T5"]["status"]
    assert stopped["state"] == "suppressed"  # type: ignore[index]
    assert stopped["inhibitedBy"] == [fingerprint("truck_offline:T5")]  # type: ignore[index]


def test_alert_filters_like_alertmanager(api: AlertApi) -> None:
    def keys(q: str) -> set[str]:
        return set(by_key(get(api, "/api/v2/alerts" + q)))

    assert keys("?inhibited=false") == {"truck_offline:T5", "shipment_late:S1"}
    assert keys("?active=false") == {"truck_stopped_unplanned:T5"}
    assert keys('?filter=class%3D~"truck_.*"&filter=severity%3D"critical"') == {"truck_offline:T5"}
    assert keys("?receiver=ship.*") == {"shipment_late:S1"}
    assert keys("?receiver=") == keys("")  # amtool sends an empty receiver
    code, body = api.handle("GET", "/api/v2/alerts?filter=nope")
    assert code == 400 and "bad matcher" in str(body)
    code, body = api.handle("GET", "/api/v2/alerts?silenced=maybe")
    assert code == 400 and "silenced" in str(body)


def test_silences_create_apply_update_and_expire(api: AlertApi) -> None:
    doc = {
        "matchers": [
            {"name": "class", "value": "shipment_.*", "isRegex": True, "isEqual": True},
            {"name": "group", "value": "EAST", "isRegex": False, "isEqual": False},
        ],
        "startsAt": "2026-11-25T20:00:00Z",  # in the past: starts now
        "endsAt": "2026-11-25T23:00:00.123456789Z",
        "createdBy": "sre",
        "comment": "maintenance",
    }
    code, body = post(api, doc)
    assert code == 200, body
    sid = body["silenceID"]  # type: ignore[index]
    (s,) = get(api, "/api/v2/silences")  # type: ignore[misc]
    assert s["id"] == sid and s["status"] == {"state": "active"}
    assert s["matchers"] == doc["matchers"] and s["startsAt"] == "2026-11-25T21:00:00.000Z"
    assert s["endsAt"] == "2026-11-25T23:00:00.123Z" and s["createdBy"] == "sre"
    late = by_key(get(api, "/api/v2/alerts"))["shipment_late:S1"]["status"]
    assert late == {"state": "suppressed", "silencedBy": [sid], "inhibitedBy": [], "mutedBy": []}
    assert "shipment_late:S1" not in by_key(get(api, "/api/v2/alerts?silenced=false"))
    # filters on silences: by the labels their matchers name
    assert get(api, "/api/v2/silences?filter=group%3D%22EAST%22") != []
    assert get(api, "/api/v2/silences?filter=group%3D%22WEST%22") == []

    code, body = post(api, {**doc, "id": sid, "comment": "longer"})
    assert code == 200 and body == {"silenceID": sid}
    assert get(api, f"/api/v2/silence/{sid}")["comment"] == "longer"  # type: ignore[index]

    assert api.handle("DELETE", f"/api/v2/silence/{sid}") == (200, None)
    assert get(api, f"/api/v2/silence/{sid}")["status"] == {"state": "expired"}  # type: ignore[index]
    assert by_key(get(api, "/api/v2/alerts"))["shipment_late:S1"]["status"]["state"] == "active"  # type: ignore[index]
    missing = "00000000-0000-0000-0000-000000000000"
    assert api.handle("DELETE", f"/api/v2/silence/{missing}")[0] == 404
    assert post(api, {**doc, "id": missing})[0] == 404


@pytest.mark.parametrize(
    "change,why",
    [
        ({"matchers": []}, "at least one matcher"),
        ({"matchers": [{"name": "a", "value": "(", "isRegex": True}]}, "bad regular expression"),
        ({"matchers": [{"name": "a", "value": ".*", "isRegex": True}]}, "empty string"),
        ({"matchers": [{"name": "a b", "value": "x", "isRegex": False}]}, "not a label name"),
        ({"endsAt": "2026-11-25T20:00:00Z"}, "end in the future"),
        ({"startsAt": "2026-11-26T00:00:00Z"}, "end after it starts"),
        ({"endsAt": "tomorrow"}, "RFC 3339"),
    ],
)
def test_bad_silences_are_refused_with_the_reason(
    api: AlertApi, change: dict[str, object], why: str
) -> None:
    doc = {
        "matchers": [{"name": "class", "value": "x", "isRegex": False}],
        "startsAt": "2026-11-25T21:00:00Z",
        "endsAt": "2026-11-25T23:00:00Z",
        "createdBy": "sre",
        "comment": "",
        **change,
    }
    code, body = post(api, doc)
    assert code == 400 and why in str(body)
    assert api.handle("POST", "/api/v2/silences", b"{nope")[0] == 400
    assert get(api, "/api/v2/silences") == []


def test_status_receivers_and_unsupported_paths(api: AlertApi) -> None:
    status = get(api, "/api/v2/status")
    assert isinstance(status, dict)
    assert status["cluster"]["status"] == "disabled"
    assert set(status["versionInfo"]) >= {"version", "revision", "branch", "goVersion"}
    assert status["uptime"] == "2026-11-25T20:59:00.000Z"
    original = status["config"]["original"]
    assert "receivers:" in original and "hunter2" not in original and "<secret>" in original
    assert get(api, "/api/v2/receivers") == [
        {"name": "hook"},
        {"name": "pager"},
        {"name": "shipments"},
    ]
    assert api.handle("POST", "/api/v2/alerts", b"[]")[0] == 405
    assert api.handle("GET", "/api/v1/alerts")[0] == 404


def test_http_server_serves_json_and_refuses_large_bodies(api: AlertApi) -> None:
    import socket

    import httpx

    from alerting.api import MAX_BODY, ApiServer

    server = ApiServer(api, 0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        res = httpx.get(f"{base}/api/v2/alerts?active=true&silenced=false&inhibited=false")
        assert res.status_code == 200 and res.headers["content-type"] == "application/json"
        assert {a["labels"]["dedup_key"] for a in res.json()} == {
            "truck_offline:T5",
            "shipment_late:S1",
        }
        # the declared length is refused before any of the body is read
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                f"POST /api/v2/silences HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode()
            )
            assert sock.recv(100).startswith(b"HTTP/1.0 413")
        res = httpx.delete(f"{base}/api/v2/silence/nope")
        assert res.status_code == 404 and res.json() == "silence nope not found"
    finally:
        server.stop()
