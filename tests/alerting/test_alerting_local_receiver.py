"""The local receiver of `fleetpulse up` over real HTTP on loopback: a delivery sent by the
dispatcher's own worker is verified and recorded, a bad signature is recorded as rejected with
401, an oversized body is refused unread, malformed requests get 4xx without stopping it; and
`fleetpulse alerts tail` prints what the file holds."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from alerting_receiver import alert_doc
from click.testing import CliRunner

from alerting import received, wire
from alerting.cli import alerts
from alerting.config import ReceiverConfig
from alerting.delivery import ReceiverWorker
from alerting.engine import EngineState, Notification
from alerting.local_receiver import ReceiverServer, main, serve
from alerting.metrics import Metrics
from alerting.records import Alert, decode
from alerting.store import OutboxItem, Store
from fleetpulse.waiting import wait_until

pytestmark = pytest.mark.integration

SECRET = "local-receiver-test-secret"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ReceiverServer]:
    log = received.ReceivedLog(tmp_path / "receiver" / "alerts.jsonl")
    srv = ReceiverServer("127.0.0.1", 0, SECRET, log, max_body=4096)
    serve(srv)
    yield srv
    srv.shutdown()
    srv.server_close()
    log.close()


def port(srv: ReceiverServer) -> int:
    return int(srv.server_address[1])


def rcfg(srv: ReceiverServer, secret: str = SECRET) -> ReceiverConfig:
    return ReceiverConfig.model_validate(
        {
            "name": "ops-webhook",
            "type": "webhook",
            "url": f"http://127.0.0.1:{port(srv)}/alerts",
            "secret": secret,
            "timeout": "5s",
            "retry": {"max_attempts": 1},
        }
    )


def records(srv: ReceiverServer) -> list[dict[str, Any]]:
    return received.read_last(srv.log.path, 1000)[0]


def post(
    srv: ReceiverServer, body: bytes, headers: dict[str, str], raw_length: str | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port(srv), timeout=10)
    try:
        if raw_length is None:
            conn.request("POST", "/alerts", body, headers)
        else:  # a Content-Length that does not describe the body
            conn.putrequest("POST", "/alerts")
            for k, v in headers.items():
                conn.putheader(k, v)
            if raw_length:
                conn.putheader("Content-Length", raw_length)
            conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def enqueue(store: Store, *docs: dict[str, Any]) -> list[OutboxItem]:
    notes = []
    for d in docs:
        a = decode(orjson.dumps(d), record_ts_ms=int(time.time() * 1000))
        assert isinstance(a, Alert)
        notes.append(
            Notification("ops-webhook", a.dedup_key, a.event_action, a.event(), a.record_ts_ms)
        )
    return store.commit_batch(EngineState(), notes, int(time.time() * 1000))


def signed(cfg: ReceiverConfig, doc: dict[str, Any], delivery_id: int) -> tuple[bytes, dict]:  # type: ignore[type-arg]
    body = wire.body(cfg, orjson.dumps(doc))
    return body, wire.headers(cfg, body, delivery_id, int(time.time()))


def test_a_delivery_from_the_dispatcher_is_verified_and_recorded(
    server: ReceiverServer, store: Store
) -> None:
    doc = alert_doc(subject="T7", severity="critical")
    w = ReceiverWorker(rcfg(server), store, Metrics()).start()
    try:
        w.submit(enqueue(store, doc))
        wait_until(lambda: w.pending() == 0, 10, "the delivery")
    finally:
        w.stop()
    assert store.dead_letters(None, []) == []  # accepted: 202
    [rec] = records(server)
    assert rec["verdict"] == "ok" and rec["status"] == 202
    assert rec["action"] == "trigger"
    assert rec["dedup_key"] == "truck_offline:T7"
    assert rec["severity"] == "critical"
    assert rec["summary"] == "truck_offline T7"
    assert rec["delivery_id"].isdigit()


def test_a_bad_signature_is_recorded_as_rejected_with_401(server: ReceiverServer) -> None:
    body, headers = signed(rcfg(server, secret="someone-elses-secret"), alert_doc(), 41)
    status, text = post(server, body, headers)
    assert status == 401 and b"signature mismatch" in text
    body, headers = signed(rcfg(server), alert_doc(), 42)
    headers["X-Fleetpulse-Timestamp"] = str(int(time.time()) - 3600)  # a replay
    assert post(server, body, headers)[0] == 401
    unsigned = {"Content-Type": "application/json"}
    assert post(server, body, unsigned)[0] == 401
    recs = records(server)
    assert [(r["verdict"], r["status"]) for r in recs] == [("rejected", 401)] * 3
    assert recs[0]["reason"] == "signature mismatch" and recs[0]["delivery_id"] == "41"
    assert recs[0]["dedup_key"] == "truck_offline:T1"  # what it claimed to be, for the record
    assert "tolerance" in recs[1]["reason"]
    assert recs[2]["reason"] == "missing signature headers"


def test_an_oversized_body_is_refused_and_the_receiver_goes_on(server: ReceiverServer) -> None:
    big = alert_doc(note="x" * 10_000)
    body, headers = signed(rcfg(server), big, 43)
    status, _ = post(server, body, headers)
    assert status == 413
    # a Content-Length far beyond what is sent: refused before reading
    assert post(server, b"", {}, raw_length=str(10**12))[0] == 413
    assert post(server, b"", {}, raw_length="-5")[0] == 400
    assert post(server, b"", {}, raw_length="12abc")[0] == 400
    # still serving, and a good delivery after it is accepted
    body, headers = signed(rcfg(server), alert_doc(subject="T8"), 44)
    assert post(server, body, headers)[0] == 202
    recs = records(server)
    assert [r["status"] for r in recs] == [413, 413, 400, 400, 202]
    assert "over the limit of 4096" in recs[0]["reason"]
    assert "dedup_key" not in recs[0]  # not read, so nothing of it recorded
    assert recs[-1]["verdict"] == "ok" and recs[-1]["dedup_key"] == "truck_offline:T8"


def test_a_repeated_delivery_id_is_marked_duplicate(server: ReceiverServer) -> None:
    for _ in range(2):
        body, headers = signed(rcfg(server), alert_doc(), 45)
        assert post(server, body, headers)[0] == 202
    assert [r.get("duplicate", False) for r in records(server)] == [False, True]


def test_healthz_and_unknown_paths(server: ReceiverServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port(server), timeout=10)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port(server), timeout=10)
    conn.request("GET", "/nothing")
    assert conn.getresponse().status == 404
    conn.close()


def test_refuses_to_start_without_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETPULSE_TEST_NO_SECRET", raising=False)
    result = CliRunner().invoke(
        main,
        [
            "--port",
            "1",
            "--secret-env",
            "FLEETPULSE_TEST_NO_SECRET",
            "--out",
            str(tmp_path / "a.jsonl"),
        ],
    )
    assert result.exit_code == 2
    assert "--secret-env" in result.output and "FLEETPULSE_TEST_NO_SECRET" in result.output


# -- `fleetpulse alerts tail` ---------------------------------------------------------------


def write(path: Path, *recs: dict[str, Any]) -> None:
    log = received.ReceivedLog(path)
    for r in recs:
        log.append(r)
    log.close()


def ok_record(i: int, **kw: Any) -> dict[str, Any]:
    doc = alert_doc(subject=f"T{i}", **kw)
    body = orjson.dumps(doc)
    return received.record(
        received_ms=1_796_000_000_000 + i * 1000,
        status=202,
        verdict="ok",
        delivery_id=str(i),
        size=len(body),
        body=body,
    )


def test_tail_prints_time_action_key_severity_summary_and_verdict(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    bad = received.record(
        received_ms=1_796_000_009_000,
        status=401,
        verdict="rejected",
        reason="signature mismatch",
        body=orjson.dumps(alert_doc(subject="\x1b]0;pwned\x07T9", action="resolve")),
    )
    write(path, *(ok_record(i) for i in range(5)), bad)
    with open(path, "ab") as f:
        f.write(b'{"cut short by a cra')  # a line being written: not shown
    result = CliRunner().invoke(alerts, ["tail", "-n", "3", "--file", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[0].split("\t") == [
        "2026-11-30T00:53:23Z",
        "trigger",
        "truck_offline:T3",
        "error",
        "truck_offline T3",
        "signature ok",
    ]
    cols = lines[2].split("\t")
    assert cols[1] == "resolve" and cols[-1] == "REJECTED 401: signature mismatch"
    assert "\x1b" not in lines[2] and "\\x1b" in cols[2]  # escaped, not sent to the terminal


def test_tail_reads_the_rotated_file_and_says_when_there_is_nothing(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(alerts, ["tail", "--file", str(path)])
    assert result.exit_code == 1 and "does not exist" in result.output
    small = received.ReceivedLog(path, max_file_bytes=4096)
    for i in range(30):
        small.append(ok_record(i))
    small.close()
    assert path.with_name("alerts.jsonl.1").exists()
    result = CliRunner().invoke(alerts, ["tail", "-n", "25", "--file", str(path)])
    keys = [line.split("\t")[2] for line in result.output.splitlines()]
    assert keys == [f"truck_offline:T{i}" for i in range(5, 30)]


def test_follow_yields_records_appended_after_the_start(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    write(path, ok_record(1))
    shown, end = received.read_last(path, 10)
    assert [r["delivery_id"] for r in shown] == ["1"]
    write(path, ok_record(2), ok_record(3))
    it = received.follow(path, end, poll_s=0.01)
    assert [next(it)["delivery_id"], next(it)["delivery_id"]] == ["2", "3"]
