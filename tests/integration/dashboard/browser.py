"""browser - a real headless Chromium (Debian's chromium + chromium-driver,
driven by python3-selenium) for the dashboard tests.

    with Browser() as b:
        b.open("http://127.0.0.1:8025/")
        b.wait_js("return document.getElementById('total-sessions').textContent === '3'")
        b.problems()          # console errors and failed requests since open()
        b.screenshot("live")  # build/dashboard-screenshots/live.png

Chromium runs with its own --user-data-dir in a temp dir (removed at
close), no network beyond what the page asks for (the tests serve it on
loopback or inside a network namespace), and is stopped through the driver;
chromedriver is a child of this process and is stopped by selenium by PID.
Console messages come from the browser log, failed requests from the
DevTools performance log (Network.* events).
"""

import json
import os
import shutil
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SCREENSHOTS = os.path.join(os.environ.get("MXTIER_BUILD") or os.path.join(TOP, "build"), "dashboard-screenshots")


def missing():
    """missing - why a browser cannot run here, or None."""
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return "%s missing (Debian package %s; packaging/install-deps installs it)" % (path, pkg)
    return None


# Canvas check: some pixel differs from the first one (a blank canvas is uniform).
CANVAS_DRAWN_JS = """
const out = [];
for (const c of document.querySelectorAll('canvas')) {
    if (!c.width || !c.height) { out.push(false); continue; }
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let drawn = false;
    for (let i = 4; i < d.length; i += 4)
        if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2] || d[i + 3] !== d[3]) { drawn = true; break; }
    out.push(drawn);
}
return out;
"""


class Browser:
    def __init__(self, width=1280, height=1000, auth_header=None):
        self.profile = tempfile.mkdtemp(prefix="mxtier-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--disable-extensions", "--user-data-dir=" + self.profile,
                  "--window-size=%d,%d" % (width, height)):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.service = Service(CHROMEDRIVER, log_output=os.path.join(self.profile, "chromedriver.log"))
        self.driver = webdriver.Chrome(service=self.service, options=opts)
        self.driver.set_page_load_timeout(20)
        self.driver.set_script_timeout(20)
        self._requests = {}
        self._console = []
        if auth_header:
            self.driver.execute_cdp_cmd("Network.enable", {})
            self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": auth_header}})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, url):
        self._drain()
        self._requests, self._console = {}, []
        self.driver.get(url)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait_js(self, script, timeout=5.0, what=None):
        """wait_js - until the script returns a true value; returns it (or raises naming `what`)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.js(script)
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError("timed out after %.1f s waiting for %s (last %r)" % (timeout, what or script, last))

    def text(self, element_id):
        return self.js("const e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
                       element_id)

    def canvases_drawn(self):
        return self.js(CANVAS_DRAWN_JS)

    def _drain(self):
        for entry in self.driver.get_log("browser"):
            self._console.append(entry)
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            method, p = msg.get("method"), msg.get("params", {})
            # Only the pages' own requests: Chromium's internal pages (chrome://...) fetch things too.
            if method == "Network.requestWillBeSent":
                if p["request"]["url"].startswith("http") and not p.get("documentURL", "").startswith("chrome"):
                    self._requests[p["requestId"]] = {"url": p["request"]["url"]}
            elif p.get("requestId") not in self._requests:
                continue
            elif method == "Network.responseReceived":
                r = self._requests[p["requestId"]]
                r["url"], r["status"] = p["response"]["url"], p["response"]["status"]
            elif method == "Network.loadingFinished":
                self._requests[p["requestId"]]["bytes"] = p.get("encodedDataLength", 0)
            elif method == "Network.loadingFailed":
                self._requests[p["requestId"]]["failed"] = p.get("errorText", "failed")

    def requests(self):
        self._drain()
        return list(self._requests.values())

    def problems(self, allow=()):
        """problems - console errors and failed requests (status >= 400 or failed) since open().

        allow: substrings of URLs or messages that are expected (e.g. a 503 the page explains)."""
        self._drain()
        out = []
        for e in self._console:
            if e.get("level") in ("SEVERE", "ERROR") and not any(a in e.get("message", "") for a in allow):
                out.append("console: %s" % e.get("message"))
        for r in self._requests.values():
            url = r.get("url", "?")
            if any(a in url for a in allow) or url.startswith("data:"):
                continue
            if r.get("failed") and r["failed"] != "net::ERR_ABORTED":
                out.append("request failed: %s (%s)" % (url, r["failed"]))
            elif r.get("status", 0) >= 400:
                out.append("request: %s -> %d" % (url, r["status"]))
        return out

    def screenshot(self, name):
        os.makedirs(SCREENSHOTS, exist_ok=True)
        path = os.path.join(SCREENSHOTS, name + ".png")
        # the whole page: as tall as the document
        h = self.js("return Math.min(4000, document.documentElement.scrollHeight)")
        w = self.js("return window.outerWidth")
        self.driver.set_window_size(w, max(h + 100, 600))
        time.sleep(0.3)
        self.driver.save_screenshot(path)
        return path
