"""The map page in a real browser: Debian's chromium driven by Playwright.

Needs `apt-get install chromium` (dev.sh set-up). Fails loudly when chromium is missing: a
skipped browser test would hide a broken map.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import redis
from wsgw_helpers import SECRET, put_truck, settings

from fleetpulse.waiting import free_port
from ws_gateway.server import BackgroundGateway
from ws_gateway.tokens import sign_token

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("FLEETPULSE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "map-screenshot.png"

# (id, lat, lng, status): a few cities and a cluster around Seattle
TRUCKS = [
    ("T-SEA1", 47.60, -122.33, "MOVING"),
    ("T-SEA2", 47.45, -122.25, "STOPPED"),
    ("T-TAC", 47.25, -122.44, "MOVING"),
    ("T-PDX", 45.52, -122.68, "OFFLINE"),
    ("T-SFO", 37.77, -122.42, "MOVING"),
    ("T-LAX", 34.05, -118.24, "STOPPED"),
    ("T-DEN", 39.74, -104.99, "MOVING"),
    ("T-DAL", 32.78, -96.80, "MOVING"),
    ("T-CHI", 41.88, -87.63, "STOPPED"),
    ("T-ATL", 33.75, -84.39, "MOVING"),
    ("T-NYC", 40.71, -74.01, "MOVING"),
    ("T-MIA", 25.76, -80.19, "OFFLINE"),
]


def test_map_shows_moves_and_follows_the_viewport(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).is_file(), (
        f"{CHROMIUM} not found: the browser test needs Debian's chromium "
        "(apt-get install -y chromium; ./dev.sh setup does it)"
    )
    from playwright.sync_api import sync_playwright

    for tid, lat, lng, status in TRUCKS:
        put_truck(redis_client, tid, lat, lng, status)
    redis_client.zadd("delays", {"shipment:S00017": 3, "shipment:S00099": 5, "shipment:S00003": 1})
    port = free_port()
    bg = BackgroundGateway(settings(redis_url, port=port, auth=True, secret=SECRET))
    gw = bg.start()
    token = sign_token(SECRET, "browser-test", ["*"], int(time.time()) + 600)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            # the predicates below are strings, which the page's CSP forbids evaluating; the
            # CSP itself is tested in test_page_safety.py
            page = browser.new_page(viewport={"width": 1280, "height": 760}, bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/?token={token}")
            page.wait_for_function(
                f"window.fleetpulse && fleetpulse.markers.size === {len(TRUCKS)}", timeout=15_000
            )
            # a truck moves: its marker follows
            put_truck(redis_client, "T-DEN", 40.5, -103.0, "STOPPED")
            page.wait_for_function(
                "fleetpulse.markers.get('T-DEN').getLatLng().lat === 40.5", timeout=10_000
            )
            # the delays list, most severe first
            page.wait_for_function(
                "document.querySelectorAll('#delays li').length === 3", timeout=10_000
            )
            assert page.inner_text("#delays li:first-child").replace(" ", "") == "5S00099"
            page.screenshot(path=str(tmp_path / "map-us.png"))
            # pan and zoom to Seattle: the subscription follows, far trucks leave the map
            subscribes = page.evaluate("fleetpulse.stats.subscribes")
            page.evaluate("fleetpulse.map.setView([47.45, -122.35], 9)")
            page.wait_for_function(
                f"fleetpulse.stats.subscribes > {subscribes} && "
                "fleetpulse.stats.snapshots >= 2 && "
                "fleetpulse.markers.size === 3",
                timeout=10_000,
            )
            assert sorted(page.evaluate("Array.from(fleetpulse.markers.keys())")) == [
                "T-SEA1",
                "T-SEA2",
                "T-TAC",
            ]
            bbox = page.evaluate("fleetpulse.subscribedBbox")
            assert -125 < bbox[0] < bbox[2] < -119.5 and 46 < bbox[1] < bbox[3] < 49
            # the server holds the new filter for this client
            conn = next(iter(gw.connections))
            env = conn.subs["view"].filter.envelope
            assert env is not None and env[0] > -125 and env[2] < -119.5
            # live inside the new view, and a truck driving out of it disappears
            put_truck(redis_client, "T-SEA2", 47.50, -122.30, "MOVING")
            page.wait_for_function(
                "fleetpulse.markers.get('T-SEA2').getLatLng().lat === 47.5", timeout=10_000
            )
            put_truck(redis_client, "T-TAC", 45.0, -122.5, "MOVING")
            page.wait_for_function("!fleetpulse.markers.has('T-TAC')", timeout=10_000)
            shot = tmp_path / "map-seattle.png"
            page.evaluate("fleetpulse.map.setView([39.5, -98.5], 4)")
            page.wait_for_function("fleetpulse.markers.size === 12", timeout=10_000)
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            DOCS_SHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, DOCS_SHOT)
            assert errors == [], errors
            browser.close()
    finally:
        bg.stop()
