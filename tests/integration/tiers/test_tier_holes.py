"""Scripted bots against the holes the tier rules once had: trust earned by
a retry (`retried`, `passed`) lifts only the soft DNS suspicions, never the
protocol checks; one dynamic host's pass never covers its ISP; /24
neighbours cannot alternate through the secondary.  None of these bots may
reach the backend; the real MTAs beside them still get through."""

from tierlib import BANNER, DEFER

# The greet wait makes pregreet visible; the tier rules' windows stay short.
GREET = {"greet_wait": "400ms"}


def assert_defer(v, reasons):
    assert v.greeting.code == 421, v.greeting
    assert v.log["verdict"] == "tempfail", v.log
    assert sorted(v.reasons) == sorted(reasons), v.log


def assert_nothing_reached_the_backend(world):
    assert world.backend.mail_connections() == [], "a bot's session reached the backend"


def walk_to_the_secondary(world, ip):
    """walk_to_the_secondary - what MX walking looks like: 421 at the primary."""
    assert_defer(world.visit("primary", ip), ["no-rdns"])


def pregreet_session(world, tier, ip):
    """pregreet_session - ratware: the whole transaction before the banner's last line."""
    c = world.connect(tier, ip)
    c.send(b"EHLO rat.example\r\nMAIL FROM:<r@example.test>\r\nRCPT TO:<user@dest.test>\r\nDATA\r\nQUIT\r\n")
    replies, _ = c.replies_until_close(3)
    c.close()
    return world.daemon.session_for(c), replies


def pipelining_session(world, tier, ip):
    """pipelining_session - waits for the banner, then HELO..DATA and a body in one write."""
    c = world.connect(tier, ip)
    g = c.greeting()
    assert g.last == BANNER, g
    c.send(b"HELO rat.example\r\nMAIL FROM:<r@example.test>\r\nRCPT TO:<user@dest.test>\r\nDATA\r\n"
           b"Subject: buy\r\n\r\nnow\r\n.\r\nQUIT\r\n")
    replies, _ = c.replies_until_close(3)
    c.close()
    return world.daemon.session_for(c), replies


def test_mx_walking_ratware_that_pregreets_is_stopped_at_the_secondary(world):
    ip = "127.1.170.5"
    world.start(**GREET)
    walk_to_the_secondary(world, ip)
    log, replies = pregreet_session(world, "secondary", ip)
    assert log["verdict"] == "reject", log
    assert "pregreet" in log["reason_list"] and "retried" in log["reason_list"], log
    assert not any(r.code == 354 for r in replies), replies
    assert_nothing_reached_the_backend(world)
    # what its retry earned is gone: deferred again at the primary, not `passed`
    assert_defer(world.visit("primary", ip), ["no-rdns"])


def test_mx_walking_ratware_that_pipelines_is_stopped_at_the_secondary(world):
    ip = "127.1.171.5"
    world.start(**GREET)
    walk_to_the_secondary(world, ip)
    log, replies = pipelining_session(world, "secondary", ip)
    assert log["verdict"] == "reject", log
    assert "pipelining" in log["reason_list"], log
    assert not any(r.code == 354 for r in replies), replies
    assert_nothing_reached_the_backend(world)


def test_a_passed_sender_that_turns_to_pipelining_is_stopped_and_loses_its_pass(world):
    ip = "127.1.172.5"
    world.start(**GREET)
    walk_to_the_secondary(world, ip)
    v = world.visit("secondary", ip, action="deliver")
    assert "retried" in v.reasons
    assert len(world.backend.messages()) == 1
    log, _ = pipelining_session(world, "primary", ip)
    assert "passed" in log["reason_list"] and "pipelining" in log["reason_list"], log
    assert log["verdict"] == "reject", log
    assert len(world.backend.messages()) == 1
    assert_defer(world.visit("primary", ip), ["no-rdns"])


def test_retried_client_still_gets_the_greet_wait(world):
    ip = "127.1.173.5"
    world.start(greet_wait="700ms")
    walk_to_the_secondary(world, ip)
    v = world.visit("secondary", ip, action="deliver")
    assert "retried" in v.reasons
    assert v.seconds >= 0.6, "the banner came before greet_wait: %.3fs" % v.seconds
    later = world.visit("primary", ip)
    assert "passed" in later.reasons and later.seconds >= 0.6


def test_allowlisted_client_keeps_its_fast_banner(world):
    ip = "127.1.174.5"
    world.start(greet_wait="700ms", allow_networks="127.1.174.0/24")
    v = world.visit("primary", ip, action="deliver")
    assert v.reasons == ["allowlist"] and v.seconds < 0.5, (v.seconds, v.log)


ISP_HOSTS = ["127.1.175.5", "127.1.175.6", "127.2.175.7", "127.3.175.8", "127.4.175.9"]


def isp_name(ip):
    return "dyn-%s.pool.bigisp.test" % ip.replace(".", "-")


def test_one_dynamic_hosts_pass_never_covers_its_isp(world):
    for ip in ISP_HOSTS:
        world.dns.host(ip, isp_name(ip))       # forward-confirmed, and dynamic-looking
    world.start(**GREET)
    walker = ISP_HOSTS[0]
    assert_defer(world.visit("primary", walker), ["dynamic-rdns"])
    assert "retried" in world.visit("secondary", walker, action="deliver").reasons
    assert len(world.backend.messages()) == 1
    # the pass is the walker's own
    assert "passed" in world.visit("primary", walker).reasons
    # other hosts of the ISP, in its /24 and beyond: deferred at the primary on their own
    for other in ISP_HOSTS[1:3]:
        v = world.visit("primary", other)
        assert v.greeting.raw == (DEFER + "\r\n").encode(), (other, v.log)
        assert v.reasons == ["dynamic-rdns"], v.log
    # one that goes straight to the secondary: the walker's pass and deferrals are no retry of its own
    s = world.visit("secondary", ISP_HOSTS[3])
    assert sorted(s.reasons) == ["dynamic-rdns", "skipped-primary"], s.log
    # a pregreet bot of the same ISP gets nowhere
    log, _ = pregreet_session(world, "primary", ISP_HOSTS[4])
    assert log["verdict"] == "tempfail", log
    assert len(world.backend.messages()) == 1


def test_24_neighbours_straight_to_the_secondary_never_alternate(world):
    world.start(**GREET)
    deferred = "127.1.176.5"
    assert_defer(world.visit("primary", deferred), ["no-rdns"])
    for n in range(10, 19):
        v = world.visit("secondary", "127.1.176.%d" % n)
        assert v.greeting.raw == (DEFER + "\r\n").encode(), (n, v.log)
        assert sorted(v.reasons) == ["no-rdns", "skipped-primary"], (n, v.log)
    assert_nothing_reached_the_backend(world)
    # nothing the neighbours did consumed or created a retry: the deferred host's own walk still works
    v = world.visit("secondary", deferred, action="deliver")
    assert "retried" in v.reasons
    assert len(world.backend.messages()) == 1
