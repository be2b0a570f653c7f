"""httpapi - a small client of mxtierd's HTTP API (docs/http-api.md) for the tests.

    api = Api(port)                                  # loopback, no auth
    api = Api(port, auth=("alice", "secret"))        # Basic
    api = Api(port, token="t0k3n")                   # Bearer
    status, headers, body = api.get("/api/live")     # body: parsed JSON, or text
    status, headers, body = api.post("/api/listings", {...})   # with the session's CSRF token

Plain http.client, so a test chooses the source address (rate limits are
per address) and sends exactly the headers it means (Origin, Referer).
"""

import base64
import http.client
import json
import os
import shutil
import subprocess
import time

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


class Api:
    def __init__(self, port, host="127.0.0.1", auth=None, token=None, source="127.0.0.1", timeout=10, tls=None):
        self.port, self.host, self.auth, self.token, self.source, self.timeout = port, host, auth, token, source, timeout
        self.tls = tls      # an ssl.SSLContext: HTTPS
        self.csrf = None

    def headers(self, extra=None):
        h = {}
        if self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % self.auth).encode()).decode()
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(extra or {})
        return {k: v for k, v in h.items() if v is not None}

    def request(self, method, path, body=None, headers=None):
        if self.tls:
            c = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                            source_address=(self.source, 0), context=self.tls)
        else:
            c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout, source_address=(self.source, 0))
        try:
            c.request(method, path, body=body, headers=self.headers(headers))
            r = c.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        text = raw.decode("utf-8", "replace")
        if hdrs.get("content-type", "").startswith("application/json"):
            return r.status, hdrs, json.loads(text)
        return r.status, hdrs, text

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def session(self):
        status, _, body = self.get("/api/session")
        assert status == 200, body
        self.csrf = body["csrf"]
        return body

    def post(self, path, obj, csrf=True, headers=None):
        if csrf and self.csrf is None:
            self.session()
        h = {"Content-Type": "application/json", "X-CSRF-Token": self.csrf if csrf else None}
        h.update(headers or {})
        return self.request("POST", path, body=json.dumps(obj), headers=h)


def wait_http(port, host="127.0.0.1", timeout=10.0):
    """wait_http - until /healthz answers: the HTTP server binds after the SMTP listeners (or in its own process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Api(port, host=host, timeout=1).get("/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("no HTTP server on %s:%d within %.0f s" % (host, port, timeout))


def metric_samples(text):
    """metric_samples - {(name, frozenset(labels.items())): value} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        labels = {}
        if "{" in name_labels:
            name, rest = name_labels.split("{", 1)
            for part in rest.rstrip("}").split(","):
                k, v = part.split("=", 1)
                labels[k] = v.strip('"')
        else:
            name = name_labels
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def promtool_check(text):
    """promtool_check - `promtool check metrics` on text: (returncode, output)."""
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def yescrypt(password):
    """yescrypt - a crypt(3) yescrypt hash of password, as mkpasswd -m yescrypt makes."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated in 3.11, still in Debian 12's python3; libcrypt does the work
    salt = base64.b64encode(os.urandom(12), b"./").decode().rstrip("=")
    return crypt.crypt(password, "$y$j9T$" + salt)
