"""The review server (`sfr-jax review`): the page driven in a real headless Chromium (Debian's chromium
through its chromedriver) by mouse and by key, the review.json that results and a reload that shows it;
a server killed with SIGKILL during a burst of decisions loses none it acknowledged; paths outside the
reports folder, requests without the token and malformed decisions are refused and change nothing."""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sfr_jax.review import server as server_lib
from review_fixtures import QUEUE, write_reports
from webdriver import ARROW_DOWN, ENTER, Browser, available

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def served(tmp_path):
    """An in-process server on a free port over two videos, with a user class XX."""
    root = write_reports(str(tmp_path / "reports"), names=("seg1", "seg2"))
    server = server_lib.make_server(root, "127.0.0.1", 0, classes=("XX",))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def decisions(root, video):
    with open(os.path.join(root, video, "review.json")) as f:
        return [{k: v for k, v in d.items() if k in ("action", "event", "class", "start_s", "end_s", "value")}
                for d in json.load(f)["decisions"]]


def saved_count(browser, n):
    return browser.wait(f"return document.getElementById('status').textContent.includes('{n} decisions saved')")


def video_at(browser, seconds):
    """Wait until the page's video stands at `seconds`."""
    return browser.wait(f"return Math.abs(document.getElementById('video').currentTime - {seconds}) < 0.01")


def seek(browser, seconds):
    """Move the page's video to `seconds` (as a person dragging it would) and wait until it is there."""
    browser.script(f"document.getElementById('video').currentTime = {seconds}")
    return video_at(browser, seconds)


def verdicts(browser):
    return browser.script("return [...document.querySelectorAll('#queue tbody tr')].map("
                          "r => [r.dataset.key, r.cells[1].textContent, r.cells[6].textContent])")


@pytest.mark.skipif(not available(), reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_review_page_in_headless_chromium_by_mouse_and_by_key(served, tmp_path):
    root, base = served
    browser = Browser(tmp_path / "profile")
    try:
        # --- by mouse, video seg1 ---
        browser.go(f"{base}/review/seg1")
        saved_count(browser, 0)
        assert [row[0] for row in verdicts(browser)] == QUEUE  # tier, then closeness to the threshold
        browser.wait("return document.getElementById('video').readyState >= 1")  # metadata: it can seek
        browser.click('#queue tr[data-key="3"]')
        # the video seeks to the selected event's start
        video_at(browser, 9.0)
        browser.click('#queue tr[data-key="2"]')
        video_at(browser, 5.0)
        browser.click("#accept")  # event 2; the page moves on to 3
        saved_count(browser, 1)
        assert browser.script("return document.getElementById('cur-key').textContent") == "3"
        browser.click("#reject")  # event 3; on to 4
        saved_count(browser, 2)
        browser.click('#relabel-class option[value="XX"]')  # the user's class
        browser.click("#relabel")  # event 4 -> XX
        saved_count(browser, 3)
        browser.click('#queue tr[data-key="1"]')
        browser.type("#move-start", "1.5")
        browser.type("#move-end", "3.5")
        browser.click("#move")
        saved_count(browser, 4)
        browser.click('#add-class option[value="FO"]')
        browser.type("#add-start", "16")
        browser.type("#add-end", "18.5")
        browser.click("#add")
        saved_count(browser, 5)
        browser.click("#reviewed")
        saved_count(browser, 6)
        assert decisions(root, "seg1") == [
            {"action": "accept", "event": "2"}, {"action": "reject", "event": "3"},
            {"action": "relabel", "event": "4", "class": "XX"},
            {"action": "move", "event": "1", "start_s": 1.5, "end_s": 3.5},
            {"action": "add", "class": "FO", "start_s": 16, "end_s": 18.5}, {"action": "reviewed", "value": True}]

        # --- by key, video seg2 ---
        browser.go(f"{base}/review/seg2")
        saved_count(browser, 0)
        browser.wait("return document.getElementById('video').readyState >= 1")
        browser.script("document.activeElement.blur()")
        browser.keys("j", "k")  # to 3 and back to 2 (the first pending)
        browser.wait("return document.getElementById('cur-key').textContent === '2'")
        browser.keys("a")  # accept 2; on to 3
        saved_count(browser, 1)
        browser.keys("r")  # reject 3; on to 4
        saved_count(browser, 2)
        browser.keys("l", ARROW_DOWN, ENTER)  # relabel 4: the list focused, one down from RB is FO
        saved_count(browser, 3)
        browser.keys("j")  # to 1, the video seeks to 1.0 s
        video_at(browser, 1.0)
        browser.keys("s")  # start := the video's time (1.0)
        seek(browser, 4.0)
        browser.keys("e", "m")  # end := 4.0, move
        saved_count(browser, 4)
        seek(browser, 16.5)
        browser.keys("[")
        seek(browser, 19.0)
        browser.keys("]", "n")  # add the first class (RB) over 16.5-19.0
        saved_count(browser, 5)
        browser.keys("f")
        saved_count(browser, 6)
        assert decisions(root, "seg2") == [
            {"action": "accept", "event": "2"}, {"action": "reject", "event": "3"},
            {"action": "relabel", "event": "4", "class": "FO"},
            {"action": "move", "event": "1", "start_s": 1.0, "end_s": 4.0},
            {"action": "add", "class": "RB", "start_s": 16.5, "end_s": 19.0}, {"action": "reviewed", "value": True}]

        # --- a reload shows the saved state ---
        for video, relabelled in (("seg1", "XX (was RB)"), ("seg2", "FO (was RB)")):
            browser.go(f"{base}/review/{video}")
            saved_count(browser, 6)
            rows = {key: (label, verdict) for key, label, verdict in verdicts(browser)}
            assert rows["2"] == ("FO", "accepted") and rows["3"] == ("RB", "rejected")
            assert rows["4"] == (relabelled, "relabelled") and rows["1"][1] == "pending"
            assert [v for k, (_, v) in rows.items() if k.startswith("+")] == ["added"]
            assert browser.script("return document.getElementById('reviewed').checked") is True
        # the static report still opens on its own, without the server
        browser.go("file://" + os.path.join(root, "seg1", "report.html"))
        assert "the static report" in browser.script("return document.body.textContent")
    finally:
        browser.close()


def _request(base, method, path, body=None, headers=None):
    host, port = base[len("http://"):].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request(method, path, body=body, headers=headers or {})  # sent as given, ../ included
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, payload


def test_a_server_killed_during_a_burst_loses_no_acknowledged_decision(tmp_path):
    root = write_reports(str(tmp_path / "reports"), video=False)
    env = dict(os.environ, PYTHONPATH=REPO)
    process = subprocess.Popen([sys.executable, "-m", "sfr_jax.main", "review", root, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = ""
        while "open http" not in line:
            line = process.stdout.readline()
            assert line, "the server did not start"
        base = line.split("open ")[1].split()[0].rstrip("/")
        acknowledged, lock, stop = [], threading.Lock(), threading.Event()

        def burst(worker):
            n = 0
            while not stop.is_set():
                n += 1
                body = json.dumps({"action": "move", "event": str(1 + worker % 4), "start_s": 0.0,
                                   "end_s": float(n % 20)})
                try:
                    status, payload = _request(base, "POST", "/api/decide/seg1", body,
                                               {"Content-Type": "application/json"})
                except OSError:
                    return  # the server is gone
                if status == 200:
                    with lock:
                        acknowledged.append(json.loads(payload)["stored"]["seq"])

        threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        while len(acknowledged) < 40:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # mid-burst: requests are in flight
        process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    with open(os.path.join(root, "seg1", "review.json")) as f:
        saved = json.load(f)  # parses
    seqs = [d["seq"] for d in saved["decisions"]]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate
    assert set(acknowledged) <= set(seqs) and len(acknowledged) >= 40


def test_refused_requests_change_nothing(tmp_path):
    root = write_reports(str(tmp_path / "reports"), video=False)
    with open(tmp_path / "secret.txt", "w") as f:
        f.write("outside")
    server = server_lib.make_server(root, "127.0.0.1", 0, token="t0ken")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    good = {"X-Review-Token": "t0ken", "Content-Type": "application/json"}
    review = os.path.join(root, "seg1", "review.json")
    try:
        # outside the reports folder, with the token: not found, whatever the spelling
        for path in ("/files/seg1/../../secret.txt", "/files/seg1/%2e%2e/%2e%2e/secret.txt",
                     "/files/..%2f..%2fsecret.txt/x", "/api/state/..", "/api/state/%2e%2e",
                     "/video/..%2fseg1", "/review/../seg1"):
            status, payload = _request(base, "GET", path, headers=good)
            assert status == 404 and b"outside" not in payload, path
        status, _ = _request(base, "POST", "/api/decide/..%2fseg1", json.dumps({"action": "accept", "event": "1"}),
                             good)
        assert status == 404
        # without the token (or a wrong one): 403, nothing written
        body = json.dumps({"action": "accept", "event": "1"})
        for headers in ({}, {"X-Review-Token": "wrong"}, {"Cookie": "sfr_review_token=wrong"}):
            assert _request(base, "POST", "/api/decide/seg1", body, headers)[0] == 403
            assert _request(base, "GET", "/api/state/seg1", headers=headers)[0] == 403
        assert _request(base, "GET", "/?token=wrong")[0] == 403
        # malformed decisions: 400 with the reason, nothing written
        for bad in (b"{not json", json.dumps({"action": "accept", "event": "9"}).encode(),
                    json.dumps({"action": "move", "event": "1", "start_s": 5, "end_s": 2}).encode(),
                    json.dumps({"action": "relabel", "event": "1", "class": "ZZ"}).encode()):
            status, payload = _request(base, "POST", "/api/decide/seg1", bad, good)
            assert status == 400 and json.loads(payload)["error"], bad
        assert not os.path.exists(review)
        # the token in the URL opens the page and sets the cookie; with it, a decision is written
        status, _ = _request(base, "GET", "/?token=t0ken")
        assert status == 200
        assert _request(base, "POST", "/api/decide/seg1", body, {"Cookie": "sfr_review_token=t0ken"})[0] == 200
        assert _request(base, "POST", "/api/decide/seg1", body, good)[0] == 200
        assert len(json.load(open(review))["decisions"]) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_two_tabs_lose_neither_decisions(served):
    """Two writers on one video at once (two tabs): every decision of each is in review.json."""
    root, base = served
    def tab(event):
        for n in range(15):
            body = json.dumps({"action": "move", "event": event, "start_s": 0.0, "end_s": float(n)})
            assert _request(base, "POST", "/api/decide/seg1", body, {"Content-Type": "application/json"})[0] == 200
    threads = [threading.Thread(target=tab, args=(e,)) for e in ("1", "2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    saved = decisions(root, "seg1")
    assert sorted((d["event"], d["end_s"]) for d in saved) == sorted((e, float(n)) for e in "12" for n in range(15))


def test_host_needs_the_token_printed_at_start(tmp_path):
    """`sfr-jax review --host`: the URL printed at start carries a token; without it every request is 403."""
    root = write_reports(str(tmp_path / "reports"), video=False)
    env = dict(os.environ, PYTHONPATH=REPO)
    process = subprocess.Popen([sys.executable, "-m", "sfr_jax.main", "review", root, "--host", "127.0.0.1",
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = ""
        while "open http" not in line:
            line = process.stdout.readline()
            assert line, "the server did not start"
        url = line.split("open ")[1].split()[0]
        base, token = url.split("/?token=")
        assert len(token) >= 24
        assert _request(base, "GET", "/api/state/seg1")[0] == 403
        assert _request(base, "GET", f"/api/state/seg1?token={token}")[0] == 200
    finally:
        process.kill()
        process.wait(timeout=30)
