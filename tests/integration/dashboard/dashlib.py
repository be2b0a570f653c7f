"""Fixtures for the dashboard tests: a PostgreSQL cluster with test rows, and
helpers to fill a migrated database the way the daemon's writer does.

    def test_x(dash_db):
        dash_db.fill()                      # sessions of two appliances, listings, appliances
        dash_db.reader_rows("SELECT ...")   # as a login role in mxtier_reader

The cluster and its fixtures come from tests/integration/db/dblib.py (`pg`,
`dbw`); rows are written through mxtier_record_session(), the function the
daemon's writer calls, so the views see what they will see on an appliance.
"""

import base64
import json as _json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "db"))
sys.path.insert(0, os.path.dirname(HERE))

from dblib import dbw, pg, ctl  # noqa: E402,F401 (fixtures)
from harness import BAIT, HOSTNAME, MXTIERD, PRIMARY, SmtpClient, free_port, wait_until  # noqa: E402

READER = "mxtier_r_dash"      # login role in mxtier_reader

# (appliance, minutes ago, tier, client, rdns, helo, mail_from, verdict, reasons)
TEST_SESSIONS = [
    ("A", 5, "primary", "192.0.2.7", "mail.example.org", "mail.example.org", "a@example.org", "relay", []),
    ("A", 6, "primary", "192.0.2.8", None, "x", "b@spam.test", "tempfail", ["no-rdns"]),
    ("A", 4, "secondary", "192.0.2.8", None, "x", "b@spam.test", "relay", ["retried"]),
    ("A", 70, "bait", "198.51.100.9", "host-9.dyn.isp.test", "y", "c@spam.test", "tempfail",
     ["bait", "bait-first-contact"]),
    ("B", 80, "primary", "198.51.100.10", "host-10.dyn.isp.test", "y", "c@spam.test", "reject", ["dnsbl"]),
    ("B", 26 * 60, "primary", "203.0.113.5", None, "z", "d@spam.test", "tempfail", ["helo-invalid"]),
    ("B", 26 * 60 + 5, "secondary", "203.0.113.5", None, "z", "d@spam.test", "tempfail", ["skipped-primary"]),
]


def _lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "ARRAY[%s]::text[]" % ",".join(_lit(x) for x in v) if v else "'{}'::text[]"
    return "'%s'" % str(v).replace("'", "''")


def record_session_sql(n, appliance, minutes_ago, tier, client, rdns, helo, mail_from, verdict, reasons):
    """record_session_sql - one mxtier_record_session() call, as the writer makes it."""
    started = "now() - interval '%d minutes'" % minutes_ago
    prefix = "network(set_masklen(%s::inet, 24))" % _lit(client)
    domain = None
    if rdns:
        domain = ".".join(rdns.split(".")[-2:])
    return ("SELECT mxtier_record_session(%s, %s, %s, %s + interval '1 second', %s, %s::inet, %s, %s, %s, %s, %s, 1, "
            "'user@demo.test', %d, %s, %s, 0, 100, 12, %s, %s)" % (
                _lit("t%04d" % n), _lit(appliance), started, started, _lit(tier), _lit(client), prefix, _lit(rdns),
                _lit(bool(rdns)), _lit(helo), _lit(mail_from), 1 if verdict == "relay" else 0, _lit(verdict),
                _lit(reasons), _lit("250 ok" if verdict == "relay" else None), _lit(domain)))


class DashDb:
    def __init__(self, dbw):
        self.dbw = dbw
        self.pg = dbw.pg
        self.db = dbw.db

    def migrate(self):
        self.dbw.migrate()
        self.pg.create_login(self.db, READER, "mxtier_reader")
        return self

    def fill(self, sessions=TEST_SESSIONS):
        stmts = [record_session_sql(i, *s) for i, s in enumerate(sessions)]
        stmts.append("INSERT INTO appliances (name, version, tier_map, heartbeat) VALUES "
                     "('A', 'test', '{\"192.0.2.10\": \"primary\"}', now()), "
                     "('B', 'test', '{\"192.0.2.20\": \"secondary\"}', now() - interval '5 minutes') "
                     "ON CONFLICT (name) DO NOTHING")
        stmts.append("INSERT INTO listings (network, kind, reason, expires_at) VALUES "
                     "('198.51.100.0/24', 'block', 'manual', now() + interval '1 hour'), "
                     "('192.0.2.7/32', 'allow', 'manual', NULL)")
        self.pg.sql(self.db, ";\n".join(stmts))
        return self

    def reader_run(self, sql):
        """reader_run - psql as the mxtier_reader login: the CompletedProcess (does not raise)."""
        return self.pg.run_sql(self.db, sql, user=READER)

    def reader_rows(self, query):
        return self.pg.rows(self.db, query, user=READER)


@pytest.fixture
def dash_db(dbw):
    return DashDb(dbw).migrate()


# -- mxtierd with the dashboard --------------------------------------------------

TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
WEB = os.path.join(TOP, "dashboards", "web")
PAGES = ("index.html", "history.html", "sender.html", "listings.html", "tiers.html")
MESSAGE = b"Subject: dashboard test\r\n\r\nhello\r\n"


def http_missing():
    """http_missing - why this mxtierd cannot serve the dashboard, or None."""
    if not os.access(MXTIERD, os.X_OK):
        return "%s is not built" % MXTIERD
    import tempfile
    with tempfile.NamedTemporaryFile("w", prefix="mxtier-probe-", suffix=".conf") as f:
        f.write("primary_ips = 127.0.0.10\n")
        f.flush()
        r = subprocess.run([MXTIERD, "-c", f.name, "-n"], capture_output=True, text=True, timeout=10)
    if not any(line.startswith("dashboard_dir ") for line in r.stdout.splitlines()):
        return "this mxtierd has no dashboard_dir (the http branch is not merged)"
    return None


def http(url, method="GET", body=None, headers=None, timeout=5):
    """http - (status, headers, parsed JSON or text) of one request; never raises for 4xx/5xx."""
    data = None if body is None else (body if isinstance(body, bytes) else _json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None and "Content-Type" not in req.headers:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, hdrs, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, dict(e.headers), e.read()
    try:
        return status, hdrs, _json.loads(raw)
    except ValueError:
        return status, hdrs, raw.decode(errors="replace")


def http_up(url):
    """http_up - GET url/healthz answers 200 (False while nothing listens yet)."""
    try:
        return http(url + "healthz", timeout=2)[0] == 200
    except OSError:         # connection refused: the HTTP process is not listening yet
        return False


def bearer(token):
    return {"Authorization": "Bearer " + token}


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class Site:
    """Site - an mxtierd serving the dashboard, its database and how to send it sessions."""

    def __init__(self, daemon, dash_db, port):
        self.daemon, self.dash_db, self.port = daemon, dash_db, port
        self.url = "http://127.0.0.1:%d/" % port

    def relay(self, source="127.0.0.2"):
        with SmtpClient(self.daemon.port, PRIMARY, source) as c:
            assert c.greeting().code == 220
            assert c.ehlo("mail.client.test").code == 250
            replies = c.send_mail("a@client.test", ["user@demo.test"], MESSAGE)
            assert replies[-1].code == 250, replies
            c.cmd("QUIT")
        return c

    def bait(self, source="127.0.0.2"):
        with SmtpClient(self.daemon.port, BAIT, source) as c:
            assert c.greeting().code == 421
        return c

    def deferred(self, source="127.0.0.3"):
        """deferred - a HELO of the appliance's own name: 451 at RCPT, reason helo-invalid."""
        with SmtpClient(self.daemon.port, PRIMARY, source) as c:
            assert c.greeting().code == 220
            assert c.ehlo(HOSTNAME).code == 250
            assert c.cmd("MAIL FROM:<b@deferred.test>").code == 250
            assert c.cmd("RCPT TO:<user@demo.test>").code == 451
            c.cmd("QUIT")
        return c

    def wait_logged(self, clients):
        for c in clients:
            self.daemon.session_for(c)


@pytest.fixture
def start_site(dash_db, start_backend):
    """start_site(**config) - mxtierd with http_listen on loopback, the dashboard and both databases."""
    def start(**config):
        why = http_missing()
        if why:
            pytest.skip(why)
        port = free_port()
        cfg = {"http_listen": "127.0.0.1:%d" % port, "dashboard_dir": WEB,
               "dashboard_database": dash_db.pg.conninfo(dash_db.db, user=READER, connect_timeout=2)}
        cfg.update(config)
        d = dash_db.dbw.start_daemon(start_backend(), appliance="A", **{k: v for k, v in cfg.items() if v is not None})
        site = Site(d, dash_db, port)
        wait_until(lambda: http_up(site.url), 10, what="GET /healthz on %s" % site.url)
        return site
    return start


@pytest.fixture
def browser():
    from browser import Browser, missing
    why = missing()
    if why:
        pytest.skip(why)
    opened = []

    def make(**kw):
        b = Browser(**kw)
        opened.append(b)
        return b
    yield make
    for b in opened:
        b.close()
