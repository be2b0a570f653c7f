"""The HTTP process's gate: loopback without files is open, any other
listener needs a password or token file or mxtierd refuses to start;
Basic (yescrypt via crypt(3)) and Bearer credentials; failed logins
locked out per address; state changes need the CSRF token and a same-site
Origin/Referer; sizes are bounded."""

import os
import http.client
import ssl
import subprocess
import time

import pytest

from harness import MXTIERD, free_port
from httpapi import Api, wait_http, yescrypt


def http_daemon(start_daemon, backend, workdir, **config):
    port = free_port()
    config.setdefault("http_listen", "127.0.0.1:%d" % port)
    config.setdefault("user", "")
    d = start_daemon(backend, **config)
    d.http_port = int(config["http_listen"].rsplit(":", 1)[1])
    wait_http(d.http_port)
    return d


def write(workdir, name, text):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_loopback_without_files_is_open(start_daemon, backend, workdir):
    d = http_daemon(start_daemon, backend, workdir)
    api = Api(d.http_port)
    s = api.session()
    assert s["user"] == "local" and s["auth"] == "none" and len(s["csrf"]) == 32
    status, headers, _ = api.get("/api/live")
    assert status == 200 and headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("listen", ["0.0.0.0:%d", "[::]:%d"])
def test_beyond_loopback_without_auth_refuses_to_start(workdir, backend, listen):
    conf = write(workdir, "open.conf", "primary_ips = 127.0.0.10\nlisten_port = %d\nuser =\nbackend = 127.0.0.1:%d\n"
                 "http_listen = %s\n" % (free_port(), backend.port, listen % free_port()))
    r = subprocess.run([MXTIERD, "-c", conf], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "beyond loopback: set http_password_file or http_token_file" in r.stderr, r.stderr
    r = subprocess.run([MXTIERD, "-t", "-c", conf], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "http_listen" in r.stderr


def test_beyond_loopback_with_a_password_file_starts(start_daemon, backend, workdir):
    pw = write(workdir, "pw", "alice:%s\n" % yescrypt("s3cret"))
    d = http_daemon(start_daemon, backend, workdir, http_listen="0.0.0.0:%d" % free_port(), http_password_file=pw)
    assert Api(d.http_port).get("/api/live")[0] == 401
    assert Api(d.http_port, auth=("alice", "s3cret")).get("/api/live")[0] == 200


def test_basic_and_bearer_credentials(start_daemon, backend, workdir):
    pw = write(workdir, "pw", "# operators\nalice:%s\nbob:%s\n" % (yescrypt("s3cret"), yescrypt("other")))
    tokens = write(workdir, "tokens", "prometheus:0123456789abcdef0123456789abcdef\n")
    d = http_daemon(start_daemon, backend, workdir, http_password_file=pw, http_token_file=tokens)
    cases = [
        ("no credentials", Api(d.http_port), 401),
        ("wrong password", Api(d.http_port, auth=("alice", "nope"), source="127.0.0.21"), 401),
        ("unknown user", Api(d.http_port, auth=("mallory", "s3cret"), source="127.0.0.22"), 401),
        ("other user's password", Api(d.http_port, auth=("alice", "other"), source="127.0.0.23"), 401),
        ("wrong token", Api(d.http_port, token="0123456789abcdef0123456789abcdee", source="127.0.0.24"), 401),
        ("alice", Api(d.http_port, auth=("alice", "s3cret")), 200),
        ("bob", Api(d.http_port, auth=("bob", "other")), 200),
        ("token", Api(d.http_port, token="0123456789abcdef0123456789abcdef"), 200),
    ]
    for label, api, want in cases:
        status, headers, body = api.get("/api/session")
        assert status == want, (label, status, body)
        if want == 401:
            assert headers["www-authenticate"].startswith("Basic realm=\"mxtier\""), label
    assert Api(d.http_port, auth=("alice", "s3cret")).session()["user"] == "alice"
    assert Api(d.http_port, token="0123456789abcdef0123456789abcdef").session()["user"] == "prometheus"
    # /healthz is for load balancers: no credentials.
    assert Api(d.http_port).get("/healthz")[0] == 200


def test_failed_logins_lock_an_address_out(start_daemon, backend, workdir):
    pw = write(workdir, "pw", "alice:%s\n" % yescrypt("s3cret"))
    d = http_daemon(start_daemon, backend, workdir, http_password_file=pw)
    bad = Api(d.http_port, auth=("alice", "guess"), source="127.0.0.31")
    statuses = [bad.get("/api/live")[0] for _ in range(6)]
    assert statuses == [401] * 4 + [429, 429], statuses
    # Locked out: even the right password is refused from there for the rest of the window ...
    assert Api(d.http_port, auth=("alice", "s3cret"), source="127.0.0.31").get("/api/live")[0] == 429
    # ... while other addresses are not.
    assert Api(d.http_port, auth=("alice", "s3cret"), source="127.0.0.32").get("/api/live")[0] == 200
    assert "too many failed logins from 127.0.0.31" in d.stderr()


def test_state_changes_need_the_csrf_token_and_the_same_site(start_daemon, backend, workdir):
    pw = write(workdir, "pw", "alice:%s\nbob:%s\n" % (yescrypt("s3cret"), yescrypt("other")))
    d = http_daemon(start_daemon, backend, workdir, http_password_file=pw)
    api = Api(d.http_port, auth=("alice", "s3cret"))
    api.session()
    bob = Api(d.http_port, auth=("bob", "other"))
    bobs_token = bob.session()["csrf"]
    assert bobs_token != api.csrf
    site = "http://127.0.0.1:%d" % d.http_port
    block = {"action": "add", "list": "block", "address": "192.0.2.7", "ttl": "1h"}
    cases = [
        ("no token", dict(csrf=False), 403, "csrf token missing or wrong"),
        ("wrong token", dict(csrf=False, headers={"X-CSRF-Token": "0" * 32}), 403, "csrf token missing or wrong"),
        ("another user's token", dict(csrf=False, headers={"X-CSRF-Token": bobs_token}), 403,
         "csrf token missing or wrong"),
        ("cross-site origin", dict(headers={"Origin": "http://evil.example"}), 403, "cross-site request refused"),
        ("cross-site referer", dict(headers={"Referer": "http://evil.example/x"}), 403, "cross-site request refused"),
        ("look-alike origin", dict(headers={"Origin": site + ".evil.example"}), 403, "cross-site request refused"),
    ]
    for label, kw, want, error in cases:
        status, _, body = api.post("/api/listings", block, **kw)
        assert (status, body.get("error")) == (want, error), label
    assert api.get("/api/listings")[2]["block"] == []
    status, _, body = api.post("/api/listings", block, headers={"Origin": site, "Referer": site + "/listings.html"})
    assert status == 200 and body["ok"] is True, body
    assert [e["address"] for e in api.get("/api/listings")[2]["block"]] == ["192.0.2.7"]
    assert "alice block add 192.0.2.7 ttl=1h" in d.stderr()
    # A cross-site GET of the API with an Origin is refused too (no reading counters from another site).
    assert api.get("/api/live", headers={"Origin": "http://evil.example"})[0] == 403


def test_bad_requests_are_refused_with_the_reason(start_daemon, backend, workdir):
    d = http_daemon(start_daemon, backend, workdir)
    api = Api(d.http_port)
    cases = [
        ("not an address", {"action": "add", "list": "block", "address": "192.0.2.300"}, 400),
        ("a network", {"action": "add", "list": "block", "address": "192.0.2.0/24"}, 400),
        ("injected words", {"action": "add", "list": "block", "address": "192.0.2.7 status"}, 400),
        ("bad list", {"action": "add", "list": "trust", "address": "192.0.2.7"}, 400),
        ("bad action", {"action": "flush", "list": "block", "address": "192.0.2.7"}, 400),
        ("bad ttl", {"action": "add", "list": "block", "address": "192.0.2.7", "ttl": "forever"}, 400),
        ("remove what is not listed", {"action": "remove", "list": "allow", "address": "192.0.2.8"}, 409),
    ]
    for label, obj, want in cases:
        status, _, body = api.post("/api/listings", obj)
        assert status == want, (label, status, body)
        assert "error" in body, label
    status, _, _ = api.request("POST", "/api/listings", body="x" * 5000,
                               headers={"X-CSRF-Token": api.csrf, "Content-Type": "application/json"})
    assert status == 413
    assert api.get("/api/nothing")[0] == 404
    assert api.get("/../../etc/passwd")[0] in (400, 404)
    assert api.get("/api/sender?q=" + "a" * 300)[0] == 400
    assert api.get("/api/history")[2] == {"error": "no database: set dashboard_database"}


def test_https_when_the_tls_files_are_set(start_daemon, backend, workdir):
    key, cert = os.path.join(workdir, "http.key"), os.path.join(workdir, "http.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    port = free_port()
    d = start_daemon(backend, http_listen="127.0.0.1:%d" % port, user="", http_tls_cert_file=cert,
                     http_tls_key_file=key)
    ctx = ssl.create_default_context(cafile=cert)
    api = Api(port, tls=ctx)
    for _ in range(100):
        try:
            if api.get("/healthz")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    status, _, body = api.get("/api/live")
    assert status == 200 and "tiers" in body
    # The same site is https://HOST now: an http:// Origin is another site.
    site = "https://127.0.0.1:%d" % port
    block = {"action": "add", "list": "block", "address": "192.0.2.5"}
    assert api.post("/api/listings", block, headers={"Origin": "http://127.0.0.1:%d" % port})[0] == 403
    assert api.post("/api/listings", block, headers={"Origin": site})[0] == 200
    # Plain HTTP on the TLS port gets no answer.
    try:
        status = Api(port, timeout=2).get("/api/live")[0]
    except (OSError, http.client.HTTPException):
        status = None
    assert status is None
    assert "dashboard on https://127.0.0.1:%d" % port in d.stderr()


def test_tls_files_must_come_together(workdir, backend):
    conf = write(workdir, "half.conf", "primary_ips = 127.0.0.10\nuser =\nhttp_listen = 127.0.0.1:%d\n"
                 "http_tls_cert_file = /nonexistent.pem\n" % free_port())
    r = subprocess.run([MXTIERD, "-t", "-c", conf], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "http_tls_cert_file and http_tls_key_file must be set together" in r.stderr
