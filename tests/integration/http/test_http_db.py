"""The dashboard against a real PostgreSQL (tests/integration/db/pgcluster.py):
as root the daemon splits, and the HTTP process runs as `user` with no
capability and no netlink socket, reads as the read-only mxtier_reader
login of dashboard_database; a block added through the API lands in the
shared listings with the operator's name (and leaves on remove); history,
sender and tiers answer from the rows the test's sessions wrote."""

import os

import pytest

from harness import BAIT, PRIMARY, children, free_port, wait_until
from httpapi import Api, wait_http, yescrypt

READER = "dash_reader"
SPLIT_USER = "mxtier"


def split_possible():
    import pwd
    if os.geteuid() != 0:
        return False
    try:
        pwd.getpwnam(SPLIT_USER)
        return True
    except KeyError:
        return False


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict((k, v.strip()) for k, _, v in (line.partition(":") for line in f))


def http_process(daemon):
    def find():
        for pid in children(daemon.proc.pid):
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "mxtierd [http]":
                    return pid
        return None
    return wait_until(find, 5, what="the HTTP process of mxtierd %d" % daemon.proc.pid)


@pytest.fixture
def dash(dbw, backend, workdir, start_daemon):
    dbw.migrate()
    dbw.pg.create_login(dbw.db, READER, "mxtier_reader")
    pw = os.path.join(workdir, "http.passwd")
    with open(pw, "w") as f:
        f.write("alice:%s\n" % yescrypt("s3cret"))
    os.chmod(pw, 0o600)     # read as root before the drop: the HTTP process could not read it later
    port = free_port()
    cfg = dbw.config("A")   # `database` as the superuser, like the other db tests
    cfg.update(http_listen="127.0.0.1:%d" % port, http_password_file=pw,
               dashboard_database=dbw.pg.conninfo(dbw.db, user=READER, connect_timeout=2),
               user=SPLIT_USER if split_possible() else "")
    d = start_daemon(backend, **cfg)
    d.http_port = port
    wait_http(port)
    d.api = Api(port, auth=("alice", "s3cret"))
    return d


def send(d, connect):
    for i in range(2):
        c = connect(d, host=PRIMARY, source="127.0.0.%d" % (80 + i))
        assert c.greeting().code == 220
        c.ehlo("relay%d.example.org" % i)
        assert c.send_mail("a@example.org", ["b@example.net"], b"Subject: t\r\n\r\nhi\r\n")[-1].code == 250
        c.cmd("QUIT")
    c = connect(d, host=BAIT, source="127.0.0.90")
    assert c.greeting().code == 421


def test_block_through_the_api_lands_in_the_database(dash, dbw):
    api = dash.api
    status, _, body = api.post("/api/listings", {"action": "add", "list": "block", "address": "192.0.2.9", "ttl": "1h"})
    assert status == 200 and body["database"] == "queued", body
    q = ("SELECT network, kind, set_by, round(extract(epoch FROM expires_at - created_at)) AS ttl FROM listings "
         "WHERE network = '192.0.2.9/32'")
    wait_until(lambda: dbw.count(q) == 1, 10, what="the listing row")
    row = dbw.rows(q)[0]
    assert row == {"network": "192.0.2.9/32", "kind": "block", "set_by": "alice", "ttl": 3600}, row
    listings = api.get("/api/listings")[2]
    assert "192.0.2.9" in [e["address"] for e in listings["block"]]
    assert [(r["network"], r["set_by"]) for r in listings["database"]] == [("192.0.2.9/32", "alice")]
    sender = api.get("/api/sender?q=192.0.2.9")[2]
    assert sender["live"]["blocked"] is True and sender["listings"][0]["set_by"] == "alice"
    status, _, body = api.post("/api/listings", {"action": "remove", "list": "block", "address": "192.0.2.9"})
    assert status == 200, body
    wait_until(lambda: dbw.count(q) == 0, 10, what="the listing row removed")
    assert "alice block add 192.0.2.9 ttl=1h" in dash.stderr()


def test_history_sender_and_tiers_answer_from_the_rows(dash, dbw, connect):
    send(dash, connect)
    dbw.wait_rows(3, "SELECT * FROM sessions WHERE client::text LIKE '127.0.0.%' AND (tier = 'primary' AND "
                     "verdict = 'relay' OR client = '127.0.0.90')")
    api = dash.api
    status, _, h = api.get("/api/history?range=week")
    assert status == 200, h
    # The dash_ views of 0002_dashboard_views.sql when the tree has them, else the base tables.
    views = os.path.exists(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))), "db", "migrations", "0002_dashboard_views.sql"))
    assert h["views"] is views
    relayed = sum(r["sessions"] for r in h["hourly"] if (r["tier"], r["verdict"]) == ("primary", "relay"))
    assert relayed == 2, h["hourly"]
    assert sum(r["sessions"] for r in h["daily"] if r["tier"] == "bait") >= 1
    assert h["appliances"] == ["A"]
    assert all(r["hour"].endswith("Z") and "T" in r["hour"] for r in h["hourly"])
    share = h["stopped_before_backend"][0]
    assert share["sessions"] == share["stopped"] + relayed
    s = api.get("/api/sender?q=127.0.0.80")[2]
    assert s["database"] is True and s["contacts"][0]["verdict"] == "relay", s
    assert s["contacts"][0]["helo"] == "relay0.example.org"
    assert "nothing to do" in s["advice"]
    bait = api.get("/api/sender?q=127.0.0.90")[2]
    assert bait["contacts"][0]["reasons"] == ["bait"], bait
    domain = api.get("/api/sender?q=example.org")[2]
    assert domain["kind"] == "domain" and len(domain["contacts"]) >= 2
    tiers = api.get("/api/tiers")[2]
    assert tiers["appliance"] == "A"
    assert {(l["address"], l["role"]) for l in tiers["listeners"]} >= {(PRIMARY, "primary"), (BAIT, "bait")}
    assert [a["name"] for a in wait_until(lambda: api.get("/api/tiers")[2]["appliances"], 10,
                                          what="the appliance's heartbeat")] == ["A"]


def test_http_process_holds_no_privilege(dash, dbw):
    if not split_possible():
        pytest.skip("needs root and the %s user (privilege separation)" % SPLIT_USER)
    pid = http_process(dash)
    st = proc_status(pid)
    assert st["Uid"].split()[0] != "0" and set(st["Uid"].split()) == {st["Uid"].split()[0]}, st["Uid"]
    assert st["CapEff"] == st["CapPrm"] == st["CapBnd"] == "0000000000000000" or \
        (st["CapEff"] == st["CapPrm"] == "0000000000000000"), st
    assert st["NoNewPrivs"] == "1"
    # No netlink socket among its descriptors.
    with open("/proc/%d/net/netlink" % pid) as f:
        lines = f.readlines()
    col = lines[0].split().index("Inode")
    netlink = {int(line.split()[col]) for line in lines[1:]}
    fds = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        if target.startswith("socket:["):
            fds.add(int(target[8:-1]))
    assert not (fds & netlink)
    # It reads as the reader login, which may not write.
    assert dash.api.get("/api/history")[0] == 200
    rows = dbw.rows("SELECT usename FROM pg_stat_activity WHERE application_name = 'mxtier-dashboard'")
    assert rows and {r["usename"] for r in rows} == {READER}, rows
    assert "privsep: HTTP process runs as %s" % SPLIT_USER in dash.stderr()
