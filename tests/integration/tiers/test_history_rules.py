"""The history rules across the tiers (docs/engine.md "The tier rules",
DESIGN.md "Tier semantics"): primary deferral and the retry at the
secondary or (after retry_min_delay) at the primary, pass entries,
skipped-primary, tempfail_stage = rcpt, trap recipients, bait first contact
and its block, MX-list walkers at the bait, hit-and-run.

Windows are shrunk (retry_min_delay 1s, retry_window 4s, block_ttl 2s, see
conftest.TIER_DEFAULTS); every case plays its senders from /24s of its own."""

import time

import pytest

from tierlib import BAIT_REFUSAL, BANNER, BEHAVIOUR_BLOCKS, DEFER, RCPT_DEFER, blocked, held

def assert_defer(v, reasons):
    assert v.greeting.raw == (DEFER + "\r\n").encode(), v.greeting
    assert v.log["verdict"] == "tempfail"
    assert sorted(v.reasons) == sorted(reasons), v.log


def assert_relay(v, reasons):
    assert v.greeting.last == BANNER, v.greeting
    assert v.log["verdict"] == "relay"
    assert sorted(v.reasons) == sorted(reasons), v.log


def assert_blocked(v, ip, reason):
    """assert_blocked - refused at the greeting: 4xx for a behaviour block, 554 for an operator's or DNSBL's."""
    if reason in BEHAVIOUR_BLOCKS:
        assert v.greeting.raw == (held(ip) + "\r\n").encode(), v.greeting
        assert v.log["verdict"] == "tempfail"
    else:
        assert v.greeting.raw == (blocked(ip) + "\r\n").encode(), v.greeting
        assert v.log["verdict"] == "reject"
    assert reason in v.reasons, v.log


def sleep_until(t):
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# -- trap recipients ------------------------------------------------------------

TRAPS = "trap@dest.test, @spamtrap.test"


@pytest.mark.parametrize("net, tier, rcpts", [
    (100, "primary", ["trap@dest.test"]),
    (101, "primary", ["anyone@spamtrap.test"]),
    (102, "primary", ["Trap@DEST.test"]),
    (103, "primary", ["user@dest.test", "trap@dest.test"]),
    (104, "secondary", ["trap@dest.test"]),
], ids=["address", "whole-domain", "case-insensitive", "after-a-good-recipient", "hit-at-the-secondary"])
def test_trap_recipient_blocks_the_client_at_every_tier(world, net, tier, rcpts):
    ip = "127.1.%d.5" % net
    world.dns.host(ip, "mail.sender%d.test" % net)
    world.dns.host(ip[:-1] + "9", "mail9.sender%d.test" % net)
    world.start(trap_recipients=TRAPS)
    v = world.visit(tier, ip, action="open")
    c = v.client
    assert c.ehlo("mail.sender.test").code == 250
    assert c.cmd("MAIL FROM:<sender@example.test>").code == 250
    for rcpt in rcpts[:-1]:
        assert c.cmd("RCPT TO:<%s>" % rcpt).code == 250
    r = c.cmd("RCPT TO:<%s>" % rcpts[-1])
    assert r.raw == (blocked(ip) + "\r\n").encode()
    assert c.is_closed(3.0)
    assert v.log["verdict"] == "reject"
    assert v.reasons == ["trap-recipient"]
    assert world.backend.messages(complete=None) == []
    # from now on refused at the primary and the secondary, before anything
    # else happens (the bait: test_blocked_client_is_refused_at_the_bait_too)
    for t in ("primary", "secondary", "primary"):
        later = world.visit(t, ip)
        assert_blocked(later, ip, "trap-recipient")
    # the block is the address's, not its /24's
    assert_relay(world.visit("primary", ip[:-1] + "9", action="deliver"), [])


# -- deferral, retry, pass --------------------------------------------------------

# A pool of a big sender: forward-confirmed names that do not look dynamic, listed
# by a DNSBL with a suspect weight (bl.test*1), so they are deferred at the primary.
POOL = {"127.1.111.5": "mta5.out.bigsender.test", "127.1.111.9": "mta9.out.bigsender.test",
        "127.1.112.5": "mta-a.out.bigsender.test", "127.2.112.7": "mta-b.out.bigsender.test",
        "127.3.112.8": "mta-c.out.bigsender.test"}

RETRY_CASES = {
    # label: (deferred ip, retrying ip, greeting reason, another host that the pass covers)
    "same-address": ("127.1.110.5", "127.1.110.5", "no-rdns", None),
    "same-24-of-a-pool": ("127.1.111.5", "127.1.111.9", "dnsbl", "127.3.112.8"),
    "same-pool-domain": ("127.1.112.5", "127.2.112.7", "dnsbl", "127.3.112.8"),
}


def start_with_pool(world, **config):
    for ip, name in POOL.items():
        world.dns.host(ip, name).listed("bl.test", ip)
    world.start(dnsbl_sites="bl.test*1", **config)


@pytest.mark.parametrize("label", list(RETRY_CASES))
def test_primary_deferral_retried_at_secondary_then_passed_everywhere(world, label):
    first, retry, reason, sibling = RETRY_CASES[label]
    start_with_pool(world)
    assert_defer(world.visit("primary", first), [reason])
    assert world.backend.mail_connections() == []

    # the MTA moves on to MX 20: relayed, reason retried
    v = world.visit("secondary", retry, action="deliver")
    assert_relay(v, [reason, "retried"])
    assert len(world.backend.messages()) == 1

    # from now on: passed, at the primary and the secondary
    assert_relay(world.visit("primary", retry, action="deliver"), ["passed"])
    assert_relay(world.visit("secondary", retry, action="deliver"), ["passed"])
    assert len(world.backend.messages()) == 3
    # the bait still answers 421 but a passed client is not a back door
    b = world.visit("bait", retry)
    assert b.greeting.raw == (BAIT_REFUSAL + "\r\n").encode()
    assert "bait-first-contact" not in b.reasons
    assert_relay(world.visit("primary", retry), ["passed"])
    if sibling:
        # the pass covers the pool's domain (its names prove a mail pool): another host of it
        assert_relay(world.visit("primary", sibling), ["passed"])
    if label == "same-24-of-a-pool":
        # ... but not the whole /24: a neighbour without a name is deferred on its own
        assert_defer(world.visit("primary", "127.1.111.77"), ["no-rdns"])


def test_neighbour_without_a_pool_name_gets_no_credit_for_a_deferral(world):
    """A /24 neighbour's pending retry counts only for names that prove a mail pool."""
    world.start()
    assert_defer(world.visit("primary", "127.1.113.5"), ["no-rdns"])
    assert_defer(world.visit("secondary", "127.1.113.9"), ["no-rdns", "skipped-primary"])
    # the deferred host's own retry is still there for it
    assert_relay(world.visit("secondary", "127.1.113.5"), ["no-rdns", "retried"])


def test_skipped_primary_then_retry_at_primary_after_min_delay(world):
    ip = "127.1.115.5"
    world.start(retry_min_delay="2s", retry_window="6s")
    assert_defer(world.visit("secondary", ip), ["no-rdns", "skipped-primary"])
    t0 = time.monotonic()
    assert_defer(world.visit("primary", ip), ["no-rdns"])
    # too soon: still deferred, the first deferral's time is kept
    assert_defer(world.visit("primary", ip), ["no-rdns"])
    assert time.monotonic() - t0 < 1.8, "test too slow for retry_min_delay = 2s"
    sleep_until(t0 + 2.3)
    v = world.visit("primary", ip, action="deliver")
    assert_relay(v, ["no-rdns", "retried"])
    assert len(world.backend.messages()) == 1
    # relayed at the secondary as well (a pass entry, or the same pending retry)
    later = world.visit("secondary", ip)
    assert later.greeting.last == BANNER and later.log["verdict"] == "relay"
    assert sorted(later.reasons) in (["passed"], ["no-rdns", "retried"]), later.log


def test_pass_entry_expires_after_pass_ttl(world):
    ip = "127.1.117.5"
    world.start(pass_ttl="1s")
    assert_defer(world.visit("primary", ip), ["no-rdns"])
    assert_relay(world.visit("secondary", ip), ["no-rdns", "retried"])
    t0 = time.monotonic()
    assert_relay(world.visit("primary", ip), ["passed"])
    sleep_until(t0 + 1.3)
    assert_defer(world.visit("primary", ip), ["no-rdns"])


def test_pending_retry_expires_after_retry_window(world):
    ip = "127.1.116.5"
    world.start(retry_min_delay="1s", retry_window="2s")
    t0 = time.monotonic()
    assert_defer(world.visit("primary", ip), ["no-rdns"])
    sleep_until(t0 + 2.4)
    # the deferral is older than retry_window: the secondary sees a client that skipped the primary
    assert_defer(world.visit("secondary", ip), ["no-rdns", "skipped-primary"])
    # and the primary starts over: a new deferral, not retried
    assert_defer(world.visit("primary", ip), ["no-rdns"])


@pytest.mark.parametrize("rule", ["no-rdns", "dnsbl"])
def test_tempfail_stage_rcpt(world, rule):
    ip = "127.1.%d.5" % (120 if rule == "no-rdns" else 121)
    config = {"tempfail_stage": "rcpt"}
    if rule == "dnsbl":
        world.dns.host(ip, "mail.sender121.test").listed("bl.test", ip)
        config["dnsbl_sites"] = "bl.test*1"
    world.start(**config)
    v = world.visit("primary", ip, action="open")
    assert v.greeting.last == BANNER
    c = v.client
    assert c.ehlo("mail.sender.test").code == 250
    assert c.cmd("MAIL FROM:<sender@example.test>").code == 250
    for rcpt in ("a@dest.test", "b@dest.test"):
        assert c.cmd("RCPT TO:<%s>" % rcpt).raw == (RCPT_DEFER + "\r\n").encode()
    r = c.cmd("DATA")
    assert r.code != 354 and r.code >= 400, r
    v.quit()
    assert v.log["verdict"] == "tempfail"
    assert v.reasons == [rule]
    assert world.backend.mail_connections() == []
    # the deferral left a pending retry: the secondary relays it
    s = world.visit("secondary", ip, action="deliver")
    assert_relay(s, [rule, "retried"])
    assert len(world.backend.messages()) == 1


# -- bait -----------------------------------------------------------------------

def test_bait_first_contact_blocks_at_lower_tiers_until_block_ttl(world):
    ip = "127.1.130.5"
    world.dns.host(ip, "mail.sender130.test")
    world.start(block_ttl="2s")
    t0 = time.monotonic()
    b = world.visit("bait", ip)
    assert b.greeting.raw == (BAIT_REFUSAL + "\r\n").encode()
    assert b.log["verdict"] == "tempfail"
    assert sorted(b.reasons) == ["bait", "bait-first-contact"]
    assert_blocked(world.visit("primary", ip), ip, "bait-first-contact")
    assert_blocked(world.visit("secondary", ip), ip, "bait-first-contact")
    assert_blocked(world.visit("primary", ip), ip, "bait-first-contact")
    assert time.monotonic() - t0 < 1.5
    sleep_until(t0 + 2.4)
    assert_relay(world.visit("primary", ip, action="deliver"), [])
    assert world.backend.messages() and len(world.backend.messages()) == 1


@pytest.mark.parametrize("why", ["bait-first-contact", "trap-recipient"])
def test_blocked_client_is_refused_at_the_bait_too(world, why):
    """engine.md: a block applies at every tier (a behaviour block with 421 4.7.1,
    so a real MTA keeps its mail queued; a blocked client in the kernel set never
    reaches any tier); the bait is one of them."""
    ip = "127.1.%d.5" % (131 if why == "bait-first-contact" else 133)
    world.dns.host(ip, "mail.sender%s.test" % ip.split(".")[2])
    world.start(block_ttl="10s", trap_recipients="trap@dest.test")
    if why == "bait-first-contact":
        world.visit("bait", ip)
    else:
        v = world.visit("primary", ip, action="open")
        v.client.ehlo("mail.sender.test")
        v.client.cmd("MAIL FROM:<a@example.test>")
        assert v.client.cmd("RCPT TO:<trap@dest.test>").code == 554
    assert_blocked(world.visit("primary", ip), ip, why)
    assert_blocked(world.visit("bait", ip), ip, why)


def test_block_ttl_doubles_for_a_repeat_offender(world):
    ip = "127.1.132.5"
    world.dns.host(ip, "mail.sender132.test")
    world.start(block_ttl="1s", block_ttl_max="1h")
    t0 = time.monotonic()
    assert "bait-first-contact" in world.visit("bait", ip).reasons
    sleep_until(t0 + 1.4)                   # first block (1 s) over; no lower-tier contact since
    t1 = time.monotonic()
    assert "bait-first-contact" in world.visit("bait", ip).reasons
    sleep_until(t1 + 1.4)                   # a 1 s block would be over; the second lasts 2 s
    assert_blocked(world.visit("primary", ip), ip, "bait-first-contact")
    sleep_until(t1 + 2.4)
    assert_relay(world.visit("primary", ip, action="deliver"), [])


@pytest.mark.parametrize("path", ["deferred-at-primary", "relayed-at-primary", "skipped-primary-at-secondary",
                                  "neighbour-of-24-at-primary"])
def test_client_that_came_down_the_mx_list_only_gets_421_at_the_bait(world, path):
    net = 140 + ["deferred-at-primary", "relayed-at-primary", "skipped-primary-at-secondary",
                 "neighbour-of-24-at-primary"].index(path)
    ip = "127.1.%d.5" % net
    if path == "relayed-at-primary":
        world.dns.host(ip, "mail.sender%d.test" % net)
    world.start()
    if path == "deferred-at-primary":
        assert_defer(world.visit("primary", ip), ["no-rdns"])
    elif path == "relayed-at-primary":
        assert_relay(world.visit("primary", ip, action="deliver"), [])
    elif path == "skipped-primary-at-secondary":
        assert_defer(world.visit("secondary", ip), ["no-rdns", "skipped-primary"])
    else:
        assert_defer(world.visit("primary", ip[:-1] + "9"), ["no-rdns"])
    b = world.visit("bait", ip)
    assert b.greeting.raw == (BAIT_REFUSAL + "\r\n").encode()
    assert b.reasons == ["bait"]
    # not blocked: the primary treats it as before (no 554)
    later = world.visit("primary", ip)
    assert later.greeting.code in (220, 421), later.greeting
    assert "bait-first-contact" not in later.reasons
    assert "block " not in world.daemon.stderr()


def test_lower_tier_contact_older_than_bait_window_does_not_excuse(world):
    ip = "127.1.145.5"
    world.start(bait_window="1s", retry_window="10s")
    t0 = time.monotonic()
    assert_defer(world.visit("primary", ip), ["no-rdns"])
    sleep_until(t0 + 1.4)
    b = world.visit("bait", ip)
    assert sorted(b.reasons) == ["bait", "bait-first-contact"]
    assert_blocked(world.visit("primary", ip), ip, "bait-first-contact")


# -- hit and run ------------------------------------------------------------------

def test_hit_and_run_limit_blocks_a_client_that_never_retries(world):
    ip, good = "127.1.150.5", "127.1.151.5"
    world.start(retry_window="1s", retry_min_delay="500ms", hit_and_run_limit=2, block_ttl="1h")
    t0 = time.monotonic()
    assert_defer(world.visit("primary", ip), ["no-rdns"])
    # a real MTA deferred at the same time retries at the secondary: never counted
    assert_defer(world.visit("primary", good), ["no-rdns"])
    assert_relay(world.visit("secondary", good), ["no-rdns", "retried"])
    # the pending retry expires unanswered (retry_window 1 s, swept within a second more)
    sleep_until(t0 + 2.6)
    t1 = time.monotonic()
    assert_defer(world.visit("primary", ip), ["no-rdns"])    # one hit-and-run: not blocked yet
    sleep_until(t1 + 2.6)
    assert_blocked(world.visit("primary", ip), ip, "hit-and-run")
    assert_blocked(world.visit("secondary", ip), ip, "hit-and-run")
    # the address is blocked, not its /24
    assert_defer(world.visit("primary", ip[:-1] + "9"), ["no-rdns"])
    assert_relay(world.visit("primary", good, action="deliver"), ["passed"])


@pytest.mark.parametrize("answered_by", ["same-24", "same-fcrdns-domain"])
def test_deferral_answered_by_a_sibling_is_not_hit_and_run(world, answered_by):
    """History matches by /24 and by confirmed domain: when a sibling's retry
    answered the deferral (relayed, reason retried), the deferral did not
    expire unanswered, so it must not count as a hit-and-run."""
    if answered_by == "same-24":
        first, sibling = "127.1.111.5", "127.1.111.9"
    else:
        first, sibling = "127.1.112.5", "127.2.112.7"
    start_with_pool(world, retry_window="1s", retry_min_delay="500ms", hit_and_run_limit=1, block_ttl="1h")
    t0 = time.monotonic()
    first_visit = world.visit("primary", first)
    assert first_visit.greeting.raw == (DEFER + "\r\n").encode()
    retry = world.visit("secondary", sibling, action="deliver")
    assert "retried" in retry.reasons
    sleep_until(t0 + 2.6)                   # past retry_window and the next sweep
    later = world.visit("primary", first)
    assert later.greeting.code != 554 and "hit-and-run" not in later.reasons, \
        "the sibling's retry answered this deferral, yet it was counted:\n" + world.daemon.stderr()[-2000:]
