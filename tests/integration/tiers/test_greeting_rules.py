"""The DNS rules at the greeting (docs/engine.md "The tier rules"): no-rdns,
rdns-mismatch, dynamic-rdns, dynamic-range, dnsbl (suspect / reject, weights,
filters), dnswl and dns-unknown, first at the primary and then, for one case
of every rule, at the secondary (a suspect that skipped the healthy primary
is deferred with skipped-primary; hard failures and allow-listings are the
same as at the primary).

Every case asserts the reply the client sees and the session log line
(tier, verdict, the exact reason set, rdns, fcrdns, dnsbl score)."""

import time

import pytest

from tierlib import BANNER, DEFER, listed
from tier_dns import dnsbl_name, reverse_name

BL, BL2, WL = "bl.test", "bl2.test", "wl.test"


class Case:
    def __init__(self, label, net, setup, expect, reasons=(), rdns="-", fcrdns="no", dnsbl="0",
                 config=None, files=None):
        self.label = label
        self.ip = "127.1.%d.5" % net           # a /24 of its own per case
        self.setup = setup
        self.expect = expect                   # "relay" | "defer" | "listed"
        self.reasons = sorted(reasons)
        self.rdns = rdns
        self.fcrdns = fcrdns
        self.dnsbl = dnsbl
        self.config = config or {}
        self.files = files or {}               # config key -> lines of a file


def nothing(dns, ip):
    pass


def host(name):
    return lambda dns, ip: dns.host(ip, name.replace("IP", ip.replace(".", "-")))


def ptr_only(name):
    return lambda dns, ip: dns.ptr(ip, name)


def clean_and(*more):
    def setup(dns, ip):
        dns.host(ip, "mail.sender%s.test" % ip.split(".")[2])
        for f in more:
            f(dns, ip)
    return setup


def on(zone, value="127.0.0.2"):
    return lambda dns, ip: dns.listed(zone, ip, value)


def silence_ptr(dns, ip):
    dns.silence(reverse_name(ip))


def silence_dnsbl(zone):
    def setup(dns, ip):
        dns.silence(dnsbl_name(ip, zone))
    return setup


CASES = [
    Case("clean-fcrdns", 1, host("mail.sender1.test"), "relay",
         rdns="mail.sender1.test", fcrdns="yes"),
    Case("no-rdns", 2, nothing, "defer", ["no-rdns"]),
    Case("rdns-mismatch-other-address", 3,
         lambda d, ip: d.ptr(ip, "mail.forged3.test").a("mail.forged3.test", "127.200.0.1"),
         "defer", ["rdns-mismatch"], rdns="mail.forged3.test"),
    Case("rdns-mismatch-no-forward-record", 4, ptr_only("mail.forged4.test"),
         "defer", ["rdns-mismatch"], rdns="mail.forged4.test"),
    Case("dynamic-rdns-octets-dashed", 5, host("127-1-5-5.access.isp5.test"),
         "defer", ["dynamic-rdns"], rdns="127-1-5-5.access.isp5.test", fcrdns="yes"),
    Case("dynamic-rdns-octets-reversed", 6, host("5.6.1.127.access.isp6.test"),
         "defer", ["dynamic-rdns"], rdns="5.6.1.127.access.isp6.test", fcrdns="yes"),
    Case("dynamic-rdns-octets-zero-padded", 7, host("127001007005.isp7.test"),
         "defer", ["dynamic-rdns"], rdns="127001007005.isp7.test", fcrdns="yes"),
    Case("dynamic-rdns-word-pool", 8, host("pool-77.isp8.test"),
         "defer", ["dynamic-rdns"], rdns="pool-77.isp8.test", fcrdns="yes"),
    Case("dynamic-rdns-word-dyn", 9, host("x9.dyn.isp9.test"),
         "defer", ["dynamic-rdns"], rdns="x9.dyn.isp9.test", fcrdns="yes"),
    Case("dynamic-rdns-word-dsl", 10, host("dsl12.isp10.test"),
         "defer", ["dynamic-rdns"], rdns="dsl12.isp10.test", fcrdns="yes"),
    Case("dynamic-rdns-operator-pattern", 11, host("guest12.campus11.test"),
         "defer", ["dynamic-rdns"], rdns="guest12.campus11.test", fcrdns="yes",
         files={"dynamic_rdns_patterns_file": ["# wifi guests", r"^GUEST[0-9]+\.", r"\.wlan\.example$"]}),
    Case("operator-pattern-no-match", 12, host("mx1.campus12.test"), "relay",
         rdns="mx1.campus12.test", fcrdns="yes",
         files={"dynamic_rdns_patterns_file": [r"^GUEST[0-9]+\.", r"\.wlan\.example$"]}),
    Case("dynamic-word-inside-a-label-is-not-dynamic", 13, host("mail.whirlpool13.test"), "relay",
         rdns="mail.whirlpool13.test", fcrdns="yes"),
    Case("dynamic-range", 14, host("mail.sender14.test"), "defer", ["dynamic-range"],
         rdns="mail.sender14.test", fcrdns="yes",
         files={"dynamic_ranges_file": ["10.0.0.0/8", "127.1.14.0/24"]}),
    Case("dynamic-range-other-network", 15, host("mail.sender15.test"), "relay",
         rdns="mail.sender15.test", fcrdns="yes",
         files={"dynamic_ranges_file": ["10.0.0.0/8", "127.1.16.0/24"]}),
    Case("dnsbl-suspect", 16, clean_and(on(BL)), "defer", ["dnsbl"],
         rdns="mail.sender16.test", fcrdns="yes", dnsbl="1", config={"dnsbl_sites": BL + "*1"}),
    Case("dnsbl-reject", 17, clean_and(on(BL)), "listed", ["dnsbl"],
         rdns="mail.sender17.test", fcrdns="yes", dnsbl="3", config={"dnsbl_sites": BL + "*3"}),
    Case("dnsbl-weights-add-up-to-reject", 18, clean_and(on(BL), on(BL2)), "listed", ["dnsbl"],
         rdns="mail.sender18.test", fcrdns="yes", dnsbl="3",
         config={"dnsbl_sites": "%s*2, %s*1" % (BL, BL2)}),
    Case("dnsbl-one-site-below-reject", 19, clean_and(on(BL)), "defer", ["dnsbl"],
         rdns="mail.sender19.test", fcrdns="yes", dnsbl="2",
         config={"dnsbl_sites": "%s*2, %s*1" % (BL, BL2)}),
    Case("dnsbl-filter-match", 20, clean_and(on(BL, "127.0.0.3")), "defer", ["dnsbl"],
         rdns="mail.sender20.test", fcrdns="yes", dnsbl="1",
         config={"dnsbl_sites": BL + "=127.0.0.[2..3]*1"}),
    Case("dnsbl-filter-miss", 21, clean_and(on(BL, "127.0.0.4")), "relay",
         rdns="mail.sender21.test", fcrdns="yes", dnsbl="0",
         config={"dnsbl_sites": BL + "=127.0.0.[2..3]*1"}),
    Case("dnsbl-below-suspect-score", 22, clean_and(on(BL)), "relay",
         rdns="mail.sender22.test", fcrdns="yes", dnsbl="1",
         config={"dnsbl_sites": BL + "*1", "dnsbl_suspect_score": 2}),
    Case("dnswl-negative-weight-relays-at-once", 23, on(WL), "relay", ["dnswl"], dnsbl="-2",
         config={"dnsbl_sites": WL + "*-2"}),
    Case("dnswl-outweighed-by-dnsbl", 24, clean_and(on(BL), on(WL)), "defer", ["dnsbl"],
         rdns="mail.sender24.test", fcrdns="yes", dnsbl="1",
         config={"dnsbl_sites": "%s*2 %s*-1" % (BL, WL)}),
    Case("dns-unknown-ptr-timeout", 25, silence_ptr, "defer", ["dns-unknown"]),
    Case("dns-unknown-forward-timeout", 26,
         lambda d, ip: d.ptr(ip, "mail.slow26.test").silence("mail.slow26.test"),
         "defer", ["dns-unknown"], rdns="mail.slow26.test"),
    Case("dns-unknown-dnsbl-timeout", 27, clean_and(silence_dnsbl(BL)), "defer", ["dns-unknown"],
         rdns="mail.sender27.test", fcrdns="yes", config={"dnsbl_sites": BL + "*1"}),
]

BY_LABEL = {c.label: c for c in CASES}

# one case per rule family, again at the secondary as the first contact
SECONDARY_CASES = ["clean-fcrdns", "no-rdns", "rdns-mismatch-other-address", "dynamic-rdns-octets-dashed",
                   "dynamic-rdns-operator-pattern", "dynamic-range", "dnsbl-suspect", "dnsbl-reject",
                   "dnswl-negative-weight-relays-at-once", "dns-unknown-ptr-timeout"]


def run_case(world, case, tier):
    case.setup(world.dns, case.ip)
    config = dict(case.config)
    for key, lines in case.files.items():
        config[key] = world.file(key + ".txt", lines)
    d = world.start(**config)
    v = world.visit(tier, case.ip, action="deliver" if case.expect == "relay" else "quit")
    if case.expect == "relay":
        assert v.greeting.last == BANNER
        assert v.log["verdict"] == "relay"
        assert len(world.backend.messages()) == 1
    elif case.expect == "defer":
        assert v.greeting.raw == (DEFER + "\r\n").encode()
        assert v.log["verdict"] == "tempfail"
    else:
        assert v.greeting.raw == (listed(case.ip) + "\r\n").encode()
        assert v.log["verdict"] == "reject"
    if case.expect != "relay":
        assert world.backend.mail_connections() == []
    log = v.log
    assert log["tier"] == tier
    assert log["client"].startswith(case.ip + ":")
    assert (log["rdns"], log["fcrdns"], log["dnsbl"]) == (case.rdns, case.fcrdns, case.dnsbl), log
    return d, v


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_greeting_rule_at_primary(world, case):
    _, v = run_case(world, case, "primary")
    assert sorted(v.reasons) == case.reasons, v.log


@pytest.mark.parametrize("label", SECONDARY_CASES, ids=SECONDARY_CASES)
def test_greeting_rule_at_secondary_first(world, label):
    case = BY_LABEL[label]
    _, v = run_case(world, case, "secondary")
    expected = list(case.reasons)
    if case.expect == "defer":
        expected.append("skipped-primary")
    assert sorted(v.reasons) == sorted(expected), v.log


def test_dns_timeout_bounds_the_greeting(world):
    """A name that never answers costs dns_timeout, not more: the 421 comes in time."""
    case = BY_LABEL["dns-unknown-ptr-timeout"]
    case.setup(world.dns, "127.1.28.5")
    world.start(dns_timeout="800ms")
    v = world.visit("primary", "127.1.28.5")
    assert v.greeting.raw == (DEFER + "\r\n").encode()
    assert v.reasons == ["dns-unknown"]
    assert 0.6 <= v.seconds <= 2.5, "greeting after %.2fs with dns_timeout 800ms" % v.seconds


def test_nothing_is_sent_before_dns_has_answered(world):
    """With a greet wait, a clean client's first banner line only leaves once DNS answered,
    and a suspect's 421 is the whole greeting (no "220-" before it)."""
    good, bad = "127.1.29.5", "127.1.30.5"
    world.dns.host(good, "mail.sender29.test").delay(reverse_name(good), 0.4)
    world.dns.delay(reverse_name(bad), 0.4)
    world.start(greet_wait="1s", dns_timeout="2s")
    for ip, expect in ((good, b"220-"), (bad, (DEFER + "\r\n").encode())):
        c = world.connect("primary", ip)
        t0 = time.monotonic()
        first = c.read_line(timeout=5)
        waited = time.monotonic() - t0
        assert first.startswith(expect), first
        assert waited >= 0.35, "%r sent %.2fs after connect, before the PTR answer (0.4s)" % (first, waited)
        if expect == b"220-":
            assert c.read_line(timeout=5) == (BANNER + "\r\n").encode()
        else:
            assert c.is_closed(3.0)


def test_one_lost_datagram_is_not_unknown(world):
    """dns_timeout is per lookup with two tries: a single lost query is retried, not 'unknown'."""
    ip = "127.1.31.5"
    world.dns.host(ip, "mail.sender31.test").drop_first(reverse_name(ip), 1)
    world.start(dns_timeout="1s")
    v = world.visit("primary", ip, action="deliver")
    assert v.log["verdict"] == "relay" and v.reasons == []
    assert v.log["rdns"] == "mail.sender31.test"
    assert world.dns.queried(reverse_name(ip), "PTR") == 2
