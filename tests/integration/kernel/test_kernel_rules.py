"""Kernel rules end to end: mxtierd in a transparent appliance namespace writes its
verdicts into the nftables sets of the ruleset `mxtierctl rules` prints, and the
kernel drops, passes or fast-paths real connections from a client namespace.

Every assertion about the kernel reads `nft list set inet mxtier ...` inside the
appliance namespace; every assertion about mxtierd reads its session log.
History also counts contacts per /24 and /64, so a test's bait client is in a
prefix that has not talked to a lower tier yet (each test runs a new mxtierd).
"""

import os
import shutil
import signal
import sys
import tempfile
import time

import pytest

# No conftest.py here: other directories import `conftest` by name, so a third
# module of that name would shadow theirs.  The fixtures live in this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import netns_topology as nt  # noqa: E402
from netns_topology import (APPLIANCE_BACKEND_SIDE4, BACKEND4, BAIT4, BAIT6,  # noqa: E402
                            CLIENT6_OTHER64, CLIENTS4, CLIENTS6, PRIMARY4, PRIMARY6)


# -- fixtures: one topology per module; per test a fresh ruleset, backend and mxtierd --

@pytest.fixture(scope="module")
def topo():
    why = nt.missing_prerequisites()
    if why:
        pytest.skip("kernel-rules tests skipped: " + why)
    nt.cleanup_stale()
    t = nt.Topology().create()
    t.routing_loaded = [False]     # `mxtierctl rules --routing` is loaded once per topology
    try:
        yield t
    finally:
        errors = t.destroy()
        assert not errors, "could not delete namespaces: %s" % errors


@pytest.fixture
def kworkdir():
    path = tempfile.mkdtemp(prefix="mxtier-kernel-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def appliance(request, topo, kworkdir):
    """appliance(backend_args=(), **config) - ruleset + routing loaded, backend and mxtierd running.

    Returns (daemon, backend).  Loading the ruleset replaces the table, so every
    test starts with empty sets; every process is stopped by its PID afterwards.
    """
    started = []

    def make(backend_args=(), **config):
        backend = nt.NsBackend(topo, kworkdir, backend_args)
        started.append(backend)
        backend.start()
        daemon = nt.NsDaemon(topo, kworkdir, config)
        daemon.write_config()
        topo.load_ruleset(daemon.conf_path)
        if not topo.routing_loaded[0]:
            topo.load_routing(daemon.conf_path)
            topo.routing_loaded[0] = True
        started.append(daemon)
        daemon.start()
        return daemon, backend

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        for p in started:
            if isinstance(p, nt.NsDaemon):
                print("---- mxtierd stderr ----\n%s" % p.stderr()[-5000:])
        print("---- nft list ruleset ----\n%s" % topo.nft("list", "ruleset", check=False).stdout)
    nt.stop_all(started)


MXTIER_BANNER = "ESMTP mxtier"
BACKEND_BANNER = "recording backend"
BLOCKED_WAIT = 1.0      # a dropped SYN: connect() gets no answer within this (first retransmit is at 1 s)


def wait_element(topo, set_name, key, timeout=2.0):
    """wait_element - (timeout s, expires s) of key once it is in the set."""
    def present():
        elems = topo.set_elements(set_name) or {}
        return elems.get(key)
    return nt.wait_for(present, timeout, what="%s in set %s:\n%s" % (key, set_name, topo.set_text(set_name)))


def wait_gone(topo, set_name, key, timeout=2.0):
    nt.wait_for(lambda: key not in (topo.set_elements(set_name) or {}), timeout,
                what="%s gone from set %s:\n%s" % (key, set_name, topo.set_text(set_name)))


def assert_banner(outcome, marker=MXTIER_BANNER):
    assert outcome[0] == "banner", "expected a banner, got %r" % (outcome,)
    assert outcome[1].startswith("220") and marker in outcome[1], outcome


def assert_dropped(topo, daemon, source, host=PRIMARY4):
    """assert_dropped - the SYN gets no answer and mxtierd never sees a session from source."""
    before = len(daemon.sessions_from(source))
    total = daemon.ctl("status")
    outcome = topo.connect_outcome(source, host, timeout=BLOCKED_WAIT)
    assert outcome == ("timeout", None), "%s -> %s should be dropped in the kernel, got %r" % (source, host, outcome)
    time.sleep(0.2)
    assert len(daemon.sessions_from(source)) == before, "mxtierd logged a session from %s" % source
    assert status_value(daemon.ctl("status"), "sessions_total") == status_value(total, "sessions_total")


def status_value(text, key):
    for line in text.splitlines():
        if line.startswith(key + " "):
            return line.split()[1]
    raise AssertionError("no %s in status:\n%s" % (key, text))


def test_bait_first_contact_is_dropped_in_the_kernel_until_block_ttl(topo, appliance):
    daemon, _ = appliance(block_ttl="4s")
    bad, other = CLIENTS4[1], CLIENTS4[2]

    outcome = topo.connect_outcome(bad, BAIT4)
    assert outcome[0] == "banner" and outcome[1].startswith("421 4.7.0"), outcome
    session = nt.wait_for(lambda: daemon.sessions_from(bad), 3, what="bait session")[0]
    assert session["tier"] == "bait" and "bait-first-contact" in session["reason_list"], session
    blocked_at = time.monotonic()
    timeout, expires = wait_element(topo, "block4", bad)
    assert timeout == 4 and 0 <= expires <= 4, (timeout, expires)

    # The next SYN to the primary is dropped before mxtierd; another client is served.
    assert_dropped(topo, daemon, bad, PRIMARY4)
    assert_banner(topo.connect_outcome(other, PRIMARY4))

    # The element expires with block_ttl and the client gets through again.
    wait_gone(topo, "block4", bad, timeout=6)
    assert time.monotonic() - blocked_at >= 3.0, "element left the set long before block_ttl"
    assert_banner(topo.connect_outcome(bad, PRIMARY4, timeout=3))
    nt.wait_for(lambda: len(daemon.sessions_from(bad)) == 2, 3, what="the second session of %s" % bad)


def test_ipv6_block_covers_the_whole_slash64_and_only_it(topo, appliance):
    daemon, _ = appliance(block_ttl="10s")
    bad, neighbour, elsewhere = CLIENTS6[1], CLIENTS6[3], CLIENT6_OTHER64

    outcome = topo.connect_outcome(bad, BAIT6)
    assert outcome[0] == "banner" and outcome[1].startswith("421 4.7.0"), outcome
    timeout, _ = wait_element(topo, "block6", "fd00:99:1::")
    assert timeout == 10
    assert list(topo.set_elements("block6")) == ["fd00:99:1::"], "block6 holds the masked /64 only"
    assert topo.set_elements("block4") == {}

    assert_dropped(topo, daemon, neighbour, PRIMARY6)
    assert_banner(topo.connect_outcome(elsewhere, PRIMARY6))
    assert "fd00:99:1::/64" in daemon.ctl("block", "list")


def test_ipv4_mapped_block_lands_in_block4(topo, appliance):
    daemon, _ = appliance(block_ttl="30s")
    daemon.ctl("block", "add", "::ffff:10.99.1.7", "30s")
    timeout, _ = wait_element(topo, "block4", "10.99.1.7")
    assert timeout == 30
    assert topo.set_elements("block6") == {}
    listing = daemon.ctl("block", "list")
    assert "10.99.1.7 expires_in=" in listing and "ffff" not in listing, listing
    assert_dropped(topo, daemon, "10.99.1.7")


def test_mxtierctl_block_add_del_list_take_effect_at_once(topo, appliance):
    daemon, _ = appliance(block_ttl="4s")
    x = CLIENTS4[6]
    assert_banner(topo.connect_outcome(x, PRIMARY4))

    t0 = time.monotonic()
    daemon.ctl("block", "add", x, "1h")
    timeout, _ = wait_element(topo, "block4", x, timeout=0.5)
    assert timeout == 3600
    assert time.monotonic() - t0 < 0.5
    assert "%s expires_in=" % x in daemon.ctl("block", "list")
    assert "reason=manual" in daemon.ctl("block", "list")
    assert_dropped(topo, daemon, x)

    t0 = time.monotonic()
    daemon.ctl("block", "del", x)
    wait_gone(topo, "block4", x, timeout=0.5)
    assert x not in daemon.ctl("block", "list")
    assert_banner(topo.connect_outcome(x, PRIMARY4))
    assert "not blocked" in daemon.ctl("block", "del", x, check=False)

    # The daemon enforces the block itself too: with the kernel element removed
    # by hand, the client reaches mxtierd and gets the documented 554.
    daemon.ctl("block", "add", x, "1h")
    wait_element(topo, "block4", x, timeout=0.5)
    topo.nft("delete", "element", "inet", nt.TABLE, "block4", "{ %s }" % x)
    outcome = topo.connect_outcome(x, PRIMARY4, timeout=3)
    assert outcome[0] == "banner" and outcome[1].startswith("554 5.7.1") and "[%s] blocked" % x in outcome[1], outcome
    daemon.ctl("block", "del", x)       # DELSETELEM of a missing element: done, not an error
    assert_banner(topo.connect_outcome(x, PRIMARY4, timeout=3))

    # Without kernel_fast_path a pass never touches the trust sets.
    daemon.ctl("allow", "add", x, "1h")
    assert "%s expires_in=" % x in daemon.ctl("allow", "list")
    time.sleep(0.2)
    assert topo.set_elements("trust4") == {}
    daemon.ctl("allow", "del", x)
    assert x not in daemon.ctl("allow", "list")


def test_flush_ruleset_then_a_new_block_restores_the_table_and_reseeds(topo, appliance):
    daemon, _ = appliance(block_ttl="1h")
    daemon.ctl("block", "add", CLIENTS4[6], "1h")
    daemon.ctl("block", "add", CLIENTS6[6], "1h")
    wait_element(topo, "block4", CLIENTS4[6])
    wait_element(topo, "block6", "fd00:99:1::")

    topo.nft("flush", "ruleset")
    assert topo.set_elements("block4") is None, "the table should be gone"
    daemon.ctl("block", "add", CLIENTS4[7], "1h")

    nt.wait_for(lambda: set(topo.set_elements("block4") or {}) == {CLIENTS4[6], CLIENTS4[7]}, 3,
                what="block4 restored with the old and the new element:\n%s\n%s"
                % (topo.nft("list", "ruleset", check=False).stdout, daemon.stderr()[-2000:]))
    assert list(topo.set_elements("block6")) == ["fd00:99:1::"]
    assert topo.set_elements("trust4") == {} and topo.set_elements("trust6") == {}
    timeout, expires = topo.set_elements("block4")[CLIENTS4[6]]
    assert expires <= 3600, "re-seeded with its remaining time"
    chain = topo.nft("list", "chain", "inet", nt.TABLE, "prerouting").stdout
    assert "tcp dport 25 ip saddr @block4 drop" in chain, chain
    assert "@block6 drop" in chain, chain
    assert "recreated table inet %s" % nt.TABLE in daemon.stderr()
    # The restored drop rule works (interception itself needs the ruleset reloaded).
    assert topo.connect_outcome(CLIENTS4[6], PRIMARY4, timeout=BLOCKED_WAIT) == ("timeout", None)


def test_ruleset_reload_and_sighup_reseed_the_sets(topo, appliance):
    daemon, _ = appliance(block_ttl="1h")
    daemon.ctl("block", "add", CLIENTS4[6], "1h")
    wait_element(topo, "block4", CLIENTS4[6])
    topo.load_ruleset(daemon.conf_path)
    daemon.signal(signal.SIGHUP)
    nt.wait_for(lambda: "reloaded" in daemon.stderr(), 3, what="reload")
    wait_element(topo, "block4", CLIENTS4[6], timeout=3)


def test_fast_path_sends_an_allowed_client_straight_to_the_backend(topo, appliance):
    daemon, backend = appliance(kernel_fast_path="yes")
    rules = topo.nft("list", "table", "inet", nt.TABLE).stdout
    assert "type nat hook prerouting" in rules and "dnat ip to %s:25" % BACKEND4 in rules, rules
    trusted, other = CLIENTS4[3], CLIENTS4[2]

    daemon.ctl("allow", "add", trusted, "1h")
    timeout, _ = wait_element(topo, "trust4", trusted)
    assert timeout == 3600

    c = topo.smtp(trusted, PRIMARY4)
    try:
        greeting = c.greeting()
        assert greeting.code == 220 and BACKEND_BANNER in greeting.text, greeting
        assert c.ehlo().code == 250
        replies = c.send_mail("a@example.org", ["b@example.com"], b"Subject: fast\r\n\r\nfast path\r\n")
        assert replies[-1].code == 250, replies
        assert c.cmd("QUIT").code == 221
    finally:
        c.close()
    peers = nt.wait_for(lambda: [p for p in backend.peers() if p.rsplit(":", 1)[0] == trusted], 3,
                        what="backend connection from %s: %s" % (trusted, backend.peers()))
    assert len(peers) == 1
    assert daemon.sessions_from(trusted) == [], "mxtierd saw the fast-path client"
    assert len(backend.messages()) == 1

    # Untrusted clients still go through mxtierd.
    assert_banner(topo.connect_outcome(other, PRIMARY4))
    # allow del takes the client off the fast path at once.
    daemon.ctl("allow", "del", trusted)
    wait_gone(topo, "trust4", trusted, timeout=0.5)
    assert_banner(topo.connect_outcome(trusted, PRIMARY4))
    nt.wait_for(lambda: daemon.sessions_from(trusted), 3, what="session after allow del")


def test_fast_path_trusted_ipv6_client_is_still_served(topo, appliance):
    # With an IPv4 backend only IPv4 can be NATed to it, and an IPv6 trust element
    # would cover a whole /64: IPv6 allows stay in mxtierd (fast-tracked there).
    daemon, _ = appliance(kernel_fast_path="yes")
    daemon.ctl("allow", "add", CLIENTS6[4], "1h")
    time.sleep(0.5)
    assert not (topo.set_elements("trust6") or {}), topo.set_text("trust6")
    outcome = topo.connect_outcome(CLIENTS6[4], PRIMARY6, timeout=3)
    assert outcome[0] == "banner" and outcome[1].startswith("220"), outcome
    assert "mxtier" in outcome[1], outcome   # mxtierd's banner, not the backend's


def test_allow_after_block_lets_the_client_in(topo, appliance):
    daemon, _ = appliance(block_ttl="1h")
    x = CLIENTS4[5]
    daemon.ctl("block", "add", x, "1h")
    wait_element(topo, "block4", x)
    daemon.ctl("allow", "add", x, "1h")
    assert x not in daemon.ctl("block", "list")
    # The set writer batches its netlink writes: the element goes within moments, not with the reply.
    wait_gone(topo, "block4", x)
    outcome = topo.connect_outcome(x, PRIMARY4, timeout=BLOCKED_WAIT)
    assert outcome[0] == "banner" and outcome[1].startswith("220"), outcome


def test_block_of_an_allowed_client_ends_its_fast_path(topo, appliance):
    daemon, _ = appliance(kernel_fast_path="yes")
    x = CLIENTS4[5]
    daemon.ctl("allow", "add", x, "1h")
    wait_element(topo, "trust4", x)
    daemon.ctl("block", "add", x, "1s")
    assert x not in daemon.ctl("allow", "list"), "mxtierd revoked the pass"
    wait_element(topo, "block4", x)
    wait_gone(topo, "block4", x, timeout=3)
    assert_banner(topo.connect_outcome(x, PRIMARY4, timeout=3), MXTIER_BANNER)


@pytest.mark.parametrize("source_mode", ["appliance", "client"])
def test_backend_source(topo, appliance, source_mode):
    daemon, backend = appliance(backend_source=source_mode)
    x = CLIENTS4[4]
    c = topo.smtp(x, PRIMARY4)
    try:
        assert MXTIER_BANNER in c.greeting().text
        assert c.ehlo().code == 250
        replies = c.send_mail("a@example.org", ["b@example.com"], b"Subject: t\r\n\r\ntransparent\r\n")
        assert replies[-1].code == 250, replies
        c.cmd("QUIT")
    finally:
        c.close()
    session = nt.wait_for(lambda: daemon.sessions_from(x), 3, what="session")[0]
    assert session["verdict"] == "relay" and session["messages"] == "1", session
    conns = backend.mail_connections()
    assert len(conns) == 1, backend.peers()
    peer = conns[0]["peer"].rsplit(":", 1)[0]
    expected = x if source_mode == "client" else APPLIANCE_BACKEND_SIDE4
    assert peer == expected, "backend saw %s, expected %s (backend_source = %s)" % (peer, expected, source_mode)
    assert "cannot connect from the client's address" not in daemon.stderr()


def test_a_running_block_is_back_in_the_kernel_set_after_a_restart(topo, appliance, kworkdir):
    """A reboot empties the kernel sets and mxtierd's memory; the block the
    bait made is in PostgreSQL (contacts.block_until), and the restarted
    daemon puts it back in the set before the source comes back."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "db"))
    import pgcluster
    why = pgcluster.available()
    if why:
        pytest.skip(why)
    cluster = pgcluster.Cluster().create().start()
    try:
        db = cluster.create_database()
        conninfo = cluster.conninfo(db, connect_timeout=2)
        admin = os.path.join(kworkdir, "admin.conf")
        with open(admin, "w") as f:
            f.write("primary_ips = 127.0.0.10\ndatabase = %s\n" % conninfo)
        nt.run([nt.MXTIERCTL, "-c", admin, "db", "migrate"])
        config = {"database": conninfo, "appliance_name": "A", "db_flush_interval": "50ms", "block_ttl": "1h"}
        daemon, _ = appliance(**config)
        bad = CLIENTS4[7]
        outcome = topo.connect_outcome(bad, BAIT4)
        assert outcome[0] == "banner" and outcome[1].startswith("421 4.7.0"), outcome
        wait_element(topo, "block4", bad)
        nt.wait_for(lambda: cluster.value(db, "SELECT count(*) FROM contacts WHERE key = 'a:%s' AND "
                                              "block_until > now() + interval '50 minutes'" % bad) == "1",
                    5, what="the block in contacts")

        # "Reboot": the daemon stops, the table is loaded afresh (empty sets), a new daemon starts.
        daemon.stop()
        topo.load_ruleset(daemon.conf_path)
        assert bad not in (topo.set_elements("block4") or {})
        again = nt.NsDaemon(topo, kworkdir, config, name="mxtierd-again")
        try:
            again.start()
            timeout, expires = wait_element(topo, "block4", bad, timeout=5)
            assert 3000 <= expires <= 3600, "restored with its remaining time, not a fresh block_ttl: %r" % expires
            assert "running blocks loaded" in again.stderr()
            assert_dropped(topo, again, bad, PRIMARY4)
            assert_banner(topo.connect_outcome(CLIENTS4[6], PRIMARY4))
        finally:
            nt.stop_all([again])
    finally:
        cluster.destroy()
