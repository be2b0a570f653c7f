"""/metrics and /api/live count what a test sent: relayed sessions at the
primary, deferrals at the bait, with the backend reply histogram; the page
passes `promtool check metrics`; `mxtierctl status` prints the same
counters (the engine's, the privileged side's and the set writer's); a
real Prometheus (Debian's, on loopback, its own config and data dir,
stopped by PID) scrapes it and a PromQL query returns the counts."""

import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from harness import BAIT, PRIMARY, free_port, wait_until
from httpapi import PROMETHEUS, PROMTOOL, Api, metric_samples, promtool_check, sample, wait_http

sys_path_db = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "db")
import sys  # noqa: E402
sys.path.insert(0, sys_path_db)
from dblib import ctl  # noqa: E402

RELAYED = 4
BAITED = 3


def package_version():
    """package_version - the first entry of packaging/debian/changelog: what the daemon must say it is."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                           "packaging", "debian", "changelog")) as f:
        return f.readline().split("(", 1)[1].split(")", 1)[0]


def send_sessions(d, connect):
    for i in range(RELAYED):
        c = connect(d, host=PRIMARY, source="127.0.0.%d" % (40 + i))
        assert c.greeting().code == 220
        c.ehlo("client%d.example.org" % i)
        replies = c.send_mail("a@example.org", ["b@example.net"], b"Subject: t\r\n\r\nhello\r\n")
        assert replies[-1].code == 250, replies
        c.cmd("QUIT")
        c.close()
    for i in range(BAITED):
        c = connect(d, host=BAIT, source="127.0.0.%d" % (60 + i))
        assert c.greeting().code == 421
        c.close()


@pytest.fixture
def http_mxtierd(start_daemon, backend, workdir):
    """http_mxtierd - a daemon whose only sessions are the test's: the start's readiness probes
    (one connection per tier address; the bait's counts as a deferral) are let end first."""
    port = free_port()
    d = start_daemon(backend, http_listen="127.0.0.1:%d" % port, user="",
                     control_socket=os.path.join(workdir, "control.sock"))
    d.http_port = port
    wait_http(port)
    api = Api(port)
    def probes_ended():
        s = metric_samples(api.get("/metrics")[2])
        return sample(s, "mxtier_connections_total") == total_sessions(s)
    wait_until(probes_ended, 5, what="the readiness probes' sessions to end")
    d.baseline = metric_samples(api.get("/metrics")[2])
    return d


def delta(d, samples, name, **labels):
    return sample(samples, name, **labels) - (sample(d.baseline, name, **labels) or 0)


def total_sessions(samples):
    return sum(v for (name, _), v in samples.items() if name == "mxtier_sessions_total")


def wait_sessions(d, api, n):
    """wait_sessions - /metrics once n sessions beyond the fixture's baseline have ended."""
    def ended():
        s = metric_samples(api.get("/metrics")[2])
        return total_sessions(s) - total_sessions(d.baseline) >= n and s
    return wait_until(ended, 5, what="%d sessions in /metrics" % n)


def test_metrics_count_the_sessions_sent(http_mxtierd, connect):
    api = Api(http_mxtierd.http_port)
    send_sessions(http_mxtierd, connect)
    s = wait_sessions(http_mxtierd, api, RELAYED + BAITED)
    d = http_mxtierd
    assert delta(d, s, "mxtier_sessions_total", tier="primary", verdict="relay") == RELAYED
    assert delta(d, s, "mxtier_sessions_total", tier="bait", verdict="tempfail") == BAITED
    assert delta(d, s, "mxtier_sessions_total", tier="secondary", verdict="relay") == 0
    assert delta(d, s, "mxtier_session_reasons_total", reason="bait") == BAITED
    assert sample(s, "mxtier_messages_relayed_total") == RELAYED
    assert sample(s, "mxtier_sessions_open") == 0
    assert sample(s, "mxtier_backend_up") == 1
    # Every relayed session waited for the backend's replies: EHLO/MAIL/RCPT/DATA/end-of-data at least.
    count = sample(s, "mxtier_backend_reply_seconds_count")
    assert count >= RELAYED * 3, count
    assert sample(s, "mxtier_backend_reply_seconds_bucket", le="+Inf") == count
    assert sample(s, "mxtier_backend_reply_seconds_sum") > 0
    for name in ("block4", "block6", "trust4", "trust6"):
        assert sample(s, "mxtier_kernel_set_elements", set=name) == 0
    assert sample(s, "mxtier_build_info", version=package_version()) == 1
    for counter in ("mxtier_kernel_set_full_total", "mxtier_kernel_set_adds_total", "mxtier_db_dropped_total",
                    "mxtier_privsep_from_engine_total", "mxtier_dns_queries_total", "mxtier_accept_errors_total",
                    "mxtier_tls_handshakes_total", "mxtier_http_requests_total"):
        assert sample(s, counter) is not None, counter
    assert sample(s, "mxtier_db_queue") == 0

    live = api.get("/api/live")[2]
    bait_before = sample(d.baseline, "mxtier_sessions_total", tier="bait", verdict="tempfail")
    assert live["tiers"]["primary"]["verdicts"]["relay"] == RELAYED
    assert live["tiers"]["bait"]["verdicts"] == {"none": 0, "relay": 0, "tempfail": BAITED + bait_before, "reject": 0}
    assert live["reasons"]["bait"] == BAITED + bait_before
    assert live["backend"]["healthy"] is True and live["backend"]["reply_ms"]["count"] == count
    assert live["kernel_sets"] == {"block4": 0, "block6": 0, "trust4": 0, "trust6": 0}
    assert live["db"]["enabled"] is False


def test_promtool_accepts_the_metrics_page(http_mxtierd, connect):
    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip("promtool not installed (Debian package prometheus)")
    send_sessions(http_mxtierd, connect)
    api = Api(http_mxtierd.http_port)
    wait_sessions(http_mxtierd, api, RELAYED + BAITED)
    status, headers, text = api.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    rc, out = promtool_check(text)
    assert rc == 0 and out.strip() == "", out


def test_status_prints_the_same_counters_as_metrics(http_mxtierd, connect):
    send_sessions(http_mxtierd, connect)
    api = Api(http_mxtierd.http_port)
    s = wait_sessions(http_mxtierd, api, RELAYED + BAITED)
    lines = dict(l.split(" ", 1) for l in ctl(http_mxtierd.conf_path, "status").stdout.splitlines()[1:] if " " in l)
    assert int(lines["tier_verdict_primary_relay"]) == RELAYED
    for key in ("kernel_set_full", "kernel_set_adds", "kernel_set_elements_block4", "privsep_from_engine",
                "privsep_to_engine", "http_requests", "backend_reply_count", "dns_cache_hits", "load_shed_entries"):
        assert key in lines, key
    # Every number of status is on /metrics (as a family or as mxtier_NAME_total): nothing left out.
    names = {name for name, _ in s}
    families = ("tier_verdict_", "reason_", "verdict_", "backend_reply_", "kernel_set_elements_")
    gauges = {"sessions_active": "mxtier_sessions_open", "history_entries": "mxtier_history_entries",
              "db_queue": "mxtier_db_queue", "sessions_total": "mxtier_connections_total"}
    for key, value in lines.items():
        if not value.strip().isdigit() or key.startswith(families):
            continue
        assert gauges.get(key, "mxtier_%s_total" % key) in names, key


def free_loopback_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_prometheus_scrapes_the_session_counts(http_mxtierd, connect, workdir):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("prometheus not installed (Debian package prometheus)")
    send_sessions(http_mxtierd, connect)
    wait_sessions(http_mxtierd, Api(http_mxtierd.http_port), RELAYED + BAITED)
    prom_port = free_loopback_port()
    conf = os.path.join(workdir, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: mxtier\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % http_mxtierd.http_port)
    data = os.path.join(workdir, "prometheus-data")
    log = open(os.path.join(workdir, "prometheus.log"), "wb")
    proc = subprocess.Popen([PROMETHEUS, "--config.file=" + conf, "--storage.tsdb.path=" + data,
                             "--web.listen-address=127.0.0.1:%d" % prom_port, "--log.level=warn"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        def query(promql):
            url = "http://127.0.0.1:%d/api/v1/query?%s" % (prom_port, urllib.parse.urlencode({"query": promql}))
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    body = json.load(r)
            except OSError:
                return None
            result = body.get("data", {}).get("result", [])
            return float(result[0]["value"][1]) if result else None

        got = wait_until(lambda: query('mxtier_sessions_total{tier="primary",verdict="relay"}') == RELAYED and RELAYED,
                         30, interval=0.5, what="Prometheus to have scraped mxtierd")
        assert got == RELAYED
        bait_before = sample(http_mxtierd.baseline, "mxtier_sessions_total", tier="bait", verdict="tempfail")
        assert query('sum(mxtier_sessions_total{tier="bait"})') == BAITED + bait_before
        assert query('up{job="mxtier"}') == 1
        assert query("histogram_quantile(0.5, mxtier_backend_reply_seconds_bucket)") is not None
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
