"""Signatures a receiver can check alone: real deliveries to a local receiver, verified by
alerting/verify_standalone.py run in an interpreter without site-packages (``-I -S``); the
Standard Webhooks header set against the spec's own example; the demo secret refused outside
`fleetpulse up`; PagerDuty ``client_url`` and ``images`` on the wire."""

from __future__ import annotations

import ast
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from alerting_receiver import Receiver, alert_doc

from alerting import ConfigError
from alerting.config import (
    DEMO_SECRET,
    ReceiverConfig,
    default_config_path,
    load_config,
    parse_config,
)
from alerting.delivery import ReceiverWorker
from alerting.engine import EngineState, Notification
from alerting.metrics import Metrics
from alerting.records import Alert, decode
from alerting.service import Dispatcher, Settings
from alerting.signature import sign_standard_webhooks
from alerting.store import Store
from fleetpulse.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STANDALONE = ROOT / "alerting" / "verify_standalone.py"
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# Loads the copied file by path and verifies each delivery given on stdin; prints the results.
CHECKER = """
import importlib.util, json, sys, base64
spec = importlib.util.spec_from_file_location("v", sys.argv[1])
v = importlib.util.module_from_spec(spec); spec.loader.exec_module(v)
fn = v.verify_standard_webhooks if sys.argv[3] == "standard-webhooks" else v.verify
out = [fn(sys.argv[2], d["headers"], base64.b64decode(d["body"])) for d in json.load(sys.stdin)]
print(json.dumps({"results": out, "modules": sorted(sys.modules)}))
"""


def deliver(store: Store, receiver: Receiver, path: str, **kw: Any) -> list[Any]:
    cfg = ReceiverConfig.model_validate(
        {"name": "hook", "type": "webhook", "url": receiver.url(path), "timeout": "2s", **kw}
    )
    docs = [alert_doc(subject=f"T{i}") for i in range(3)]
    notes = []
    for d in docs:
        a = decode(orjson.dumps(d), record_ts_ms=int(time.time() * 1000))
        assert isinstance(a, Alert)
        notes.append(Notification("hook", a.dedup_key, a.event_action, a.event(), 0))
    w = ReceiverWorker(cfg, store, Metrics()).start()
    w.submit(store.commit_batch(EngineState(), notes, int(time.time() * 1000)))
    try:
        wait_until(lambda: w.pending() == 0, 10, "deliveries")
    finally:
        w.stop()
    reqs = receiver.got(path)
    assert len(reqs) == 3
    return reqs


def standalone(secret: str, scheme: str, deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    """verify_standalone.py in ``python -I -S``: no site-packages, no PYTHONPATH, no cwd."""
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHECKER, str(STANDALONE), secret, scheme],
        input=json.dumps(deliveries),
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=True,
    )
    return json.loads(out.stdout)


def as_json(req: Any, body: bytes | None = None) -> dict[str, Any]:
    return {"headers": req.headers, "body": base64.b64encode(body or req.raw).decode()}


@pytest.mark.parametrize("client", ["stdlib", "httpx"])
def test_standalone_verifier_accepts_real_deliveries_and_nothing_else(
    receiver: Receiver, store: Store, client: str
) -> None:
    reqs = deliver(store, receiver, "/fp", secret="s3cret", http_client=client)
    for r in reqs:
        assert r.headers["X-Fleetpulse-Signature"].startswith("v2=")
    genuine = [as_json(r) for r in reqs]
    tampered = as_json(reqs[0], reqs[0].raw.replace(b"fleetpulse/test", b"fleetpulse/evil"))
    other_id = as_json(reqs[0])
    other_id["headers"] = {**reqs[0].headers, "X-Fleetpulse-Delivery-Id": "999999"}
    stale = as_json(reqs[0])
    stale["headers"] = {**reqs[0].headers, "X-Fleetpulse-Timestamp": str(int(time.time()) - 900)}
    got = standalone("s3cret", "fleetpulse", [*genuine, tampered, other_id, stale])
    assert got["results"] == [True, True, True, False, False, False]
    assert standalone("wrong", "fleetpulse", genuine)["results"] == [False] * 3
    assert not any(m.startswith(("alerting", "orjson", "fleetpulse")) for m in got["modules"])


def test_standard_webhooks_headers_verify_standalone(receiver: Receiver, store: Store) -> None:
    reqs = deliver(store, receiver, "/sw", secret=SW_SECRET, signature="standard-webhooks")
    for r in reqs:
        assert r.headers["webhook-id"] == r.headers["X-Fleetpulse-Delivery-Id"]
        assert r.headers["webhook-signature"].startswith("v1,")
        assert "X-Fleetpulse-Signature" not in r.headers
    got = standalone(SW_SECRET, "standard-webhooks", [as_json(r) for r in reqs])
    assert got["results"] == [True] * 3


def test_standard_webhooks_signature_matches_the_spec_example() -> None:
    # the example of the Standard Webhooks specification (and its reference libraries)
    body = b'{"test": 2432232314}'
    sig = sign_standard_webhooks(SW_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_standalone_verifier_imports_only_the_standard_library() -> None:
    tree = ast.parse(STANDALONE.read_text())
    names = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    names |= {
        (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    }
    assert names and names <= set(sys.stdlib_module_names), names
    verify_fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "verify")
    assert (verify_fn.end_lineno or 0) - verify_fn.lineno + 1 <= 16  # "about fifteen lines"


def test_standard_webhooks_needs_a_base64_secret() -> None:
    text = """
receivers:
  - {name: sw, type: webhook, url: "http://127.0.0.1:1/", secret: "not base64!",
     signature: standard-webhooks}
route: {receiver: sw}
"""
    with pytest.raises(ConfigError, match=r"t.yaml: receivers\[0\].secret: not a base64 secret"):
        parse_config(text, "t.yaml")


def test_dispatcher_refuses_the_demo_secret_unless_allowed(tmp_path: Path) -> None:
    cfg = load_config(default_config_path(), env={})  # FLEETPULSE_WEBHOOK_SECRET unset
    assert cfg.receivers[0].secret == DEMO_SECRET
    settings = Settings("127.0.0.1:1", str(tmp_path / "a"), allow_demo_secret=False)
    with pytest.raises(ConfigError) as err:
        Dispatcher(cfg, settings)
    assert "receivers[0].secret" in str(err.value) and "'ops-webhook'" in str(err.value)
    assert not (tmp_path / "a").exists()  # refused before touching any state
    d = Dispatcher(cfg, Settings("127.0.0.1:1", str(tmp_path / "b"), allow_demo_secret=True))
    d.store.close()
    private = load_config(default_config_path(), env={"FLEETPULSE_WEBHOOK_SECRET": "x" * 32})
    d = Dispatcher(private, Settings("127.0.0.1:1", str(tmp_path / "c"), allow_demo_secret=False))
    d.store.close()


def test_run_command_refuses_the_demo_secret_outside_up(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FLEETPULSE_WEBHOOK_SECRET", "FLEETPULSE_ALLOW_DEMO_SECRET")
    }
    argv = [sys.executable, "-m", "alerting", "run", "--bootstrap", "127.0.0.1:1"]
    argv += ["--state-dir", str(tmp_path / "state")]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode != 0
    assert "receivers[0].secret" in p.stderr and "demo secret" in p.stderr, p.stderr


def test_client_url_and_images_reach_the_receiver(receiver: Receiver, store: Store) -> None:
    cfg_text = f"""
global: {{map_url: "http://127.0.0.1:8765/"}}
receivers:
  - {{name: pd, type: pagerduty, url: "{receiver.url("/pd")}", routing_key: k}}
route: {{receiver: pd}}
"""
    cfg = parse_config(cfg_text, "t.yaml").receivers[0]
    doc = alert_doc(subject="T00042")
    doc["images"] = [{"src": "https://example.test/chart.png", "alt": "speed"}, {"alt": "no src"}]
    bare = alert_doc(subject="X")
    del bare["payload"]["custom_details"]
    notes = []
    for d in (doc, bare):
        a = decode(orjson.dumps(d), record_ts_ms=int(time.time() * 1000))
        assert isinstance(a, Alert)
        notes.append(Notification("pd", a.dedup_key, a.event_action, a.event(), 0))
    w = ReceiverWorker(cfg, store, Metrics()).start()
    w.submit(store.commit_batch(EngineState(), notes, int(time.time() * 1000)))
    try:
        wait_until(lambda: w.pending() == 0, 10, "deliveries")
    finally:
        w.stop()
    assert receiver.all_problems() == []
    by_key = {r.body["dedup_key"]: r.body for r in receiver.got("/pd")}
    first = by_key["truck_offline:T00042"]
    assert first["client_url"] == "http://127.0.0.1:8765/?truck=T00042"
    assert first["images"] == [{"src": "https://example.test/chart.png", "alt": "speed"}]
    assert (
        "client_url" not in by_key["truck_offline:X"] and "images" not in by_key["truck_offline:X"]
    )


@pytest.mark.parametrize(
    ("details", "base", "expected"),
    [
        ({"truck_id": "T 1", "lat": 1.5, "lng": 2}, "http://m/", "http://m/?truck=T+1"),
        ({"lat": 45.1, "lng": -122.9}, "http://m/?z=3", "http://m/?z=3&lat=45.1&lng=-122.9"),
        ({"lat": True, "lng": 2}, "http://m/", None),
        ({"shipment_id": "S1"}, "http://m/", None),
        (None, "http://m/", None),
    ],
)
def test_client_url_centres_on_the_subject(
    details: dict[str, Any] | None, base: str, expected: str | None
) -> None:
    from alerting.wire import client_url

    payload: dict[str, Any] = {"summary": "s"}
    if details is not None:
        payload["custom_details"] = details
    assert client_url(base, {"payload": payload}) == expected


def test_docs_show_the_standalone_verifier_as_it_is() -> None:
    doc = (ROOT / "docs" / "alerting.md").read_text()
    block = doc.split("### Signatures", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    source = STANDALONE.read_text()
    fn = source[source.index("def verify(") : source.index("\n\n\ndef verify_standard_webhooks")]
    assert fn.strip() in block
