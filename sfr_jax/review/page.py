"""The review server's pages: the index of videos and one review page (static HTML + JavaScript that reads
and writes through the server's JSON API, and re-reads the state after every write)."""
from __future__ import annotations

import html
import json
import urllib.parse

KEYS = [("j / k", "next / previous event"), ("a", "accept"), ("r", "reject"),
        ("l", "relabel to the class chosen beside it (focus the list; Enter saves)"),
        ("s / e", "set the start / end field to the video's time"), ("m", "move to the start / end fields"),
        ("[ / ]", "set the new defect's start / end to the video's time"), ("n", "add the new defect"),
        ("f", "mark the whole video reviewed (or not)")]


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def index(videos: list) -> str:
    rows = []
    for v in videos:
        link = f'<a href="/review/{urllib.parse.quote(v["video"])}">{_e(v["video"])}</a>'
        if "error" in v:
            rows.append(f"<tr><td>{link}</td><td colspan=4>{_e(v['error'])}</td></tr>")
            continue
        rows.append(f"<tr><td>{link}</td><td>{v['events']}</td><td>{v['pending']}</td><td>{v['decisions']}</td>"
                    f"<td>{'yes' if v['fully_reviewed'] else 'no'}</td></tr>")
    body = "\n".join(rows) or "<tr><td colspan=5>no inspected video here (no events.json)</td></tr>"
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>sfr-jax review</title>
<style>{_STYLE}</style></head><body><h1>Review</h1>
<table><thead><tr><th>video</th><th>events</th><th>pending</th><th>decisions</th><th>fully reviewed</th></tr></thead>
<tbody>{body}</tbody></table></body></html>"""


def review(video: str) -> str:
    keys = "".join(f"<tr><td><kbd>{_e(k)}</kbd></td><td>{_e(v)}</td></tr>" for k, v in KEYS)
    quoted = urllib.parse.quote(video)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(video)}: review</title>
<style>{_STYLE}</style></head><body>
<h1>{_e(video)} <small><a href="/">all videos</a> &middot; <a href="/files/{quoted}/report.html">static report</a></small></h1>
<p id="status" class="note">loading&hellip;</p>
<div class="cols"><div>
<video id="video" controls preload="metadata" width="480"></video><p id="video-note" class="note"></p>
<div id="current" class="box"><h2>Event <span id="cur-key"></span></h2><p id="cur-desc"></p>
<button id="accept" title="a">Accept (a)</button> <button id="reject" title="r">Reject (r)</button>
<p><select id="relabel-class"></select> <button id="relabel" title="l">Relabel (l)</button></p>
<p>start <input id="move-start" type="number" step="0.1" size="6"> end <input id="move-end" type="number" step="0.1" size="6">
<button id="move" title="m">Move (m)</button></p></div>
<div class="box"><h2>Add a missed defect</h2>
<p><select id="add-class"></select> start <input id="add-start" type="number" step="0.1" size="6">
end <input id="add-end" type="number" step="0.1" size="6"> <button id="add" title="n">Add (n)</button></p></div>
<p><label><input id="reviewed" type="checkbox"> the whole video is reviewed (f): time outside the events is normal</label></p>
<table class="keys">{keys}</table>
</div><div><h2>Queue <small>(tier, then closeness to the threshold)</small></h2>
<table id="queue"><thead><tr><th>#</th><th>class</th><th>start</th><th>end</th><th>tier</th><th>peak</th><th>verdict</th></tr></thead>
<tbody></tbody></table></div></div>
<script>const VIDEO = {json.dumps(video)};
{_SCRIPT}</script></body></html>"""


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 20px; color: #222; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left; }
.cols { display: flex; gap: 24px; } .box { border: 1px solid #ccc; padding: 4px 12px; margin: 8px 0; }
tr.selected { background: #fdebd0; } tr.event { cursor: pointer; }
.verdict-accepted, .verdict-relabelled, .verdict-added { color: #1e8449; } .verdict-rejected { color: #a93226; }
.note { color: #666; } h1 small, h2 small { font-weight: normal; font-size: 60%; }
"""

_SCRIPT = r"""
const ENC = encodeURIComponent(VIDEO);
let state = null, selected = null;
const $ = (id) => document.getElementById(id);
function fmt(t) { return t === null || t === undefined ? '' : Number(t).toFixed(1); }
async function load() {
  const r = await fetch('/api/state/' + ENC, {credentials: 'same-origin'});
  if (!r.ok) { $('status').textContent = 'error ' + r.status + ': ' + (await r.text()); return; }
  state = await r.json();
  render();
}
function current() { return state.events.find(e => e.key === selected); }
function render() {
  const body = $('queue').tBodies[0];
  body.innerHTML = '';
  if (selected === null || !state.events.some(e => e.key === selected)) {
    const next = state.events.find(e => e.verdict === 'pending') || state.events[0];
    selected = next ? next.key : null;
  }
  for (const e of state.events) {
    const tr = document.createElement('tr');
    tr.className = 'event' + (e.key === selected ? ' selected' : '');
    tr.dataset.key = e.key;
    const cells = [e.key, e.class + (e.model_class && e.model_class !== e.class ? ' (was ' + e.model_class + ')' : ''),
                   fmt(e.start_s), fmt(e.end_s), e.tier || '', e.peak_probability === null ? '' :
                   Number(e.peak_probability).toFixed(3), e.verdict];
    cells.forEach((text, i) => { const td = document.createElement('td'); td.textContent = text;
      if (i === 6) td.className = 'verdict-' + e.verdict; tr.appendChild(td); });
    tr.addEventListener('click', () => select(e.key, true));
    body.appendChild(tr);
  }
  for (const id of ['relabel-class', 'add-class']) {
    const sel = $(id), keep = sel.value;
    sel.innerHTML = '';
    for (const c of state.classes) { const o = document.createElement('option'); o.value = c; o.textContent = c; sel.appendChild(o); }
    if (keep) sel.value = keep;
  }
  $('reviewed').checked = state.fully_reviewed;
  const pending = state.events.filter(e => e.verdict === 'pending').length;
  $('status').textContent = state.events.length + ' events, ' + pending + ' pending, ' + state.decisions +
      ' decisions saved' + (state.fully_reviewed ? ', fully reviewed' : '') + '. ' + (state.tiers || '');
  const e = current();
  $('cur-key').textContent = e ? e.key : '(none)';
  $('cur-desc').textContent = e ? e.class + ' ' + fmt(e.start_s) + '-' + fmt(e.end_s) + ' s, ' + e.verdict : '';
  if (e && document.activeElement !== $('move-start') && document.activeElement !== $('move-end')) {
    $('move-start').value = fmt(e.start_s); $('move-end').value = fmt(e.end_s);
  }
  if (!state.has_video) $('video-note').textContent = 'The video is not where inspect read it.';
}
function select(key, seek) {
  selected = key; render();
  const e = current();
  if (seek && e && state.has_video) { try { $('video').currentTime = e.start_s; } catch (err) {} }
}
function step(delta) {
  if (!state.events.length) return;
  let i = state.events.findIndex(e => e.key === selected);
  i = Math.min(Math.max(i + delta, 0), state.events.length - 1);
  select(state.events[i].key, true);
}
async function decide(decision) {
  const r = await fetch('/api/decide/' + ENC, {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify(decision)});
  if (!r.ok) { $('status').textContent = 'not saved: ' + (await r.json()).error; await load(); return null; }
  const answer = await r.json();
  // Re-read what the server now holds (another tab may have written meanwhile).
  await load();
  return answer.stored;
}
const onEvent = (action, extra) => { const e = current(); if (e) return decide(Object.assign({action, event: e.key}, extra || {})); };
async function accept() { await onEvent('accept'); step(1); }
async function reject() { await onEvent('reject'); step(1); }
function relabel() { return onEvent('relabel', {class: $('relabel-class').value}); }
function move() { return onEvent('move', {start_s: parseFloat($('move-start').value), end_s: parseFloat($('move-end').value)}); }
async function add() {
  const stored = await decide({action: 'add', class: $('add-class').value,
      start_s: parseFloat($('add-start').value), end_s: parseFloat($('add-end').value)});
  if (stored) select('+' + stored.seq, false);
}
function reviewed(value) { return decide({action: 'reviewed', value}); }
function now() { return Math.round($('video').currentTime * 10) / 10; }
$('accept').onclick = accept; $('reject').onclick = reject; $('relabel').onclick = relabel;
$('move').onclick = move; $('add').onclick = add;
$('reviewed').onchange = (ev) => reviewed(ev.target.checked);
for (const id of ['move-start', 'move-end']) $(id).addEventListener('keydown', (ev) => { if (ev.key === 'Enter') move(); });
for (const id of ['add-start', 'add-end']) $(id).addEventListener('keydown', (ev) => { if (ev.key === 'Enter') add(); });
$('relabel-class').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); relabel(); $('relabel-class').blur(); } });
document.addEventListener('keydown', (ev) => {
  const tag = document.activeElement ? document.activeElement.tagName : '';
  if (tag === 'INPUT' || tag === 'SELECT' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const act = {j: () => step(1), k: () => step(-1), a: accept, r: reject, l: () => $('relabel-class').focus(),
    m: move, n: add, f: () => reviewed(!state.fully_reviewed),
    s: () => { $('move-start').value = now(); }, e: () => { $('move-end').value = now(); },
    '[': () => { $('add-start').value = now(); }, ']': () => { $('add-end').value = now(); }}[ev.key];
  if (act) { ev.preventDefault(); act(); }
});
$('video').src = '/video/' + ENC;
load();
"""
