// fleetpulse live map: Leaflet markers fed by the gateway's websocket protocol
// (shared/CONTRACT.md). The "view" subscription follows the map's viewport; the "focus"
// subscription (filter truck_ids) follows the searched or selected truck wherever it is.
// Record fields (truck ids, statuses, alert texts, shipment ids) reach the page only as text:
// textContent and DOM nodes, never HTML strings (tests/ws_gateway/test_page_safety.py audits it).
(function () {
  "use strict";
  const TOKEN_KEY = "fleetpulse.token";
  const THEME_KEY = "fleetpulse.theme";
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
    loaded: false, selected: null, searching: null, ws: null,
    hiddenStatuses: new Set(), alertClass: "", shown: 0,
    alertsByTruck: new Map(), // truck id -> open alerts seen on this page, by dedup_key
    stats: { snapshots: 0, positions: 0, subscribes: 0, alerts: 0, errors: [] },
  };
  window.fleetpulse = state; // read by the browser tests and handy in the console

  const $ = (id) => document.getElementById(id);
  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // -- deep links: #map=zoom/lat/lng&truck=ID (never the token) --------------------------
  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    const out = { view: null, truck: p.get("truck") || null };
    const parts = (p.get("map") || "").split("/").map(Number);
    if (parts.length === 3 && parts.every(Number.isFinite) && Math.abs(parts[1]) <= 90 &&
        Math.abs(parts[2]) <= 180) out.view = { zoom: parts[0], center: [parts[1], parts[2]] };
    return out;
  }
  function writeHash() {
    const c = map.getCenter();
    const p = new URLSearchParams();
    p.set("map", map.getZoom() + "/" + c.lat.toFixed(4) + "/" + c.lng.toFixed(4));
    if (state.selected) p.set("truck", state.selected);
    const url = new URL(location.href);
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url.pathname + url.search + "#" + p.toString());
  }
  const initial = readHash();

  const map = L.map("map", { preferCanvas: true, attributionControl: false, worldCopyJump: false });
  if (initial.view) map.setView(initial.view.center, initial.view.zoom);
  else map.fitBounds([[24.5, -125], [49.5, -66.5]]);
  state.map = map;
  let statesLayer = null;
  function statesStyle() {
    return { color: cssVar("--border"), weight: 1, fillColor: cssVar("--land"), fillOpacity: 1 };
  }
  fetch("/data/us-states.geojson").then((r) => r.json()).then((states) => {
    statesLayer = L.geoJSON(states, { style: statesStyle(), interactive: false })
      .addTo(map).bringToBack();
  });

  // -- theme: prefers-color-scheme unless the toggle chose one (kept in localStorage) ------
  function applyTheme(theme) {
    if (theme) document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
    if (statesLayer) statesLayer.setStyle(statesStyle());
    const m = state.markers.get(state.selected);
    if (m) upsert(m.truck); // its ring is drawn in the theme's text colour
  }
  try { applyTheme(localStorage.getItem(THEME_KEY)); } catch (e) { /* storage disabled */ }
  $("theme").addEventListener("click", () => {
    const dark = cssVar("--bg") !== "#f7f8fa";
    const next = dark ? "light" : "dark";
    try { localStorage.setItem(THEME_KEY, next); } catch (e) { /* this page only */ }
    applyTheme(next);
  });

  function setStatus(text, ok) {
    const el = $("status");
    el.textContent = text;
    el.className = "status " + (ok ? "ok" : "bad");
  }
  function setOverlay(text) {
    const el = $("overlay");
    el.textContent = text || "";
    el.hidden = !text;
  }
  function updateCount() {
    $("count").textContent = state.loaded ? state.shown + " trucks in view" : "connecting…";
  }

  // -- filters: status and alert class, applied to what the page already holds -----------
  function statusKey(t) { return COLORS[t.status] ? t.status : "OTHER"; }
  function openAlerts(id) { return state.alertsByTruck.get(id) || new Map(); }
  function passes(t) {
    if (state.hiddenStatuses.has(statusKey(t))) return false;
    if (!state.alertClass) return true;
    for (const a of openAlerts(t.truck_id).values()) {
      if ((a.payload || {}).class === state.alertClass) return true;
    }
    return false;
  }
  function applyFilter(m) {
    const show = passes(m.truck) || m.truck.truck_id === state.selected;
    if (show && !map.hasLayer(m)) { m.addTo(map); state.shown += 1; }
    else if (!show && map.hasLayer(m)) { m.remove(); state.shown -= 1; }
  }
  function refilter() {
    state.markers.forEach(applyFilter);
    for (const li of $("alerts").children) {
      if (!li.classList.contains("empty")) {
        li.hidden = !!state.alertClass && li.dataset.cls !== state.alertClass;
      }
    }
    updateCount();
  }
  $("filters").addEventListener("change", () => {
    state.hiddenStatuses = new Set();
    for (const box of $("filters").querySelectorAll("input[data-status]")) {
      if (!box.checked) state.hiddenStatuses.add(box.dataset.status);
    }
    state.alertClass = $("alert-class").value;
    refilter();
  });

  // -- markers ---------------------------------------------------------------------------
  function upsert(t) {
    const color = COLORS[t.status] || OTHER;
    let m = state.markers.get(t.truck_id);
    if (m) {
      if (m.tsMs && t.ts_ms && t.ts_ms < m.tsMs) return; // never move back in time
      m.setLatLng([t.lat, t.lng]);
      m.setStyle({ color: color, fillColor: color });
    } else {
      m = L.circleMarker([t.lat, t.lng], { radius: 5, weight: 1, color: color, fillColor: color,
                                           fillOpacity: 0.85 });
      m.on("click", () => select(t.truck_id, false));
      state.markers.set(t.truck_id, m);
    }
    m.tsMs = t.ts_ms;
    m.truck = Object.assign({}, m.truck, t);
    applyFilter(m);
    if (t.truck_id === state.selected) {
      m.setStyle({ weight: 3, color: cssVar("--fg") || "#000", radius: 8 });
      renderPanel();
    }
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
    if (!m) return;
    if (map.hasLayer(m)) { m.remove(); state.shown -= 1; }
    state.markers.delete(id);
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

  // -- the selected truck: side panel (bottom sheet on a phone) ----------------------------
  function select(id, fly) {
    const before = state.selected;
    state.selected = id;
    if (before && before !== id && state.markers.has(before)) {
      const old = state.markers.get(before);
      const c = COLORS[old.truck.status] || OTHER;
      old.setStyle({ weight: 1, color: c, radius: 5 });
      applyFilter(old);
      // kept only for the focus subscription: drop it once it is outside the view
      const b = state.subscribedBbox;
      const ll = old.getLatLng();
      if (b && !(ll.lng >= b[0] && ll.lat >= b[1] && ll.lng <= b[2] && ll.lat <= b[3])) {
        remove(before);
      }
    }
    if (!id) {
      $("panel").hidden = true;
      send({ op: "unsubscribe", id: "focus" });
      writeHash();
      return;
    }
    $("panel").hidden = false;
    state.searching = fly ? id : null;
    const m = state.markers.get(id);
    if (m) {
      upsert(m.truck);
      if (fly) flyTo(m.truck);
    }
    renderPanel();
    subscribeFocus();
    writeHash();
  }
  function flyTo(t) {
    state.searching = null;
    map.flyTo([t.lat, t.lng], Math.max(map.getZoom(), 10), { duration: 0.5 });
  }
  function field(dl, name, value) {
    const dt = document.createElement("dt"); dt.textContent = name;
    const dd = document.createElement("dd"); dd.textContent = value;
    dd.dataset.field = name;
    dl.appendChild(dt); dl.appendChild(dd);
  }
  function renderPanel() {
    const id = state.selected;
    if (!id) return;
    const m = state.markers.get(id);
    const t = m ? m.truck : { truck_id: id };
    $("panel-title").textContent = "Truck " + id;
    const dl = $("panel-fields");
    dl.replaceChildren();
    const num = (v, unit) => (typeof v === "number" ? Math.round(v) + unit : "—");
    field(dl, "id", String(t.truck_id));
    field(dl, "status", m ? String(t.status) : "not seen yet");
    field(dl, "speed", num(t.speed_kph, " km/h"));
    field(dl, "heading", num(t.heading, "°"));
    field(dl, "region", t.region ? String(t.region) : "—");
    field(dl, "time", typeof t.ts_ms === "number" ? new Date(t.ts_ms).toISOString() : "—");
    const list = $("panel-alerts");
    list.replaceChildren();
    const alerts = Array.from(openAlerts(id).values())
      .sort((x, y) => (y.seenAt || 0) - (x.seenAt || 0));
    if (!alerts.length) {
      const li = document.createElement("li"); li.className = "empty"; li.textContent = "none";
      list.appendChild(li);
    }
    alerts.forEach((a) => list.appendChild(alertItem(a)));
  }
  $("panel-close").addEventListener("click", () => select(null, false));

  // -- search: a shipment of the delayed list, else a truck id ---------------------------
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("search").value.trim();
    const msg = $("search-msg");
    msg.textContent = "";
    for (const li of $("delays").querySelectorAll("li.hit")) li.classList.remove("hit");
    if (!q) return;
    const hit = Array.from($("delays").children).find((li) => li.dataset.shipment === q);
    if (hit) {
      hit.classList.add("hit");
      hit.scrollIntoView({ block: "nearest" });
      return;
    }
    msg.textContent = "looking for " + q + "…";
    select(q, true);
  });

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
  function subscribeFocus() {
    if (state.selected) {
      send({ op: "subscribe", id: "focus", filter: { truck_ids: [state.selected] } });
    }
  }

  function onSnapshot(msg) {
    if (msg.sub === "focus") {
      const t = msg.trucks.find((x) => x.truck_id === state.selected);
      if (t) {
        upsert(t);
        $("search-msg").textContent = "";
        if (state.searching === t.truck_id) flyTo(t);
      } else if (state.searching === state.selected) {
        $("search-msg").textContent = "no truck " + state.selected + " in your view of the fleet";
        state.searching = null;
      }
      renderPanel();
      return;
    }
    const keep = new Set(msg.trucks.map((t) => t.truck_id));
    if (state.selected) keep.add(state.selected);
    for (const id of Array.from(state.markers.keys())) if (!keep.has(id)) remove(id);
    msg.trucks.forEach(upsert);
    state.loaded = true;
    document.body.classList.remove("connecting");
    setOverlay(msg.truncated ? "showing the first " + msg.trucks.length + " trucks: zoom in" : "");
  }

  function onMessage(ev) {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    switch (msg.type) {
      case "snapshot":
        state.stats.snapshots += 1;
        onSnapshot(msg);
        noteSeq(msg.seq);
        break;
      case "position":
        state.stats.positions += 1;
        if (msg.left) {
          if (msg.truck.truck_id !== state.selected) remove(msg.truck.truck_id);
        } else {
          upsert(msg.truck);
        }
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
        if (msg.sub === "focus") $("search-msg").textContent = msg.message;
        break;
      default: break;
    }
    updateCount();
  }

  // -- alerts ------------------------------------------------------------------------------
  function alertItem(a) {
    const p = a.payload || {};
    const li = document.createElement("li");
    li.dataset.cls = String(p.class || "");
    const sev = document.createElement("span");
    sev.className = "sev label sev-" + String(p.severity || "critical").replace(/[^a-z]/g, "");
    sev.textContent = String(p.severity || "critical");
    li.appendChild(sev);
    li.appendChild(document.createTextNode(String(p.summary || a.dedup_key)));
    const when = document.createElement("span");
    when.className = "alert-time";
    when.textContent = (p.timestamp || "") + " · " + (p.class || "");
    li.appendChild(when);
    return li;
  }
  let alertCounter = 0; // arrival order: newest first in the panel
  function showAlert(a) {
    const p = a.payload || {};
    const d = p.custom_details || {};
    const truckId = typeof d.truck_id === "string" ? d.truck_id : null;
    if (truckId) {
      const open = openAlerts(truckId);
      if (a.event_action === "resolve") open.delete(a.dedup_key);
      else open.set(a.dedup_key, Object.assign({ seenAt: ++alertCounter }, a));
      state.alertsByTruck.set(truckId, open);
      const m = state.markers.get(truckId);
      if (m) applyFilter(m);
      if (truckId === state.selected) renderPanel();
    }
    if (a.event_action === "resolve") return;
    const list = $("alerts");
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    const li = alertItem(a);
    li.hidden = !!state.alertClass && li.dataset.cls !== state.alertClass;
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
    if (typeof d.lat === "number" && typeof d.lng === "number") {
      const ring = L.circleMarker([d.lat, d.lng], { radius: 14, color: "#d32f2f", weight: 3,
                                                    fill: false }).addTo(map);
      li.addEventListener("click", () => {
        map.setView([d.lat, d.lng], Math.max(map.getZoom(), 8));
        if (truckId) select(truckId, false);
      });
      setTimeout(() => ring.remove(), 60000);
    }
  }
  function showDelays(shipments) {
    const list = $("delays");
    const hit = (list.querySelector("li.hit") || {}).dataset;
    list.replaceChildren();
    if (!shipments.length) {
      const li = document.createElement("li"); li.className = "empty"; li.textContent = "none";
      list.appendChild(li); return;
    }
    shipments.slice().sort((x, y) => y.severity - x.severity).forEach((s) => {
      const li = document.createElement("li");
      li.dataset.shipment = String(s.shipment_id);
      if (hit && hit.shipment === li.dataset.shipment) li.classList.add("hit");
      const sev = document.createElement("span");
      sev.className = "sev sev-" + s.severity; sev.textContent = s.severity;
      li.appendChild(sev); li.appendChild(document.createTextNode(s.shipment_id));
      list.appendChild(li);
    });
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(proto + "://" + location.host + "/ws?token=" + encodeURIComponent(token));
    state.ws = ws;
    ws.onopen = () => {
      state.connected = true; retryMs = 500;
      setStatus("live", true);
      // After a reconnect with the same viewport, replay what was missed instead of a snapshot.
      const bbox = viewBbox();
      if (resumeSince && state.subscribedBbox &&
          JSON.stringify(bbox) === JSON.stringify(state.subscribedBbox)) {
        send({ op: "resume", since: resumeSince });
      }
      if (state.loaded) setOverlay("");
      subscribeView();
      subscribeFocus();
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
        setOverlay(what);
        return;
      }
      setStatus("disconnected, retrying…", false);
      setOverlay(state.loaded ? "reconnecting…" : "connecting…");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  // attached after the first view is set, so opening the page leaves its URL as it was
  map.on("moveend", () => {
    clearTimeout(moveTimer);
    moveTimer = setTimeout(subscribeView, 150);
    writeHash();
  });
  if (initial.truck) select(initial.truck, !initial.view);
  // a hash edited by hand (or a pasted link in the same tab) moves the page too
  window.addEventListener("hashchange", () => {
    const h = readHash();
    if (h.view) map.setView(h.view.center, h.view.zoom);
    if (h.truck !== state.selected) select(h.truck, !h.view);
  });
  connect();
})();
