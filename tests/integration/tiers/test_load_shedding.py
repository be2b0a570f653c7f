"""Load shedding at the primary (docs/engine.md "load shedding"): active
sessions >= shed_sessions, or the backend probe failing twice, answer
`421 4.3.2 HOSTNAME Service busy, try again later` at the primary to every
client without a pass or allow entry (reason load-shed / backend-down); the
secondary keeps answering, stands in for the primary (a suspect there is
deferred like at the primary, not skipped-primary) and nobody is blocked at
the bait while the primary is unhealthy. Shedding ends when the cause is
gone (hysteresis: below 80% of the thresholds, backend up)."""

import os
import time

import pytest

from tierlib import BAIT_REFUSAL, BANNER, BUSY, DEFER
from harness import wait_until


def primary_state(world, source):
    """primary_state - one probe at the primary from a clean source: 'busy' or 'open'."""
    v = world.visit("primary", source)
    if v.greeting.raw == (BUSY + "\r\n").encode():
        return "busy"
    assert v.greeting.last == BANNER, v.greeting
    return "open"


def clean(world, ip):
    """clean - a forward-confirmed name in a domain of its own (history also matches by domain)."""
    a, b, c, d = ip.split(".")
    world.dns.host(ip, "mail.n%sx%sx%s.test" % (b, c, d))
    return ip


def test_shed_sessions_at_the_primary_only(world):
    probe = clean(world, "127.1.170.5")
    passed, idle1, idle2 = "127.1.171.5", clean(world, "127.1.172.5"), clean(world, "127.1.173.5")
    newcomer, at_secondary = clean(world, "127.1.174.5"), clean(world, "127.1.175.5")
    suspect, bait_first, allowed = "127.1.176.5", clean(world, "127.1.177.5"), clean(world, "127.3.178.5")
    world.start(shed_sessions=2, allow_networks="127.3.178.0/24")

    # a client with a pass entry, earned before the load comes
    assert world.visit("primary", passed).greeting.raw == (DEFER + "\r\n").encode()
    assert "retried" in world.visit("secondary", passed).reasons

    # two idle sessions reach shed_sessions
    idle = [world.visit("primary", ip, action="open") for ip in (idle1, idle2)]
    assert all(v.greeting.last == BANNER for v in idle)
    wait_until(lambda: primary_state(world, probe) == "busy", 3.0, interval=0.2,
               what="the primary shedding with 2 idle sessions")

    v = world.visit("primary", newcomer)
    assert v.greeting.raw == (BUSY + "\r\n").encode()
    assert (v.log["verdict"], v.reasons) == ("tempfail", ["load-shed"])
    # the secondary still answers
    s = world.visit("secondary", at_secondary, action="deliver")
    assert s.greeting.last == BANNER and s.log["verdict"] == "relay"
    # allow and pass entries are not shed
    a = world.visit("primary", allowed)
    assert a.greeting.last == BANNER and a.reasons == ["allowlist"]
    p = world.visit("primary", passed, action="deliver")
    assert p.greeting.last == BANNER and p.reasons == ["passed"]
    # the secondary stands in: a suspect is deferred as at the primary (pending retry) ...
    d = world.visit("secondary", suspect)
    assert d.greeting.raw == (DEFER + "\r\n").encode()
    assert d.reasons == ["no-rdns"], "skipped-primary while the primary sheds"
    # ... and relayed when it comes back
    r = world.visit("secondary", suspect, action="deliver")
    assert sorted(r.reasons) == ["no-rdns", "retried"]
    # the bait blocks nobody while the primary sheds
    b = world.visit("bait", bait_first)
    assert b.greeting.raw == (BAIT_REFUSAL + "\r\n").encode() and b.reasons == ["bait"]
    assert world.visit("secondary", bait_first).greeting.last == BANNER

    # the load goes away: shedding ends within about two seconds
    for v in idle:
        v.quit()
    t0 = time.monotonic()
    wait_until(lambda: primary_state(world, probe) == "open", 2.5, interval=0.2,
               what="shedding to end after the idle sessions closed")
    assert time.monotonic() - t0 <= 2.5
    v = world.visit("primary", newcomer, action="deliver")
    assert v.log["verdict"] == "relay" and v.reasons == []
    log = world.daemon.stderr()
    assert sum(1 for line in log.splitlines() if "shedding" in line and "session id=" not in line) >= 2, \
        "shedding entry and exit are not logged:\n" + log[-3000:]


def test_backend_down_sheds_the_primary(world):
    probe = clean(world, "127.1.180.5")
    at_secondary, suspect, bait_first = clean(world, "127.1.181.5"), "127.1.182.5", clean(world, "127.1.183.5")
    newcomer = clean(world, "127.1.184.5")
    world.start(backend_probe_interval="1s")
    assert primary_state(world, probe) == "open"
    port = world.backend.port
    world.backend.stop()

    wait_until(lambda: primary_state(world, probe) == "busy", 6.0, interval=0.3,
               what="the primary shedding after the backend went down")
    v = world.visit("primary", newcomer)
    assert v.greeting.raw == (BUSY + "\r\n").encode()
    assert (v.log["verdict"], v.reasons) == ("tempfail", ["backend-down"])

    # the secondary still answers; the backend's absence shows at MAIL
    s = world.visit("secondary", at_secondary, action="open")
    assert s.greeting.last == BANNER
    assert s.client.ehlo("mail.sender.test").code == 250
    r = s.client.cmd("MAIL FROM:<a@example.test>")
    assert r.last.startswith("451 4.4.1"), r
    s.quit()
    # a suspect at the secondary is deferred like at the primary, not skipped-primary
    d = world.visit("secondary", suspect)
    assert d.greeting.raw == (DEFER + "\r\n").encode() and d.reasons == ["no-rdns"]
    # no block at the bait while the lower tiers are down
    b = world.visit("bait", bait_first)
    assert b.greeting.raw == (BAIT_REFUSAL + "\r\n").encode() and b.reasons == ["bait"]
    assert world.visit("secondary", bait_first).greeting.last == BANNER

    # the backend comes back on its port: the primary answers again
    world.start_backend("--port", str(port))
    wait_until(lambda: primary_state(world, probe) == "open", 5.0, interval=0.3,
               what="the primary to stop shedding after the backend came back")
    v = world.visit("primary", newcomer, action="deliver")
    assert v.log["verdict"] == "relay"


def test_shedding_ends_only_below_80_percent_of_shed_sessions(world):
    probe = clean(world, "127.1.185.5")
    idle_ips = [clean(world, "127.1.%d.5" % n) for n in range(186, 191)]
    world.start(shed_sessions=5)
    idle = [world.visit("secondary", ip, action="open") for ip in idle_ips]
    assert all(v.greeting.last == BANNER for v in idle)
    wait_until(lambda: primary_state(world, probe) == "busy", 3.0, interval=0.2,
               what="the primary shedding with 5 idle sessions")
    idle.pop().quit()                       # 4 sessions: 80%, not below
    time.sleep(1.6)
    assert primary_state(world, probe) == "busy", "shedding ended at 80% of shed_sessions"
    idle.pop().quit()                       # 3 sessions: 60%
    wait_until(lambda: primary_state(world, probe) == "open", 2.5, interval=0.2,
               what="shedding to end at 60% of shed_sessions")
    for v in idle:
        v.quit()


def test_shed_contact_at_the_primary_excuses_a_later_bait_contact(world):
    """A client that was turned away by the shedding primary did contact it
    ("every contact is remembered"): when it walks on to the bait after the
    primary recovered, it came down the MX list and must not be blocked."""
    probe, walker = clean(world, "127.1.195.5"), clean(world, "127.1.196.5")
    idle_ips = [clean(world, "127.1.197.5"), clean(world, "127.1.198.5")]
    world.start(shed_sessions=2)
    idle = [world.visit("secondary", ip, action="open") for ip in idle_ips]
    wait_until(lambda: primary_state(world, probe) == "busy", 3.0, interval=0.2,
               what="the primary shedding with 2 idle sessions")
    assert world.visit("primary", walker).greeting.raw == (BUSY + "\r\n").encode()
    for v in idle:
        v.quit()
    wait_until(lambda: primary_state(world, probe) == "open", 3.0, interval=0.2,
               what="shedding to end")
    b = world.visit("bait", walker)
    assert b.greeting.raw == (BAIT_REFUSAL + "\r\n").encode()
    assert b.reasons == ["bait"], b.log
    after = world.visit("primary", walker)
    assert after.greeting.last == BANNER, after.greeting


def test_shed_loadavg_at_the_primary_only(world):
    """shed_loadavg far below the machine's load: the primary sheds (load-shed), the secondary answers."""
    if os.getloadavg()[0] < 0.1:
        pytest.skip("1-minute load average %.2f too low to exceed shed_loadavg = 0.01" % os.getloadavg()[0])
    probe, newcomer, other = clean(world, "127.1.199.5"), clean(world, "127.1.199.6"), clean(world, "127.1.199.7")
    world.start(shed_loadavg="0.01")
    wait_until(lambda: primary_state(world, probe) == "busy", 3.0, interval=0.2,
               what="the primary shedding with shed_loadavg = 0.01")
    v = world.visit("primary", newcomer)
    assert v.greeting.raw == (BUSY + "\r\n").encode()
    assert (v.log["verdict"], v.reasons) == ("tempfail", ["load-shed"])
    s = world.visit("secondary", other, action="deliver")
    assert s.log["verdict"] == "relay" and s.reasons == []
