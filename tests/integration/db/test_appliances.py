"""Two appliances sharing one database: a deferral at A's primary is a
pending retry at B's secondary, and a listing made on A is applied by B."""

import time

from dblib import ctl, db_counters
from harness import PRIMARY, SECONDARY, wait_until
from tierlib import TIER_DEFAULTS

# appliance B's tier addresses (A uses the harness's 127.0.0.10/11/12)
B_PRIMARY, B_SECONDARY, B_BAIT = "127.0.0.20", "127.0.0.21", "127.0.0.22"
MSG = b"Subject: shared history\r\n\r\nhello\r\n"


def two_appliances(dbw, dns, backend, **extra):
    cfg = dict(TIER_DEFAULTS)
    cfg["dns_servers"] = dns.server
    cfg.update(extra)
    a = dbw.start_daemon(backend, appliance="A", **cfg)
    b = dbw.start_daemon(backend, appliance="B", primary_ips=B_PRIMARY, secondary_ips=B_SECONDARY,
                         bait_ips=B_BAIT, **cfg)
    for d in (a, b):
        wait_until(lambda: db_counters(d)["connected"] == "yes", 5, what="db_connected yes")
    return a, b


def test_pending_retry_seen_by_other_appliance(dbw, dns, backend, connect):
    a, b = two_appliances(dbw, dns, backend)
    client = "127.1.8.5"                           # no PTR: suspicious (no-rdns)

    c = connect(a, host=PRIMARY, source=client)
    g = c.greeting()
    assert g.code == 421, g
    assert c.is_closed(3)
    log_a = a.session_for(c)
    assert log_a["verdict"] == "tempfail" and "no-rdns" in log_a["reason_list"], log_a

    wait_until(lambda: dbw.rows("SELECT pending_since FROM contacts WHERE key = 'a:%s' "
                                "AND pending_since IS NOT NULL" % client), 5,
               what="pending retry of %s in contacts" % client)
    t_seen = time.monotonic()

    c = connect(b, host=B_SECONDARY, source=client)
    g = c.greeting()
    assert g.code == 220, "B's secondary refused the retry from A's deferral: %r\n%s" % (g, b.stderr()[-2000:])
    assert c.ehlo("mail.retry.test").code == 250
    replies = c.send_mail("a@retry.test", ["b@dest.test"], MSG)
    assert [r.code for r in replies] == [250, 250, 354, 250], replies
    c.cmd("QUIT")
    log_b = b.session_for(c)
    assert log_b["verdict"] == "relay" and "retried" in log_b["reason_list"], log_b
    print("\nretry relayed at B %.2fs after A's contact row appeared" % (time.monotonic() - t_seen))

    # the client's own two sessions (the harness's readiness probes are sessions too)
    query = "SELECT * FROM sessions WHERE client = '%s'" % client
    dbw.wait_rows(2, query)
    rows = {r["appliance"]: r for r in dbw.rows(query)}
    assert (rows["A"]["tier"], rows["A"]["verdict"]) == ("primary", "tempfail")
    assert (rows["B"]["tier"], rows["B"]["verdict"]) == ("secondary", "relay")
    assert "retried" in rows["B"]["reasons"]
    contact = dbw.rows("SELECT * FROM contacts WHERE key = 'a:%s'" % client)[0]
    wait_until(lambda: dbw.rows("SELECT 1 FROM contacts WHERE key = 'a:%s' AND pass_until > now() "
                                "AND last_secondary IS NOT NULL AND last_primary IS NOT NULL" % client), 5,
               what="pass entry and both contacts for %s: %s" % (client, contact))
    assert dbw.rows("SELECT 1 FROM contacts WHERE key = 'p:127.1.8.0/24'"), \
        "no prefix contact: %s" % dbw.rows("SELECT key FROM contacts")
    apps = sorted(x["name"] for x in dbw.rows("SELECT name FROM appliances"))
    assert apps == ["A", "B"]


def test_listing_on_a_applied_by_b(dbw, backend, connect):
    a = dbw.start_daemon(backend, appliance="A")
    b = dbw.start_daemon(backend, appliance="B", primary_ips=B_PRIMARY, secondary_ips=B_SECONDARY,
                         bait_ips=B_BAIT)
    for d in (a, b):
        wait_until(lambda: db_counters(d)["connected"] == "yes", 5, what="db_connected yes")
    bad = "127.0.8.66"
    c = connect(b, host=B_PRIMARY, source=bad)
    assert c.greeting().code == 220
    c.close()

    t0 = time.monotonic()
    ctl(a.conf_path, "block", "add", bad, "1h")
    row = dbw.rows("SELECT * FROM listings")
    assert len(row) == 1 and row[0]["network"] == bad + "/32" and row[0]["kind"] == "block", row
    assert row[0]["expires_at"], row

    def refused_on_b():
        c = connect(b, host=B_PRIMARY, source=bad)
        g = c.greeting()
        c.close()
        return g.code == 554 and g
    g = wait_until(refused_on_b, 5, interval=0.1, what="block made on A applied by B")
    elapsed = time.monotonic() - t0
    assert "blocked" in g.last, g
    # and on A itself (told directly)
    c = connect(a, host=PRIMARY, source=bad)
    assert c.greeting().code == 554
    print("\nblock on A refused on B after %.2fs" % elapsed)

    # an allow entry made on B fast-tracks at A
    good = "127.0.9.77"
    ctl(b.conf_path, "allow", "add", good, "1h")

    def allowed_on_a():
        c = connect(a, host=PRIMARY, source=good)
        ok = c.greeting().code == 220 and c.ehlo().code == 250 and c.cmd("QUIT").code == 221
        c.close()
        return ok and "allowlist" in a.session_for(c)["reason_list"]
    wait_until(allowed_on_a, 5, interval=0.2, what="allow entry made on B applied by A")

    # why shows the listing
    why = ctl(b.conf_path, "why", bad).stdout
    assert "block" in why, why

    # and lifting the block on A lets the client in at B again
    ctl(a.conf_path, "block", "del", bad)

    def accepted_on_b():
        c = connect(b, host=B_PRIMARY, source=bad)
        g = c.greeting()
        c.close()
        return g.code == 220
    wait_until(accepted_on_b, 5, interval=0.1, what="block deleted on A lifted at B")


def test_bait_block_on_a_refused_on_b(dbw, backend, connect):
    """A back-door sender caught at A's bait (first contact) is blocked at B
    too: block_until travels in contacts."""
    a = dbw.start_daemon(backend, appliance="A", block_ttl="1h")
    b = dbw.start_daemon(backend, appliance="B", primary_ips=B_PRIMARY, secondary_ips=B_SECONDARY,
                         bait_ips=B_BAIT, block_ttl="1h")
    for d in (a, b):
        wait_until(lambda: db_counters(d)["connected"] == "yes", 5, what="db_connected yes")
    spammer = "127.1.9.9"
    c = connect(a, host="127.0.0.12", source=spammer)
    assert c.greeting().code == 421
    log = a.session_for(c)
    assert "bait-first-contact" in log["reason_list"], log
    wait_until(lambda: dbw.rows("SELECT 1 FROM contacts WHERE key = 'a:%s' AND block_until > now()" % spammer), 5,
               what="block_until for %s in contacts: %s" % (spammer, dbw.rows("SELECT * FROM contacts")))

    def refused_on_b():
        c = connect(b, host=B_PRIMARY, source=spammer)
        g = c.greeting()
        c.close()
        return g.code == 421 and g
    g = wait_until(refused_on_b, 5, interval=0.2, what="bait block made on A applied at B")
    # a behaviour block: 4xx, so a real MTA caught by a DNS mistake keeps its mail queued
    assert "temporarily blocked" in g.last, g
