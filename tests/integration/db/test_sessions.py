"""One row per session: verdicts, reasons, reputation, hostile strings,
status counters and `mxtierctl why` / `rep`."""

import time

from dblib import ctl, db_counters
from harness import BAIT, PRIMARY, wait_until
from tierlib import TIER_DEFAULTS

MSG = b"Subject: db test\r\n\r\nhello\r\n"


def dns_config(dns, **extra):
    cfg = dict(TIER_DEFAULTS)
    cfg["dns_servers"] = dns.server
    cfg.update(extra)
    return cfg


def deliver(c, helo="mail.sender.test", mail_from="a@sender.test", rcpt="b@dest.test"):
    assert c.greeting().code == 220
    assert c.ehlo(helo).code == 250
    replies = c.send_mail(mail_from, [rcpt], MSG)
    assert [r.code for r in replies] == [250, 250, 354, 250], replies
    assert c.cmd("QUIT").code == 221


def by_client(rows):
    """by_client - {client address: row}, without the harness's readiness
    probes (connections from 127.0.0.1 at start; sessions too, and so rows)."""
    return {r["client"]: r for r in rows if r["client"] != "127.0.0.1"}


def all_logged_sessions_are_rows(dbw, daemon):
    """Every session line in the log is exactly one row, and no other row exists."""
    ids = sorted(s["id"] for s in daemon.sessions())
    dbw.wait_rows(len(ids), timeout=6)
    time.sleep(0.3)                     # nothing more may arrive
    assert sorted(r["session_id"] for r in dbw.rows("SELECT session_id FROM sessions")) == ids


def test_one_row_per_session(dbw, dns, backend, connect):
    dns.host("127.1.1.5", "mail.relay1.test")
    dns.host("127.1.4.5", "mail.web4.test")
    d = dbw.start_daemon(backend, appliance="A", **dns_config(dns))

    relayed = connect(d, host=PRIMARY, source="127.1.1.5")
    deliver(relayed, helo="Mail.Relay1.TEST", mail_from="Alice@Relay1.Test", rcpt="bob@dest.test")

    deferred = connect(d, host=PRIMARY, source="127.1.2.5")          # no PTR: no-rdns
    assert deferred.greeting().code == 421
    assert deferred.is_closed(3)

    bait = connect(d, host=BAIT, source="127.1.3.5")
    assert bait.greeting().code == 421
    assert bait.is_closed(3)

    web = connect(d, host=PRIMARY, source="127.1.4.5")
    assert web.greeting().code == 220
    assert web.cmd("GET / HTTP/1.0").code == 521
    assert web.is_closed(3)

    logs = {s["client"].rsplit(":", 1)[0]: s for s in (d.session_for(c) for c in (relayed, deferred, bait, web))}
    all_logged_sessions_are_rows(dbw, d)
    rows = by_client(dbw.rows("SELECT * FROM sessions ORDER BY started_at"))
    assert set(rows) == set(logs)

    for client, log in logs.items():
        row = rows[client]
        assert row["session_id"] == log["id"], (row, log)
        assert row["appliance"] == "A"
        assert row["tier"] == log["tier"]
        assert row["verdict"] == log["verdict"], (row, log)
        assert sorted(row["reasons"]) == sorted(log["reason_list"]), (row, log)
        assert row["started_at"] <= row["ended_at"]
        assert row["client_prefix"] == client.rsplit(".", 1)[0] + ".0/24"

    r = rows["127.1.1.5"]
    assert (r["verdict"], r["tier"], r["rdns"], r["fcrdns"]) == ("relay", "primary", "mail.relay1.test", True)
    assert (r["helo"], r["mail_from"], r["rcpt_count"], r["first_rcpt"], r["messages"]) == \
        ("Mail.Relay1.TEST", "Alice@Relay1.Test", 1, "bob@dest.test", 1)
    assert r["backend_reply"] and r["backend_reply"].startswith("250"), r
    assert r["bytes"] > 0

    r = rows["127.1.2.5"]
    assert (r["verdict"], r["tier"]) == ("tempfail", "primary") and "no-rdns" in r["reasons"], r
    assert r["rdns"] in (None, "") and r["fcrdns"] is False

    r = rows["127.1.3.5"]
    assert (r["verdict"], r["tier"]) == ("tempfail", "bait") and "bait" in r["reasons"], r

    r = rows["127.1.4.5"]
    assert r["verdict"] == "reject" and "non-smtp" in r["reasons"], r

    # reputation: address, prefix, rdns domain, helo (lower case), sender domain
    rep = {(x["kind"], x["key"]): x for x in dbw.rows("SELECT * FROM reputation")}
    a = rep[("address", "127.1.1.5")]
    assert (a["sessions"], a["relayed"], a["score"]) == (1, 1, 1), a
    assert rep[("prefix", "127.1.1.0/24")]["relayed"] == 1
    assert rep[("helo", "mail.relay1.test")]["sessions"] == 1
    assert rep[("sender_domain", "relay1.test")]["relayed"] == 1
    assert any(k == "rdns_domain" and "relay1.test" in key for k, key in rep), sorted(rep)
    assert rep[("address", "127.1.2.5")]["tempfailed"] == 1
    assert rep[("address", "127.1.4.5")]["rejected"] == 1
    if "bait-first-contact" in rows["127.1.3.5"]["reasons"]:
        assert rep[("address", "127.1.3.5")]["bait_first"] == 1

    # contacts: the primary's deferral is a pending retry others can see
    contacts = {c["key"]: c for c in dbw.rows("SELECT * FROM contacts")}
    assert contacts["a:127.1.2.5"]["pending_since"], contacts.get("a:127.1.2.5")
    assert contacts["a:127.1.1.5"]["last_primary"], contacts.get("a:127.1.1.5")

    # the appliance announced itself
    app = dbw.rows("SELECT * FROM appliances")
    assert [a["name"] for a in app] == ["A"], app

    wait_until(lambda: db_counters(d)["written"] >= len(d.sessions()), 5, what="db_written")
    s = db_counters(d)
    assert s["connected"] == "yes" and s["dropped"] == 0 and s["errors"] == 0 and s["queue"] == 0, s

    # mxtierctl why / rep read the same database
    why = ctl(d.conf_path, "why", "127.1.2.5").stdout
    assert "tempfail" in why and "no-rdns" in why, why
    assert logs["127.1.2.5"]["id"] in why or "primary" in why, why
    rep_out = ctl(d.conf_path, "rep", "127.1.1.5").stdout
    assert "127.1.1.5" in rep_out and "127.1.1.0/24" in rep_out, rep_out


HOSTILE_HELO = "x');DROP/**/TABLE/**/sessions;--"
HOSTILE_FROM = [
    "o'brien@example.org",
    '"we\\\\ird\\"quote\'s"@example.org',          # quoted local part: "we\\ird\"quote's"
    "\"$$;DROP TABLE reputation;$$\"@example.org",      # quoted: ; and blanks allowed
    "%_%@example.org",                                # LIKE metacharacters
]


def test_hostile_strings_stored_verbatim(dbw, backend, connect):
    d = dbw.start_daemon(backend, appliance="hostile-a")
    sent = []
    helos = [HOSTILE_HELO, "a\\b'c\"d.example", "'||pg_sleep(10)||'"]
    for i, mail_from in enumerate(HOSTILE_FROM):
        c = connect(d, source="127.0.3.%d" % (i + 1))
        assert c.greeting().code == 220
        helo = helos[i % len(helos)]
        assert c.ehlo(helo).code == 250
        r = c.cmd("MAIL FROM:<%s>" % mail_from)
        assert r.code == 250, (mail_from, r)
        c.cmd("RCPT TO:<u'1@dest.test>")       # 451 when the HELO made the client a suspect
        assert c.cmd("QUIT").code == 221
        log = d.session_for(c)
        sent.append((c.local[0], helo, mail_from, log))

    all_logged_sessions_are_rows(dbw, d)
    rows = by_client(dbw.rows("SELECT * FROM sessions"))
    assert dbw.value("SELECT to_regclass('sessions') IS NOT NULL") == "t"
    assert dbw.value("SELECT to_regclass('reputation') IS NOT NULL") == "t"
    for client, helo, mail_from, log in sent:
        row = rows[client]
        assert row["appliance"] == "hostile-a"
        assert row["helo"] == helo, (row["helo"], helo)            # byte for byte
        assert row["mail_from"] == mail_from, (row["mail_from"], mail_from)
        assert row["first_rcpt"] in (log["first_rcpt"].strip("<>") or None, log["first_rcpt"]), (row, log)
    keys = {x["key"] for x in dbw.rows("SELECT key FROM reputation WHERE kind = 'helo'")}
    assert HOSTILE_HELO.lower() in keys, keys


def test_non_utf8_bytes_do_not_lose_rows(dbw, dns, backend, connect):
    """Bytes that are not UTF-8 (the database's encoding), in a HELO or in a
    PTR name, must neither lose their own row nor take other sessions'
    rows with them (one bad statement in a pipeline fails the lot)."""
    from dnslib import DNSLabel
    dns.ptr("127.0.4.6", DNSLabel([b"bad\xff\xfe", b"ptr", b"test"]))
    dns.host("127.0.4.7", "caf\u00e9.ptr.test".encode("utf-8").decode("latin-1"))
    for i in range(1, 6):
        dns.host("127.0.4.%d" % i, "ok%d.ptr.test" % i)
    d = dbw.start_daemon(backend, **dns_config(dns))
    clients = []
    for i, helo in enumerate([b"ok1.example", b"bad\xff\xfe.example", b"ok2.example", b"caf\xc3\xa9.example",
                              b"ok3.example", b"ok6.example", b"ok7.example"]):
        c = connect(d, source="127.0.4.%d" % (i + 1))
        if c.greeting().code == 220:
            c.send(b"EHLO " + helo + b"\r\n")
            c.read_reply()
            c.cmd("QUIT")
        clients.append(c.local[0])
        d.session_for(c)
    all_logged_sessions_are_rows(dbw, d)
    rows = by_client(dbw.rows("SELECT * FROM sessions"))
    assert sorted(rows) == sorted(clients), rows
    assert rows["127.0.4.1"]["helo"] == "ok1.example"
    s = db_counters(d)
    assert s["dropped"] == 0 and s["errors"] == 0, s


def test_no_libpq_notices_on_stderr(dbw, backend, connect):
    """The log is one line per session: libpq NOTICEs (e.g. the partition
    function's "relation ... already exists, skipping") must not leak onto
    mxtierd's stderr."""
    d = dbw.start_daemon(backend)
    for i in range(3):
        c = connect(d, source="127.0.9.%d" % (i + 1))
        deliver(c)
        d.session_for(c)
    all_logged_sessions_are_rows(dbw, d)
    notices = [l for l in d.stderr().splitlines() if l.startswith(("NOTICE:", "WARNING:"))]
    assert not notices, "%d libpq notice lines for %d sessions, e.g. %r" % (len(notices), len(d.sessions()),
                                                                          notices[:2])


def test_retention_drops_old_partitions(dbw, backend):
    """db_retention_days: day partitions older than that go, today's stays."""
    dbw.migrate()
    dbw.sql("SELECT mxtier_session_partition(current_date - 40)")
    dbw.sql("SELECT mxtier_session_partition(current_date - 5)")
    d = dbw.start_daemon(backend, db_retention_days=30)
    old = "sessions_" + dbw.value("SELECT to_char(current_date - 40, 'YYYYMMDD')")
    recent = "sessions_" + dbw.value("SELECT to_char(current_date - 5, 'YYYYMMDD')")
    today = "sessions_" + dbw.value("SELECT to_char(current_date, 'YYYYMMDD')")
    wait_until(lambda: dbw.value("SELECT to_regclass('%s') IS NULL" % old) == "t", 5,
               what="%s dropped by retention" % old)
    wait_until(lambda: dbw.value("SELECT to_regclass('%s') IS NOT NULL" % today) == "t", 5,
               what="today's partition %s" % today)
    assert dbw.value("SELECT to_regclass('%s') IS NOT NULL" % recent) == "t"
