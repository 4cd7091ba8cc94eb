// The topology page: one HTML document and one script, compiled into the executable as strings.
// The script draws with cytoscape (served from /vendor/, never a CDN), fetches nothing but
// /api/events, and keeps node positions across updates (only elements that come or go change).
// It exposes `window.__trellisTopology` (the last snapshot) and `window.__cy` (the graph), which
// the page test reads to check what is drawn.

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Trellis topology</title>
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 0; display: grid; grid-template-columns: 1fr 420px; height: 100vh; color: #222; }
  #graph { border-right: 1px solid #ccc; min-height: 400px; }
  aside { overflow: auto; padding: 8px 12px; }
  h1 { font-size: 16px; margin: 4px 0 8px; }
  h2 { font-size: 13px; margin: 14px 0 4px; text-transform: uppercase; color: #555; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: 2px 4px; border-bottom: 1px solid #eee; vertical-align: top; }
  .bad { color: #b00020; font-weight: 600; }
  .warn { color: #b26a00; font-weight: 600; }
  .muted { color: #777; }
  .label { display: inline-block; background: #eef; border-radius: 3px; padding: 0 4px; margin: 1px; font-size: 11px; }
  #conn { float: right; font-size: 11px; }
</style>
</head>
<body>
<div id="graph"></div>
<aside>
  <h1>Trellis topology <span id="conn" class="muted">connecting…</span></h1>
  <div id="network"></div>
  <h2>Links needing attention</h2><div id="problems"></div>
  <h2>Nodes</h2><div id="nodes"></div>
  <h2>Pods</h2><div id="pods"></div>
  <h2>BGP</h2><div id="bgp"></div>
  <h2>Policy drops (recent)</h2><div id="drops"></div>
  <p class="muted">Legend: green = programmed in the reporting node's kernel, orange = pending, red dashed = unreachable, grey = no kernel report. One arrow per direction, as each node reports it.</p>
</aside>
<script src="/vendor/cytoscape.min.js"></script>
<script src="/app.js"></script>
</body>
</html>
`;

export const PAGE_JS = String.raw`"use strict";
(function () {
  var COLORS = { ok: "#2e7d32", pending: "#ef6c00", unreachable: "#c62828", unknown: "#9e9e9e" };
  var AGENT = { ready: "#c8e6c9", starting: "#fff3c4", waiting: "#fff3c4", stopped: "#ffcdd2", "not renewing": "#ffcdd2", unknown: "#eeeeee" };
  var cy = cytoscape({
    container: document.getElementById("graph"),
    wheelSensitivity: 0.3,
    style: [
      { selector: "node.node", style: { shape: "round-rectangle", width: 150, height: 70, "background-color": "data(color)", "border-width": 1, "border-color": "#555",
        label: "data(label)", "text-wrap": "wrap", "text-valign": "center", "font-size": 11 } },
      { selector: "node.pod", style: { shape: "ellipse", width: 14, height: 14, "background-color": "#90caf9", label: "data(label)", "font-size": 9, "text-valign": "bottom", "text-wrap": "wrap" } },
      { selector: "edge.link", style: { width: 2, "curve-style": "bezier", "target-arrow-shape": "triangle", "line-color": "data(color)", "target-arrow-color": "data(color)",
        label: "data(label)", "font-size": 10, "text-rotation": "autorotate", "text-background-color": "#fff", "text-background-opacity": 0.8 } },
      { selector: "edge.link.unreachable", style: { "line-style": "dashed", width: 3 } },
      { selector: "edge.link.pending", style: { width: 3 } },
      { selector: "edge.attach", style: { width: 1, "line-color": "#bbb", "curve-style": "straight" } }
    ],
    elements: []
  });
  window.__cy = cy;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function table(headers, rows) {
    var t = el("table"), tr = el("tr");
    headers.forEach(function (h) { tr.appendChild(el("th", h)); });
    t.appendChild(tr);
    rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (c) { var td = el("td"); if (c instanceof Node) td.appendChild(c); else td.textContent = c; row.appendChild(td); });
      t.appendChild(row);
    });
    return t;
  }
  function labels(obj) {
    var span = el("span");
    var keys = Object.keys(obj || {}).sort();
    if (keys.length === 0) span.appendChild(el("span", "(no labels)", "muted"));
    keys.forEach(function (k) { span.appendChild(el("span", k + "=" + obj[k], "label")); });
    return span;
  }
  function fill(id, child) {
    var box = document.getElementById(id);
    box.textContent = "";
    box.appendChild(child);
  }

  function elements(t) {
    var out = [];
    t.nodes.forEach(function (n) {
      out.push({ group: "nodes", classes: "node", data: { id: "node:" + n.name, name: n.name, agent: n.agent, color: AGENT[n.agent] || "#eee",
        label: n.name + (n.routeReflector ? " (RR)" : "") + "\n" + n.subnet + "\n" + n.publicIp + "\nagent: " + n.agent } });
      n.pods.forEach(function (p) {
        var id = "pod:" + n.name + "/" + p.namespace + "/" + p.name;
        out.push({ group: "nodes", classes: "pod", data: { id: id, label: p.name + "\n" + p.ips.join(",") } });
        out.push({ group: "edges", classes: "attach", data: { id: "attach:" + id, source: "node:" + n.name, target: id } });
      });
    });
    t.links.forEach(function (l) {
      out.push({ group: "edges", classes: "link " + l.health, data: { id: "link:" + l.id, source: "node:" + l.from, target: "node:" + l.to,
        transport: l.transport, kernel: l.kernel || "", health: l.health, color: COLORS[l.health],
        label: l.transport + (l.health === "ok" ? "" : " (" + (l.reason ? "unreachable" : l.kernel || "no report") + ")") } });
    });
    return out;
  }

  function draw(t) {
    var want = elements(t), ids = {};
    want.forEach(function (e) { ids[e.data.id] = e; });
    var changed = false;
    cy.batch(function () {
      cy.elements().forEach(function (e) { if (!ids[e.id()]) { e.remove(); changed = true; } });
      want.forEach(function (e) {
        var have = cy.getElementById(e.data.id);
        if (have.length === 0) { cy.add(e); changed = true; }
        else { have.data(e.data); have.classes(e.classes); }
      });
    });
    if (changed) {
      cy.layout({ name: "concentric", concentric: function (n) { return n.hasClass("node") ? 2 : 1; }, levelWidth: function () { return 1; },
        minNodeSpacing: 40, animate: false }).run();
      cy.fit(undefined, 30);
    }
  }

  function panels(t) {
    var net = t.network;
    fill("network", net ? el("div", "pod network " + net.cidr + ", backend " + net.backend + ", blocks /" + net.subnetLen + ", pod MTU " + net.mtu)
      : el("div", "the network is not initialised", "bad"));
    var bad = t.links.filter(function (l) { return l.health === "unreachable" || l.health === "pending"; });
    fill("problems", bad.length === 0 ? el("div", "none: every reported link is programmed", "muted")
      : table(["from", "to", "transport", "state"], bad.map(function (l) {
        return [l.from, l.to, l.transport, el("span", l.health === "unreachable" ? "unreachable: " + (l.reason || "by configuration") : "not yet programmed in " + l.from + "'s kernel",
          l.health === "unreachable" ? "bad" : "warn")];
      })));
    fill("nodes", table(["node", "block", "address", "agent"], t.nodes.map(function (n) {
      return [n.name, n.subnet, n.publicIp, el("span", n.agentDetail, n.agent === "ready" ? "" : "bad")];
    })));
    var pods = [];
    t.nodes.forEach(function (n) { n.pods.forEach(function (p) { pods.push([n.name, p.namespace + "/" + p.name, p.ips.join(", "), labels(p.labels)]); }); });
    t.orphanPods.forEach(function (p) { pods.push([el("span", p.node + " (no lease)", "warn"), p.namespace + "/" + p.name, p.ips.join(", "), labels(p.labels)]); });
    fill("pods", pods.length ? table(["node", "pod", "IPs", "labels"], pods) : el("div", "no pods attached", "muted"));
    var sessions = [];
    t.nodes.forEach(function (n) {
      if (!n.bgp) return;
      if (n.bgp.sessions.length === 0) sessions.push([n.name, "-", "-", el("span", "no sessions", "muted")]);
      n.bgp.sessions.forEach(function (s) {
        sessions.push([n.name + " (AS " + n.bgp.asNumber + ")", s.peer + " " + s.peerIp, s.type, el("span", s.state + (s.lastError ? ": " + s.lastError : ""), s.state === "Established" ? "" : "bad")]);
      });
    });
    var bgp = el("div");
    bgp.appendChild(sessions.length ? table(["node", "peer", "type", "state"], sessions) : el("div", "no node reports BGP sessions (backend " + (net ? net.backend : "?") + ")", "muted"));
    if (t.bgpPeers.length) bgp.appendChild(table(["external peer", "address", "AS", "node"], t.bgpPeers.map(function (p) { return [p.name, p.peerIp, String(p.asNumber), p.node || "(selected nodes)"]; })));
    fill("bgp", bgp);
    var d = t.drops;
    if (d.rows.length === 0) fill("drops", el("div", d.note, "muted"));
    else {
      var box = el("div");
      box.appendChild(table(["node", "policy", "rule", "packets", "last seen"], d.rows.map(function (r) {
        return [r.node, r.policy, r.rule, String(r.packets), (r.agoSeconds + Math.round((Date.now() - receivedAt) / 1000)) + " s ago"];
      })));
      box.appendChild(el("div", "dropped by denying rules in the last " + d.seconds + " s, as each node's agent reports it (nft counters read every 10 s)", "muted"));
      fill("drops", box);
    }
  }

  // Ages in the drops panel count on between snapshots (the model's are as of the snapshot).
  var receivedAt = Date.now(), last;
  setInterval(function () { if (last && last.drops.rows.length) panels(last); }, 5000);

  function show(t) {
    receivedAt = Date.now();
    last = t;
    window.__trellisTopology = t;
    draw(t);
    panels(t);
    window.__trellisUpdates = (window.__trellisUpdates || 0) + 1;
  }

  var conn = document.getElementById("conn");
  var events = new EventSource("/api/events");
  events.addEventListener("topology", function (m) { show(JSON.parse(m.data)); conn.textContent = "live"; conn.className = "muted"; });
  events.onerror = function () { conn.textContent = "disconnected: retrying"; conn.className = "bad"; };
})();
`;
