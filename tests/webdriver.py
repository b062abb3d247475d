"""A minimal W3C WebDriver client (standard library only) for Debian's chromedriver driving Debian's
headless Chromium: what Selenium does, without a dependency (selenium's wheels want newer certifi and
typing_extensions than the project pins). Only the commands the review tests use."""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ENTER, ARROW_DOWN = "\ue007", "\ue015"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return os.path.exists(CHROMIUM) and shutil.which(CHROMEDRIVER) is not None


class Browser:
    """A headless Chromium session: navigate, find by CSS, click, type, press keys, run script."""

    def __init__(self, profile_dir):
        self.port = free_port()
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self._call("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        options = {"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                                "--disable-dev-shm-usage", "--no-first-run",
                                                "--disable-background-networking", "--mute-audio",
                                                f"--user-data-dir={profile_dir}", "--window-size=1400,1000"]}
        answer = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = f"/session/{answer['sessionId']}"

    def _call(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read()).get("value")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"webdriver {method} {path}: {error.read().decode()[:500]}") from None

    def go(self, url):
        self._call("POST", self.session + "/url", {"url": url})

    def find(self, css):
        value = self._call("POST", self.session + "/element", {"using": "css selector", "value": css})
        return next(iter(value.values()))

    def click(self, css):
        self._call("POST", f"{self.session}/element/{self.find(css)}/click", {})

    def type(self, css, text, clear=True):
        element = self.find(css)
        if clear:
            self._call("POST", f"{self.session}/element/{element}/clear", {})
        self._call("POST", f"{self.session}/element/{element}/value", {"text": text})

    def keys(self, *keys):
        """Key presses to whatever has the focus (the page's shortcuts when no field has it)."""
        actions = []
        for key in keys:
            actions += [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
        self._call("POST", self.session + "/actions",
                   {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})

    def script(self, source, *args):
        return self._call("POST", self.session + "/execute/sync", {"script": source, "args": list(args)})

    def wait(self, source, timeout=20.0, *args):
        """Run `source` (a function body returning a value) until it is truthy; that value."""
        end = time.time() + timeout
        while True:
            value = self.script(source, *args)
            if value or time.time() > end:
                assert value, f"timed out waiting for: {source}"
                return value
            time.sleep(0.1)

    def close(self):
        try:
            self._call("DELETE", self.session)
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=30)
