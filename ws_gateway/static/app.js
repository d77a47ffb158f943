// fleetpulse live map: Leaflet markers fed by the gateway's websocket protocol
// (shared/CONTRACT.md). The "view" subscription follows the map's viewport.
// Record fields (truck ids, statuses, alert texts, shipment ids) reach the page only as text:
// textContent and DOM nodes, never HTML strings (tests/ws_gateway/test_page_safety.py audits it).
(function () {
  "use strict";
  const TOKEN_KEY = "fleetpulse.token";
  // The token arrives in the URL (printed by `fleetpulse up` / `gateway token`); it moves to
  // this tab's sessionStorage and out of the address bar, history and bookmarks at once, so a
  // shared screen or a copied link does not give it away. A reload in the tab keeps working.
  const token = (function () {
    const url = new URL(location.href);
    const fromUrl = url.searchParams.get("token");
    let stored = null;
    try { stored = sessionStorage.getItem(TOKEN_KEY); } catch (e) { /* storage disabled */ }
    if (fromUrl !== null) {
      try { sessionStorage.setItem(TOKEN_KEY, fromUrl); } catch (e) { /* kept in memory */ }
      url.searchParams.delete("token");
      history.replaceState(history.state, "", url.pathname + url.search + url.hash);
      return fromUrl;
    }
    return stored || "";
  })();
  const COLORS = { MOVING: "#2e9e44", STOPPED: "#e0a100", OFFLINE: "#8a8f98" };
  const OTHER = "#3674d1";
  const state = {
    markers: new Map(), lastSeq: null, subscribedBbox: null, connected: false,
    stats: { snapshots: 0, positions: 0, subscribes: 0, alerts: 0, errors: [] },
  };
  window.fleetpulse = state; // read by the browser test and handy in the console

  const map = L.map("map", { preferCanvas: true, attributionControl: false, worldCopyJump: false })
    .fitBounds([[24.5, -125], [49.5, -66.5]]);
  state.map = map;
  fetch("/data/us-states.geojson").then((r) => r.json()).then((states) => {
    L.geoJSON(states, { style: { color: "#5b6b80", weight: 1, fillColor: "#f4f1ea", fillOpacity: 1 },
                        interactive: false }).addTo(map).bringToBack();
  });

  const $ = (id) => document.getElementById(id);
  function setStatus(text, ok) {
    const el = $("status");
    el.textContent = text;
    el.className = "status " + (ok ? "ok" : "bad");
  }
  function updateCount() { $("count").textContent = state.markers.size + " trucks in view"; }

  function upsert(t) {
    const color = COLORS[t.status] || OTHER;
    let m = state.markers.get(t.truck_id);
    if (m) {
      if (m.tsMs && t.ts_ms && t.ts_ms < m.tsMs) return; // never move back in time
      m.setLatLng([t.lat, t.lng]);
      m.setStyle({ color: color, fillColor: color });
    } else {
      m = L.circleMarker([t.lat, t.lng], { radius: 5, weight: 1, color: color, fillColor: color,
                                           fillOpacity: 0.85 }).addTo(map);
      state.markers.set(t.truck_id, m);
    }
    m.tsMs = t.ts_ms;
    m.truck = t;
    if (!m.getTooltip()) m.bindTooltip(tooltipNode);
    else if (m.isTooltipOpen()) m.getTooltip().setContent(tooltipNode);
  }
  // A DOM node, not a string: Leaflet sets string content as HTML.
  function tooltipNode(layer) {
    const t = layer.truck || {};
    const el = document.createElement("span");
    el.textContent = String(t.truck_id) + " · " + (t.status || "?") +
      (typeof t.speed_kph === "number" ? " · " + Math.round(t.speed_kph) + " km/h" : "");
    return el;
  }
  function remove(id) {
    const m = state.markers.get(id);
    if (m) { m.remove(); state.markers.delete(id); }
  }
  function noteSeq(seq) {
    if (!seq) return;
    const [a, b] = seq.split("-").map(Number);
    if (state.lastSeq) {
      const [c, d] = state.lastSeq.split("-").map(Number);
      if (a < c || (a === c && b <= d)) return;
    }
    state.lastSeq = seq;
  }

  function viewBbox() {
    const b = map.getBounds().pad(0.05);
    const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
    return [clamp(b.getWest(), -180, 179.9), clamp(b.getSouth(), -90, 89.9),
            clamp(b.getEast(), -179.9, 180), clamp(b.getNorth(), -89.9, 90)]
      .map((v) => Math.round(v * 1e5) / 1e5);
  }

  let ws = null;
  let retryMs = 500;
  let lastError = null;
  let moveTimer = null;
  let resumeSince = null;
  function send(obj) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj)); }
  function subscribeView() {
    const bbox = viewBbox();
    state.subscribedBbox = bbox;
    state.stats.subscribes += 1;
    send({ op: "subscribe", id: "view", filter: { bbox: bbox } });
  }

  function onMessage(ev) {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    switch (msg.type) {
      case "snapshot": {
        state.stats.snapshots += 1;
        const keep = new Set(msg.trucks.map((t) => t.truck_id));
        for (const id of Array.from(state.markers.keys())) if (!keep.has(id)) remove(id);
        msg.trucks.forEach(upsert);
        noteSeq(msg.seq);
        break;
      }
      case "position":
        state.stats.positions += 1;
        if (msg.left) remove(msg.truck.truck_id); else upsert(msg.truck);
        noteSeq(msg.seq);
        break;
      case "alert": state.stats.alerts += 1; showAlert(msg.alert); break;
      case "delays": showDelays(msg.shipments); break;
      case "lagging": setStatus("too slow, reconnecting", false); break;
      case "error":
        state.stats.errors.push(msg.code);
        setStatus(msg.code + ": " + msg.message, false);
        lastError = msg.code;
        if (msg.code === "RATE_LIMITED" && (msg.sub === "view" || msg.sub === undefined)) {
          // the view's subscribe (or resume) was refused: ask again when the rate allows
          clearTimeout(moveTimer);
          moveTimer = setTimeout(subscribeView, Math.max(250, msg.retry_after_ms || 1000));
        }
        break;
      default: break;
    }
    updateCount();
  }

  function showAlert(a) {
    const p = a.payload || {};
    const d = p.custom_details || {};
    const list = $("alerts");
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    const li = document.createElement("li");
    li.textContent = p.summary || a.dedup_key;
    const when = document.createElement("span");
    when.className = "alert-time";
    when.textContent = (p.timestamp || "") + " · " + (p.class || "");
    li.appendChild(when);
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
    if (typeof d.lat === "number" && typeof d.lng === "number") {
      const ring = L.circleMarker([d.lat, d.lng], { radius: 14, color: "#d32f2f", weight: 3,
                                                    fill: false }).addTo(map);
      li.onclick = () => map.setView([d.lat, d.lng], Math.max(map.getZoom(), 8));
      setTimeout(() => ring.remove(), 60000);
    }
  }
  function showDelays(shipments) {
    const list = $("delays");
    list.replaceChildren();
    if (!shipments.length) {
      const li = document.createElement("li"); li.className = "empty"; li.textContent = "none";
      list.appendChild(li); return;
    }
    shipments.slice().sort((x, y) => y.severity - x.severity).forEach((s) => {
      const li = document.createElement("li");
      const sev = document.createElement("span");
      sev.className = "sev sev-" + s.severity; sev.textContent = s.severity;
      li.appendChild(sev); li.appendChild(document.createTextNode(s.shipment_id));
      list.appendChild(li);
    });
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(proto + "://" + location.host + "/ws?token=" + encodeURIComponent(token));
    ws.onopen = () => {
      state.connected = true; retryMs = 500;
      setStatus("live", true);
      // After a reconnect with the same viewport, replay what was missed instead of a snapshot.
      const bbox = viewBbox();
      if (resumeSince && state.subscribedBbox &&
          JSON.stringify(bbox) === JSON.stringify(state.subscribedBbox)) {
        send({ op: "resume", since: resumeSince });
      }
      subscribeView();
      send({ op: "delays" });
    };
    ws.onmessage = onMessage;
    ws.onclose = (ev) => {
      state.connected = false;
      resumeSince = state.lastSeq;
      if (ev.code === 4401 || ev.code === 4403) {
        const what = lastError === "TOKEN_EXPIRED" ? "session expired"
          : ev.code === 4401 ? "not authorised" : "forbidden";
        setStatus(what + " — open the URL printed by `fleetpulse up` or `fleetpulse gateway token`",
                  false);
        return;
      }
      setStatus("disconnected, retrying…", false);
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  map.on("moveend", () => {
    clearTimeout(moveTimer);
    moveTimer = setTimeout(subscribeView, 150);
  });
  connect();
})();
