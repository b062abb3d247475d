"""The review server: the inspect reports of one folder served on 127.0.0.1, with a page per video where a
person accepts, rejects, relabels, moves and adds events, each decision written at once to review.json.

The standard library's ThreadingHTTPServer: the server is one small module of routes, the page is static
HTML + JavaScript fetching JSON, and nothing needs a framework's routing, templates or sessions; no
dependency to pin or keep up, and it runs wherever Python does.

Routes (every path is checked to stay inside the reports folder; a video is a direct sub-folder with an
events.json):
    GET  /                        the videos, with how far their review has gone
    GET  /review/VIDEO            the review page
    GET  /api/state/VIDEO         the video's events (resolved, in queue order), classes, thresholds, flags
    POST /api/decide/VIDEO        one decision (JSON; sfr_jax.review.record): 200 once written, else 400
    GET  /files/VIDEO/PATH        a file of the video's report folder (report.html, thumbnails/...)
    GET  /video/VIDEO             the video events.json names as its source (HTTP ranges, for seeking)
With a token (given whenever --host is), every request must carry it: ?token=T (which also sets a
cookie), the X-Review-Token header or that cookie; without it: 403 and nothing changes.
"""
from __future__ import annotations

import hmac
import http.cookies
import http.server
import json
import mimetypes
import os
import re
import urllib.parse

from sfr_jax.errors import InputError
from sfr_jax.review import page, queue, record

MAX_BODY = 64 * 1024
COOKIE = "sfr_review_token"
_NAME = re.compile(r"^[^/\\\x00]+$")


class Refused(Exception):
    """A request answered with an error status and a one-line reason (nothing changed)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class Reviews:
    """The reports folder and what the server knows: the token (None: none needed) and the user's classes."""

    def __init__(self, root: str, token: str | None = None, classes=()):
        self.root = os.path.realpath(root)
        self.token = token
        self.classes = tuple(classes)

    def videos(self) -> list:
        names = sorted(n for n in os.listdir(self.root)
                       if os.path.isfile(os.path.join(self.root, n, record.EVENTS)))
        return names

    def folder(self, name: str) -> str:
        """The folder of video `name`, refused unless it is a direct sub-folder with an events.json."""
        name = urllib.parse.unquote(name)
        if not _NAME.match(name) or name in (".", ".."):
            raise Refused(404, f"no video {name!r} in the reports folder")
        folder = os.path.realpath(os.path.join(self.root, name))
        if os.path.dirname(folder) != self.root or not os.path.isfile(os.path.join(folder, record.EVENTS)):
            raise Refused(404, f"no video {name!r} in the reports folder")
        return folder

    def inside(self, base: str, relative: str) -> str:
        """base/relative when it resolves inside base (links followed), else 404."""
        path = os.path.realpath(os.path.join(base, urllib.parse.unquote(relative)))
        if os.path.commonpath([path, base]) != base or not os.path.isfile(path):
            raise Refused(404, f"no file {relative!r} in this report")
        return path

    def state(self, name: str) -> dict:
        folder = self.folder(name)
        events = record.read_events(folder)
        review = record.load(folder)
        resolved = queue.order(record.resolved(review, events), events)
        for event in resolved:
            event["closeness"] = _finite(queue.closeness(event, events))
        return {"video": os.path.basename(folder), "duration_s": events.get("duration_s"),
                "classes": record.allowed_classes(events, self.classes), "thresholds": events.get("thresholds"),
                "confident_thresholds": events.get("confident_thresholds"), "tiers": events.get("tiers"),
                "events": resolved, "decisions": len(review["decisions"]),
                "fully_reviewed": record.fully_reviewed(review), "has_video": self.video_path(folder) is not None}

    def decide(self, name: str, body: bytes) -> dict:
        folder = self.folder(name)
        try:
            decision = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise Refused(400, f"the decision is not JSON ({error})") from None
        try:
            stored = record.append(folder, decision, self.classes)
        except record.BadDecision as error:
            raise Refused(400, str(error)) from None
        return {"stored": stored, "state": self.state(name)}

    def video_path(self, folder: str) -> str | None:
        """The video the inspect run read (its events.json `source`), when it is a playable file."""
        source = record.read_events(folder).get("source")
        return source if isinstance(source, str) and os.path.isfile(source) else None

    def summary(self) -> list:
        out = []
        for name in self.videos():
            try:
                state = self.state(name)
            except InputError as error:
                out.append({"video": name, "error": str(error)})
                continue
            out.append({"video": name, "events": len(state["events"]), "decisions": state["decisions"],
                        "pending": sum(e["verdict"] == "pending" for e in state["events"]),
                        "fully_reviewed": state["fully_reviewed"]})
        return out


def _finite(value: float):
    return value if value != float("inf") else None


class Handler(http.server.BaseHTTPRequestHandler):
    """One request: token check, route, a JSON or file answer, or a refusal with its status."""

    server_version = "sfr-jax-review"
    reviews: Reviews  # set on the subclass the server is made with

    def log_message(self, format, *args):  # noqa: A002  (quiet: the console shows the URL, not each request)
        pass

    def do_GET(self):
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def _answer(self, route):
        try:
            url = urllib.parse.urlsplit(self.path)
            set_cookie = self._check_token(url)
            route(url.path, set_cookie)
        except Refused as refused:
            self._send(refused.status, json.dumps({"error": str(refused)}).encode(), "application/json")
        except InputError as error:
            self._send(400, json.dumps({"error": str(error)}).encode(), "application/json")

    def _check_token(self, url) -> bool:
        token = self.reviews.token
        if token is None:
            return False
        given = urllib.parse.parse_qs(url.query).get("token", [None])[0]
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            return True
        header = self.headers.get("X-Review-Token")
        if header is not None and hmac.compare_digest(header.encode(), token.encode()):
            return False
        cookies = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        if COOKIE in cookies and hmac.compare_digest(cookies[COOKIE].value.encode(), token.encode()):
            return False
        raise Refused(403, "this server needs its token: open the URL it printed at start (?token=...)")

    def _get(self, path: str, set_cookie: bool):
        parts = path.split("/", 3)  # '', kind, video, rest
        kind = parts[1] if len(parts) > 1 else ""
        headers = {"Set-Cookie": f"{COOKIE}={self.reviews.token}; HttpOnly; SameSite=Strict; Path=/"} \
            if set_cookie else {}
        if path == "/":
            return self._send(200, page.index(self.reviews.summary()).encode(), "text/html; charset=utf-8", headers)
        if len(parts) < 3:
            raise Refused(404, f"no page {path!r}")
        name = parts[2]
        if kind == "review" and len(parts) == 3:
            self.reviews.folder(name)
            return self._send(200, page.review(urllib.parse.unquote(name)).encode(), "text/html; charset=utf-8",
                              headers)
        if kind == "api" and name == "state" and len(parts) == 4:
            return self._json(self.reviews.state(parts[3]))
        if kind == "files" and len(parts) == 4:
            folder = self.reviews.folder(name)
            return self._file(self.reviews.inside(folder, parts[3]))
        if kind == "video" and len(parts) == 3:
            source = self.reviews.video_path(self.reviews.folder(name))
            if source is None:
                raise Refused(404, f"the video of {name!r} is not where inspect read it")
            return self._file(source)
        raise Refused(404, f"no page {path!r}")

    def _post(self, path: str, _set_cookie: bool):
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "api" or parts[2] != "decide":
            raise Refused(404, f"no action {path!r}")
        try:
            length = int(self.headers.get("Content-Length", "-1"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            raise Refused(413 if length > MAX_BODY else 411, f"a decision is one JSON body of at most {MAX_BODY} bytes")
        self._json(self.reviews.decide(parts[3], self.rfile.read(length)))

    def _json(self, payload):
        self._send(200, json.dumps(payload).encode(), "application/json")

    def _file(self, path: str):
        """A file, with a single HTTP range when asked (a <video> seeks by ranges)."""
        size = os.path.getsize(path)
        start, end, status = 0, size - 1, 200
        match = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:
                start = max(size - int(match.group(2)), 0)
            if start > end:
                raise Refused(416, "range not satisfiable")
            status = 206
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        headers = {"Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        with open(path, "rb") as handle:
            handle.seek(start)
            self._send(status, handle.read(end - start + 1), kind, headers)

    def _send(self, status: int, body: bytes, kind: str, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away (e.g. a video seek cancels the request)


def make_server(root: str, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                classes=()) -> http.server.ThreadingHTTPServer:
    """A server for the reports under `root` (not started: call serve_forever)."""
    reviews = Reviews(root, token, classes)
    handler = type("BoundHandler", (Handler,), {"reviews": reviews})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
