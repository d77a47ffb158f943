"""The map page as an operator console (issue 32, Leaflet page): the connecting and reconnecting
states, search, status and alert-class filters, the truck panel, deep links, themes and the
phone layout, in Debian's chromium (Playwright) against the real gateway and Redis.

Predicates are strings (eval'd), so pages open with ``bypass_csp``; the CSP itself is tested in
test_page_safety.py.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from test_browser import ARGS, CHROMIUM, TRUCKS
from wsgw_helpers import SECRET, put_truck, settings

from fleetpulse.waiting import free_port
from ws_gateway.alerts import MapAlert
from ws_gateway.server import BackgroundGateway
from ws_gateway.tokens import sign_token

pytestmark = pytest.mark.integration

# Holds the page's incoming websocket messages until window.__release(): the state before the
# first snapshot is then observed without racing the gateway.
HOLD_MESSAGES = """
window.__hold = true; window.__queue = [];
window.__release = () => { window.__hold = false; window.__queue.splice(0).forEach((f) => f()); };
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  set onmessage(f) {
    super.onmessage = (ev) => { if (window.__hold) window.__queue.push(() => f(ev)); else f(ev); };
  }
};
"""
SHOWN = (
    "Array.from(fleetpulse.markers.values()).filter((m) => fleetpulse.map.hasLayer(m))"
    ".map((m) => m.truck.truck_id).sort()"
)


def _alert(cls: str, severity: str, truck_id: str, lat: float, lng: float) -> MapAlert:
    event = {
        "event_action": "trigger",
        "dedup_key": f"{cls}:{truck_id}",
        "payload": {
            "summary": f"{truck_id} {cls}",
            "severity": severity,
            "class": cls,
            "timestamp": "2026-12-08T01:00:00Z",
            "custom_details": {"truck_id": truck_id, "lat": lat, "lng": lng},
        },
    }
    return MapAlert(event, lat, lng, truck_id)


def _field(page: Any, name: str) -> str:
    return str(page.inner_text(f"#panel-fields dd[data-field={name}]"))


def test_operator_console(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).is_file(), f"{CHROMIUM} not found"
    from playwright.sync_api import sync_playwright

    for tid, lat, lng, status in TRUCKS:
        put_truck(redis_client, tid, lat, lng, status)
    redis_client.zadd("delays", {"shipment:S00017": 3, "shipment:S00099": 5})
    port = free_port()
    bg = BackgroundGateway(settings(redis_url, port=port, auth=True, secret=SECRET))
    gw = bg.start()
    token = sign_token(SECRET, "console-test", ["*"], int(time.time()) + 600)
    base = f"http://127.0.0.1:{port}/?token={token}"

    def alert(a: MapAlert) -> None:
        bg._loop.call_soon_threadsafe(gw.on_alert, a)

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 760}, bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.add_init_script(HOLD_MESSAGES)
            page.goto(base)

            # 1. connecting: the socket is open, the snapshot held back
            page.wait_for_function("window.fleetpulse && fleetpulse.connected", timeout=10_000)
            assert page.is_visible("#overlay") and page.inner_text("#overlay") == "connecting…"
            assert page.inner_text("#count") == "connecting…"
            assert page.evaluate("fleetpulse.markers.size") == 0
            page.evaluate("window.__release()")
            page.wait_for_function(f"fleetpulse.shown === {len(TRUCKS)}", timeout=10_000)
            assert not page.is_visible("#overlay")
            assert page.inner_text("#count") == f"{len(TRUCKS)} trucks in view"
            # ... and reconnecting: the page's close handler runs before this listener
            overlay_at_close = page.evaluate(
                "new Promise((done) => { const w = fleetpulse.ws; w.addEventListener('close',"
                " () => done(document.getElementById('overlay').hidden ? null :"
                " document.getElementById('overlay').textContent)); w.close(); })"
            )
            assert overlay_at_close == "reconnecting…"
            page.wait_for_function(
                "fleetpulse.connected && document.getElementById('overlay').hidden", timeout=10_000
            )

            # 3. status filter: stopped trucks leave the map, and come back
            stopped = sorted(t[0] for t in TRUCKS if t[3] == "STOPPED")
            page.uncheck("input[data-status=STOPPED]")
            shown = page.evaluate(SHOWN)
            assert not set(stopped) & set(shown) and len(shown) == len(TRUCKS) - len(stopped)
            assert page.inner_text("#count") == f"{len(shown)} trucks in view"
            page.check("input[data-status=STOPPED]")
            assert len(page.evaluate(SHOWN)) == len(TRUCKS)
            # alert class filter: only trucks (and list items) with an open alert of that class
            alert(_alert("truck_offline", "critical", "T-PDX", 45.52, -122.68))
            alert(_alert("truck_stopped_unplanned", "warning", "T-CHI", 41.88, -87.63))
            page.wait_for_function("fleetpulse.stats.alerts === 2", timeout=10_000)
            page.select_option("#alert-class", "truck_offline")
            assert page.evaluate(SHOWN) == ["T-PDX"]
            assert page.locator("#alerts li:visible").count() == 1
            page.select_option("#alert-class", "")
            assert len(page.evaluate(SHOWN)) == len(TRUCKS)

            # 2. search: a truck outside the view is subscribed to by id and flown to
            page.evaluate("fleetpulse.map.setView([47.45, -122.35], 9)")
            page.wait_for_function("fleetpulse.markers.size === 3", timeout=10_000)
            page.fill("#search", "T-MIA")
            page.press("#search", "Enter")
            page.wait_for_function(
                "fleetpulse.map.getCenter().distanceTo([25.76, -80.19]) < 2000 && "
                "fleetpulse.map.getZoom() >= 10",
                timeout=10_000,
            )
            assert page.is_visible("#panel") and _field(page, "id") == "T-MIA"
            assert _field(page, "status") == "OFFLINE"
            conn = next(iter(gw.connections))
            assert "focus" in conn.subs
            # a shipment of the delayed list is highlighted there
            page.fill("#search", "S00099")
            page.press("#search", "Enter")
            assert page.inner_text("#delays li.hit").replace(" ", "") == "5S00099"

            # 4. click a truck: the panel shows its latest fields and its open alerts
            page.evaluate("fleetpulse.map.setView([47.6, -122.33], 11, {animate: false})")
            page.wait_for_function("fleetpulse.markers.has('T-SEA1')", timeout=10_000)
            box = page.locator("#map").bounding_box()
            assert box is not None
            pt = page.evaluate("fleetpulse.map.latLngToContainerPoint([47.60, -122.33])")
            page.mouse.click(box["x"] + pt["x"], box["y"] + pt["y"])
            page.wait_for_function("fleetpulse.selected === 'T-SEA1'", timeout=5_000)
            assert page.inner_text("#panel-title") == "Truck T-SEA1"
            assert _field(page, "status") == "MOVING"
            assert _field(page, "speed") == "60 km/h" and _field(page, "heading") == "90°"
            assert _field(page, "region") == "WEST"
            assert _field(page, "time").endswith("Z")
            alert(_alert("truck_stopped_unplanned", "warning", "T-SEA1", 47.6, -122.33))
            page.wait_for_function("fleetpulse.stats.alerts === 3", timeout=10_000)
            alert(_alert("truck_offline", "critical", "T-SEA1", 47.6, -122.33))
            page.wait_for_function(
                "document.querySelectorAll('#panel-alerts li').length === 2", timeout=10_000
            )
            first = page.locator("#panel-alerts li").first
            assert "truck_offline" in first.inner_text()
            assert first.locator(".sev-critical").count() == 1
            # a newer position reaches the open panel
            put_truck(redis_client, "T-SEA1", 47.61, -122.33, "STOPPED")
            page.wait_for_function(
                "document.querySelector('#panel-fields dd[data-field=status]').textContent"
                " === 'STOPPED'",
                timeout=10_000,
            )

            # 5. deep link: the view and the selection in the hash, never the token
            page.wait_for_function("location.hash.includes('truck=T-SEA1')", timeout=5_000)
            assert "token" not in page.url
            link_hash = page.url.split("#", 1)[1]
            center = page.evaluate("fleetpulse.map.getCenter()")
            page.screenshot(path=str(tmp_path / "console-desktop.png"))
            # dark theme toggle (the page starts light: headless prefers light)
            page.click("#theme")
            assert page.evaluate("document.documentElement.dataset.theme") == "dark"
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") != (
                "rgb(247, 248, 250)"
            )
            page.screenshot(path=str(tmp_path / "console-dark.png"))
            favicon = page.request.get(f"http://127.0.0.1:{port}/static/favicon.svg")
            assert favicon.ok and favicon.headers["content-type"] == "image/svg+xml"

            restored = browser.new_page(viewport={"width": 1280, "height": 760}, bypass_csp=True)
            restored.on("pageerror", lambda e: errors.append(str(e)))
            restored.goto(f"{base}#{link_hash}")
            restored.wait_for_function(
                "fleetpulse.loaded && document.querySelector("
                "'#panel-fields dd[data-field=status]').textContent === 'STOPPED'",
                timeout=10_000,
            )
            got = restored.evaluate("fleetpulse.map.getCenter()")
            assert restored.evaluate("fleetpulse.map.getZoom()") == 11
            assert abs(got["lat"] - center["lat"]) < 1e-3
            assert abs(got["lng"] - center["lng"]) < 1e-3
            assert restored.inner_text("#panel-title") == "Truck T-SEA1"
            assert "token" not in restored.url
            restored.click("#panel-close")
            assert not restored.is_visible("#panel") and "truck=" not in restored.url

            # 6. phone width: the map fills the width, the panel is a bottom sheet
            phone = browser.new_page(viewport={"width": 390, "height": 844}, bypass_csp=True)
            phone.on("pageerror", lambda e: errors.append(str(e)))
            phone.goto(f"{base}#{link_hash}")
            phone.wait_for_function("fleetpulse.loaded && fleetpulse.shown > 0", timeout=10_000)
            map_box = phone.locator("#map").bounding_box()
            sheet = phone.locator("#panel").bounding_box()
            assert map_box is not None and sheet is not None
            assert map_box["width"] == 390 and map_box["height"] > 300
            assert sheet["width"] == 390 and abs(sheet["y"] + sheet["height"] - 844) < 1
            assert sheet["y"] > 844 * 0.5
            phone.screenshot(path=str(tmp_path / "console-phone.png"))
            assert errors == [], errors
            browser.close()
    finally:
        bg.stop()
