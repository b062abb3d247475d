"""report.html: one self-contained page per video (no network): a timeline per class, the events table with
key-frame thumbnails, and links that seek an embedded <video> to each event.

Timelines are inline SVG: the probability over time (thin), the smoothed probability the events were found
on (bold), the class's threshold (dashed), events shaded, flagged frames ticked below. Long videos are
drawn at most MAX_POINTS points per line, each the maximum of its stretch, so that no peak disappears.
Thumbnails are base64 JPEGs in the page; where the scorer gave heatmaps, each key frame also comes with its
class's heatmap laid over it, shown instead of the plain frame by the "heatmaps" toggle (or the URL's #heatmaps),
and the events table gives the clock position the map points at. The <video> element refers to the video by a path relative to the
report, so it plays while the report and the video keep their places (or sit side by side); clicking a
timeline or an event's time seeks it. Every text from outside (names, paths, messages, codes) is escaped.
"""
from __future__ import annotations

import base64
import dataclasses
import html

import numpy as np

MAX_POINTS = 1500
WIDTH, HEIGHT, PAD = 960, 64, 4


@dataclasses.dataclass
class ReportData:
    """What the page shows about one video."""

    name: str
    source: str
    status: str
    message: str
    duration_s: float
    codes: tuple
    thresholds: np.ndarray  # [c]
    times: np.ndarray  # [N]
    probabilities: np.ndarray  # [N, c]
    smoothed: np.ndarray  # [N, c], NaN at flagged samples
    flagged: np.ndarray  # [N] bool
    flag_counts: dict
    events: list
    thumbnails: dict  # event index -> JPEG bytes
    settings: dict  # shown as given: sampling, decisions, events, quality, distance
    video_src: str | None = None
    confident: np.ndarray | None = None  # [c] the confident tier's thresholds (inf: never); None: one tier
    heatmaps: dict = dataclasses.field(default_factory=dict)  # event index -> JPEG of the key frame + its map


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "&ndash;"
    return f"{value:.{digits}f}{unit}"


def _metres(value, source: str) -> str:
    """A distance with where it came from (ocr, interpolated, sidecar, length) in small type."""
    return _num(value, 2, " m") + (f' <small class="source">{_e(source)}</small>' if source and value is not None
                                   else "")


def clock(seconds: float) -> str:
    """H:MM:SS.s of a time in seconds."""
    if seconds is None:
        return ""
    hours, rest = divmod(float(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours)}:{int(minutes):02d}:{secs:04.1f}"


def envelope(times: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS) -> tuple:
    """(times, values) with at most max_points points: each stretch's first time and its maximum."""
    n = len(times)
    if n <= max_points:
        return times, values
    edges = np.linspace(0, n, max_points + 1).astype(int)
    starts = edges[:-1]
    with np.errstate(all="ignore"):
        peaks = np.array([np.nanmax(values[a:b]) if np.isfinite(values[a:b]).any() else np.nan
                          for a, b in zip(starts, edges[1:])])
    return times[starts], peaks


def _x(t, duration):
    return PAD + (WIDTH - 2 * PAD) * (t / duration if duration > 0 else 0.0)


def _y(p):
    return PAD + (HEIGHT - 2 * PAD) * (1.0 - p)


def _polyline(times, values, duration, css) -> str:
    """An SVG path through the finite points; NaN breaks the line."""
    parts, pen_down = [], False
    for t, v in zip(times, values):
        if not np.isfinite(v):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{_x(t, duration):.1f},{_y(v):.1f}")
        pen_down = True
    return f'<path class="{css}" d="{" ".join(parts)}"/>' if parts else ""


def _span(data: ReportData) -> float:
    """Seconds the timelines cover: the duration, or the last sample's time when that is later."""
    return max(float(data.duration_s or 0.0), float(data.times[-1]) if len(data.times) else 0.0, 1e-9)


def timeline(data: ReportData, c: int) -> str:
    """The SVG timeline of class index c."""
    duration = _span(data)
    code = data.codes[c]
    shapes = []
    for number, event in enumerate(data.events):
        if event.code != code:
            continue
        x0, x1 = _x(event.start_s, duration), _x(event.end_s, duration)
        shapes.append(f'<a href="#event-{number + 1}"><rect class="event {event.kind}" x="{x0:.1f}" y="0" '
                      f'width="{max(x1 - x0, 3):.1f}" height="{HEIGHT}"><title>{_e(code)} {_e(event.kind)} '
                      f'{clock(event.start_s)}&ndash;{clock(event.end_s)}, peak {event.peak_probability:.2f}'
                      f'</title></rect></a>')
    threshold = float(data.thresholds[c])
    shapes.append(f'<line class="threshold" x1="{PAD}" x2="{WIDTH - PAD}" y1="{_y(threshold):.1f}" '
                  f'y2="{_y(threshold):.1f}"/>')
    if data.confident is not None and np.isfinite(data.confident[c]) and data.confident[c] <= 1:
        sure = float(data.confident[c])
        shapes.append(f'<line class="confident" x1="{PAD}" x2="{WIDTH - PAD}" y1="{_y(sure):.1f}" '
                      f'y2="{_y(sure):.1f}"/>')
    raw_t, raw_v = envelope(data.times, data.probabilities[:, c])
    smooth_t, smooth_v = envelope(data.times, data.smoothed[:, c])
    shapes.append(_polyline(raw_t, raw_v, duration, "raw"))
    shapes.append(_polyline(smooth_t, smooth_v, duration, "smooth"))
    flagged_t, flagged_v = envelope(data.times, data.flagged.astype(np.float64))
    ticks = [f"M{_x(t, duration):.1f},{HEIGHT - 1} v-4" for t, v in zip(flagged_t, flagged_v) if v > 0]
    if ticks:
        shapes.append(f'<path class="flagged" d="{" ".join(ticks)}"/>')
    return (f'<svg class="timeline" data-class="{_e(code)}" data-duration="{duration:.3f}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
            f'aria-label="{_e(code)} probability over time">{"".join(shapes)}</svg>')


def _tick_step(duration: float) -> float:
    """A round tick spacing giving at most about 10 ticks over `duration` seconds."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if duration / step <= 10:
            return step
    return 3600 * 4


def axis(duration: float) -> str:
    """An SVG time axis matching the timelines: ticks and H:MM:SS labels."""
    step = _tick_step(duration)
    parts = []
    for k in range(int(duration / step) + 1):
        t = k * step
        x = _x(t, duration)
        label = clock(t)[:-2] if step >= 1 else clock(t)
        anchor = "start" if k == 0 else ("end" if x > WIDTH - 30 else "middle")
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="5"/>'
                     f'<text x="{x:.1f}" y="16" text-anchor="{anchor}">{label}</text>')
    return (f'<svg class="axis" viewBox="0 0 {WIDTH} 20" width="{WIDTH}" height="20">'
            f'{"".join(parts)}</svg>')


def _jpeg(css: str, alt: str, jpeg: bytes | None) -> str:
    return (f'<img alt="{_e(alt)}" class="{css}" src="data:image/jpeg;base64,'
            f'{base64.b64encode(jpeg).decode("ascii")}">' if jpeg else "")


def clock_span(event) -> str:
    """The event's clock position: '3', '2-4' (from-to, clockwise) or '' when unknown."""
    if event.clock is None:
        return ""
    return str(event.clock) if event.clock_from == event.clock_to else f"{event.clock_from}-{event.clock_to}"


def _event_rows(data: ReportData, has_video: bool) -> str:
    rows = []
    for number, event in enumerate(data.events):
        image = _jpeg("frame", f"key frame at {clock(event.peak_s)}", data.thumbnails.get(number)) + \
            _jpeg("heatmap", f"{event.code} heatmap at {clock(event.peak_s)}", data.heatmaps.get(number))
        seek = (lambda t, text: f'<a href="#t={t:.3f}" onclick="return seek({t:.3f})">{text}</a>') if has_video \
            else (lambda t, text: text)
        css = ' class="has-map"' if number in data.heatmaps else ""
        codes = ", ".join(f"{standard} {code}" for standard, code in event.standard_codes.items())
        rows.append(
            f'<tr id="event-{number + 1}"{css}><td>{number + 1}</td><td class="code">{_e(event.code)}</td>'
            f'<td>{_e(codes)}</td><td>{_e(event.kind)}</td><td>{seek(event.start_s, clock(event.start_s))}</td>'
            f'<td>{seek(event.end_s, clock(event.end_s))}</td><td>{_num(event.duration_s, 1, " s")}</td>'
            f'<td>{_metres(event.start_m, event.start_m_source)}</td>'
            f'<td>{_metres(event.end_m, event.end_m_source)}</td>'
            f'<td>{event.peak_probability:.3f}</td><td>{seek(event.peak_s, clock(event.peak_s))}</td>'
            f'<td class="tier-{_e(event.tier)}">{_e(event.tier)}</td><td>{clock_span(event)}</td><td>{image}</td></tr>')
    if not rows:
        rows.append('<tr><td colspan="14" class="none">no events</td></tr>')
    return "\n".join(rows)


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.meta td { padding: 1px 12px 1px 0; vertical-align: top; } .meta td:first-child { color: #666; }
.status-ok { color: #17692b; } .status-bad { color: #a8200d; font-weight: 600; }
video { max-width: 720px; width: 100%; background: #000; display: block; }
.timelines td { padding: 2px 8px 2px 0; vertical-align: middle; }
.timelines td.code { font-weight: 600; width: 48px; }
svg.timeline { background: #f7f7f7; border: 1px solid #ddd; cursor: pointer; }
svg .raw { fill: none; stroke: #7aa6d6; stroke-width: 1; }
svg .smooth { fill: none; stroke: #1f4f8a; stroke-width: 2; }
svg .threshold { stroke: #c0392b; stroke-width: 1; stroke-dasharray: 5 4; }
svg .confident { stroke: #1e8449; stroke-width: 1; stroke-dasharray: 2 3; }
td.tier-confident { color: #1e8449; font-weight: 600; }
svg .event { fill: #f4b942; fill-opacity: 0.45; } svg .event.point { fill: #e0742c; fill-opacity: 0.7; }
svg .flagged { stroke: #555; stroke-width: 1; }
svg.axis line { stroke: #888; } svg.axis text { font-size: 11px; fill: #555; }
table.events { border-collapse: collapse; } .events th, .events td { border-bottom: 1px solid #ddd;
  padding: 4px 8px; text-align: left; vertical-align: middle; }
.events img { width: 160px; display: block; } .none { color: #666; } .note { color: #666; } .source { color: #666; }
.events img.heatmap { display: none; } body.show-maps .events img.heatmap { display: block; }
body.show-maps .events tr.has-map img.frame { display: none; }
"""

_SCRIPT = """
function seek(t) {
  var v = document.getElementById('video');
  if (!v) { return true; }
  v.currentTime = t; v.scrollIntoView({block: 'nearest'});
  var p = v.play(); if (p && p.catch) { p.catch(function () {}); }
  return false;
}
document.querySelectorAll('svg.timeline').forEach(function (svg) {
  svg.addEventListener('click', function (ev) {
    if (ev.target.closest('a')) { return; }
    var box = svg.getBoundingClientRect(), d = parseFloat(svg.dataset.duration);
    var f = (ev.clientX - box.left) / box.width * %(width)d;
    seek(Math.max(0, (f - %(pad)d) / (%(width)d - 2 * %(pad)d)) * d);
  });
});
var mapToggle = document.getElementById('show-maps');
function showMaps(on) { document.body.classList.toggle('show-maps', on); if (mapToggle) { mapToggle.checked = on; } }
if (mapToggle) {
  mapToggle.addEventListener('change', function () { showMaps(mapToggle.checked); });
  if (location.hash === '#heatmaps') { showMaps(true); }
}
var video = document.getElementById('video');
if (video) { video.addEventListener('error', function () {
  document.getElementById('video-note').textContent =
    'The video could not be played from ' + video.getAttribute('src') +
    ' (moved, or a format this browser cannot play); the times in the table still hold.';
}, true); }
""" % {"width": WIDTH, "pad": PAD}


def render(data: ReportData) -> str:
    """The whole page as a string."""
    ok = data.status == "ok"
    status = f'<span class="status-{"ok" if ok else "bad"}">{_e(data.status)}</span>'
    if data.message:
        status += f" &mdash; {_e(data.message)}"
    flagged = ", ".join(f"{_e(k)} {v}" for k, v in data.flag_counts.items() if v) or "none"
    meta = [("source", _e(data.source)), ("status", status), ("duration", clock(data.duration_s)),
            ("samples", f"{len(data.times)} ({int(np.sum(data.flagged))} flagged: {flagged})"),
            ("events", str(len(data.events)))]
    meta += [(_e(key), _e(value)) for key, value in data.settings.items()]
    if data.video_src:
        player = (f'<video id="video" controls preload="metadata" src="{_e(data.video_src)}"></video>'
                  '<p id="video-note" class="note"></p>')
    else:
        player = '<p class="note">No playable video beside this report (a frame folder, or the video is gone).</p>'
    lines = "\n".join(f'<tr><td class="code">{_e(code)}</td><td>{timeline(data, c)}</td></tr>'
                      for c, code in enumerate(data.codes))
    lines += f'\n<tr><td></td><td>{axis(_span(data))}</td></tr>'
    header = ("<tr><th>#</th><th>class</th><th>standard codes</th><th>kind</th><th>start</th><th>end</th><th>duration</th>"
              "<th>start m</th><th>end m</th><th>peak</th><th>peak at</th><th>tier</th><th>clock</th><th>key frame</th></tr>")
    toggle = ('<p><label><input type="checkbox" id="show-maps"> heatmaps: show where the model looked in each key '
              'frame (MEF\'s patch affinities of the event\'s class, bright = most)</label></p>'
              if data.heatmaps else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(data.name)}: sfr-jax inspect</title>
<style>{_STYLE}</style></head>
<body>
<h1>{_e(data.name)}</h1>
<table class="meta">{"".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in meta)}</table>
{player}
<h2>Timelines</h2>
<p class="note">Probability over time per class (thin: per frame, bold: smoothed), the threshold dashed (red; the
confident tier's dotted green, when calibrated with tiers: an event whose peak reaches it is `confident`), events
shaded (darker: point observations), flagged frames ticked at the bottom. Click to seek the video.</p>
<table class="timelines">{lines}</table>
<h2>Events</h2>
{toggle}
<table class="events"><thead>{header}</thead><tbody>
{_event_rows(data, bool(data.video_src))}
</tbody></table>
<script>{_SCRIPT}</script>
</body></html>
"""
