//! The stylesheet and script every page loads, served from the binary.

use axum::response::{IntoResponse, Response};

use super::*;

pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

pub(super) const STYLE: &str = r#"
:root { --fg: #1d2330; --muted: #5b6577; --line: #d9dde5; --bg: #f7f8fa; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
nav { display: flex; flex-wrap: wrap; gap: .4rem 1rem; align-items: center; padding: .6rem 1.2rem; background: #1d2330; color: #fff; }
nav a, nav .brand { color: #fff; font-weight: 700; text-decoration: none; }
nav a:not(.brand) { font-weight: 400; }
nav .who { margin-left: auto; }
nav form { margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
a { color: var(--accent); }
button, .button { font: inherit; padding: .35rem .8rem; border: 1px solid var(--line); border-radius: 4px; background: #fff; color: var(--fg); cursor: pointer; text-decoration: none; display: inline-block; }
button:focus-visible, a:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid #7aa7ff; outline-offset: 1px; }
#sync { background: var(--accent); color: #fff; border-color: var(--accent); }
button:disabled { opacity: .5; cursor: not-allowed; }
.filters, .sync, .actions form, .login { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; margin: .6rem 0; }
.login { flex-direction: column; align-items: stretch; max-width: 22rem; }
label { display: inline-flex; flex-direction: column; font-size: .85rem; color: var(--muted); gap: .15rem; }
.sync label:has(input[type=checkbox]) { flex-direction: row; align-items: center; }
input, select { font: inherit; padding: .3rem .4rem; border: 1px solid var(--line); border-radius: 4px; }
table { width: 100%; border-collapse: collapse; background: #fff; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
.badge { display: inline-block; min-width: 6.5rem; text-align: center; padding: .05rem .4rem; border-radius: 3px; font-size: .8rem; font-weight: 600; background: #e6e8ee; }
.sync-synced, .health-healthy { background: #d7f2df; color: #11602a; }
.sync-outofsync { background: #fde7c7; color: #7a4300; }
.health-degraded, .health-missing { background: #fbd9d9; color: #8a1414; }
.health-progressing { background: #dbe8fb; color: #17457f; }
.tiles { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .8rem; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .7rem; display: flex; flex-direction: column; gap: .35rem; }
.summary dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; background: #fff; padding: .8rem; border: 1px solid var(--line); border-radius: 6px; }
.summary dt { color: var(--muted); }
.summary dd { margin: 0; min-height: 1.4em; }
.actions { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; margin: 1rem 0; }
.tree, .tree ul { list-style: none; padding-left: 1.2rem; }
.tree li { padding: .15rem 0; }
.tree li.leaf { padding-left: 1.1rem; }
.tree summary { cursor: pointer; }
.tree details > ul { list-style: none; padding-left: 1.6rem; }
.kind { color: var(--muted); font-size: .85rem; min-width: 7rem; display: inline-block; }
.diff pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow-x: auto; font-size: .85rem; }
.diff pre .add { color: #11602a; background: #eafbef; display: block; }
.diff pre .del { color: #8a1414; background: #fdeeee; display: block; }
.diff pre .hunk { color: #6b4fbb; display: block; }
.diff pre .ctx { display: block; }
.y-key { color: #1f4f99; }
.y-str { color: #11602a; }
.y-num, .y-lit { color: #8a3d00; }
.y-comment { color: #6b7280; font-style: italic; }
.y-punct { color: #6b7280; }
.split-wrap { overflow-x: auto; }
table.split { table-layout: fixed; font: .8rem/1.4 ui-monospace, monospace; border: 1px solid var(--line); }
table.split th { font-family: system-ui, sans-serif; }
table.split td { padding: 0 .5rem; border: 0; white-space: pre-wrap; word-break: break-all; }
table.split td.del { background: #fdeeee; }
table.split td.add { background: #eafbef; }
table.split td.none { background: #f1f2f5; }
table.split tr.hunk td { color: #6b4fbb; background: #f6f3fd; }
.progress-box { height: 14rem; overflow: auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5rem .8rem; }
.progress-box p { margin: 0 0 .4rem; }
.waves { list-style: none; padding: 0; margin: 0 0 .5rem; display: flex; flex-wrap: wrap; gap: .3rem 1.5rem; font-size: .85rem; }
.waves .wave { display: inline-block; min-width: 8rem; }
.waves li.current .wave { font-weight: 700; }
table.results { font-size: .8rem; }
table.results td, table.results th { padding: .15rem .4rem; }
.commit { font-style: italic; }
.gone { opacity: .45; text-decoration: line-through; }
.error { color: #8a1414; }
.manifests { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; }
.manifests pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow-x: auto; font-size: .8rem; max-height: 32rem; }
.history form { margin: 0; }
details { flex-basis: 100%; }
fieldset { border: 1px solid var(--line); border-radius: 4px; margin: .4rem 0; display: flex; flex-wrap: wrap; gap: .3rem 1rem; }
label.choice { flex-direction: row; align-items: center; gap: .3rem; color: var(--fg); }
.danger { margin-top: 2rem; border-top: 1px solid var(--line); }
@media (max-width: 900px) { .manifests { grid-template-columns: 1fr; } }
.notice { background: #e8f0fe; padding: .4rem .6rem; border-radius: 4px; }
.crumbs { color: var(--muted); }
td, dd { overflow-wrap: anywhere; }
@media (max-width: 700px) {
  main { padding: .6rem .6rem 2rem; }
  nav { padding: .5rem .6rem; }
  th, td { padding: .3rem .35rem; }
  .badge { min-width: 0; }
  table.apps td:nth-child(2), table.apps th:nth-child(2), table.apps td:nth-child(5), table.apps th:nth-child(5), table.apps td:nth-child(6), table.apps th:nth-child(6) { display: none; }
  table.flat td:nth-child(2), table.flat th:nth-child(2), table.flat td:nth-child(6), table.flat th:nth-child(6) { display: none; }
  table.results td:nth-child(5), table.results th:nth-child(5) { display: none; }
  .summary dl { grid-template-columns: 1fr; }
  .summary dd { margin-bottom: .3rem; }
  .kind { min-width: 0; }
}
"#;

/// Live updates, text only so nothing moves: an application's summary
/// and sync progress follow the Application (polled from the API, every
/// second while a sync runs, every two otherwise; the resources are
/// redrawn when a sync ends); the list's badges follow the event stream
/// and its counts are fetched again after a change. Pages work without
/// it.
pub(super) const SCRIPT: &str = r#"
(function () {
  'use strict';
  function pick(obj, path) {
    return path.split('.').reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function setBadge(b, kind, value) {
    value = value || 'Unknown';
    if (b.textContent === value) return false;
    b.textContent = value;
    b.className = 'badge ' + kind + '-' + value.toLowerCase();
    return true;
  }
  var lastProgress = null;
  function drawProgress(op) {
    // Unchanged: nothing redrawn (nor announced again to screen readers).
    var seen = JSON.stringify(op || null);
    if (seen === lastProgress) return;
    lastProgress = seen;
    var head = document.getElementById('progress-head');
    var waves = document.getElementById('progress-waves');
    var results = document.getElementById('progress-results');
    if (!head || !waves || !results || !op) return;
    var h = el('p'); h.id = 'progress-head';
    h.appendChild(el('strong', op.phase || ''));
    h.appendChild(document.createTextNode(' ' + (op.message || '')));
    head.replaceWith(h);
    var now = op.berth && op.berth.progress;
    var ol = el('ol', null, 'waves'); ol.id = 'progress-waves';
    ((now && now.groups) || []).forEach(function (g) {
      var li = el('li');
      if (op.phase === 'Running' && g.phase === now.phase && g.wave === now.wave) li.className = 'current';
      li.appendChild(el('span', g.phase + ' \u00b7 wave ' + g.wave, 'wave'));
      li.appendChild(document.createTextNode(' '));
      var bar = document.createElement('progress'); bar.max = g.total; bar.value = g.done;
      li.appendChild(bar);
      li.appendChild(document.createTextNode(' '));
      li.appendChild(el('span', g.done + ' of ' + g.total));
      ol.appendChild(li);
    });
    waves.replaceWith(ol);
    var rows = ((op.syncResult && op.syncResult.resources) || []).slice(-50).reverse();
    var tb = el('tbody'); tb.id = 'progress-results';
    rows.forEach(function (r) {
      var tr = el('tr');
      [r.kind, r.name, r.syncPhase, r.status, r.message].forEach(function (t) { tr.appendChild(el('td', t == null ? '' : String(t))); });
      tb.appendChild(tr);
    });
    results.replaceWith(tb);
  }
  function redrawResources() {
    fetch(location.href, { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
      if (!html) return;
      var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('resources');
      var old = document.getElementById('resources');
      if (fresh && old) old.replaceWith(fresh);
    }).catch(function () {});
  }
  var live = document.querySelector('[data-live]');
  if (live) {
    var url = live.getAttribute('data-live');
    var wasRunning = false;
    var tick = function () {
      var running = false;
      fetch(url, { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.json() : null; }).then(function (app) {
        if (!app) return;
        live.querySelectorAll('[data-field]').forEach(function (f) {
          var v = pick(app, f.getAttribute('data-field'));
          var t = v == null ? '' : String(v);
          if (f.textContent !== t) f.textContent = t;
        });
        var op = pick(app, 'status.operationState');
        running = !!op && op.phase === 'Running';
        drawProgress(op);
        if (wasRunning && !running) redrawResources();
        wasRunning = running;
      }).catch(function () {}).finally(function () { setTimeout(tick, running ? 1000 : 2000); });
    };
    setTimeout(tick, 1000);
  }
  var list = document.querySelector('[data-stream]');
  if (list && window.EventSource) {
    var countsDue = null;
    var refreshCounts = function () {
      countsDue = null;
      fetch('/ui/counts', { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.text() : null; }).then(function (h) {
        var c = document.getElementById('counts');
        if (h != null && c) c.innerHTML = h;
      }).catch(function () {});
    };
    var source = new EventSource(list.getAttribute('data-stream'));
    source.onmessage = function (e) {
      var msg;
      try { msg = JSON.parse(e.data).result; } catch (x) { return; }
      var a = msg && msg.application;
      if (!a || !a.metadata) return;
      var row = list.querySelector('[data-key="' + CSS.escape(a.metadata.namespace + '/' + a.metadata.name) + '"]');
      if (!row) return;
      var badges = row.querySelectorAll('.badge');
      if (badges.length < 2) return;
      var changed = setBadge(badges[0], 'sync', pick(a, 'status.sync.status'));
      changed = setBadge(badges[1], 'health', pick(a, 'status.health.status')) || changed;
      if (msg.type === 'DELETED') { row.classList.add('gone'); changed = true; }
      if (changed && !countsDue) countsDue = setTimeout(refreshCounts, 1500);
    };
  }
})();
"#;
