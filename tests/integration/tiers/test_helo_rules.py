"""helo-invalid. docs/engine.md: "At MAIL: helo-invalid (bad host name
syntax, a bare IP without brackets, or our own name or tier address) is
suspicious" (since a3eaed2 a dotless name is valid syntax and no longer
flagged). The check runs at MAIL, after the banner, so under either
tempfail_stage the suspect's deferral is the 451 4.7.1 to each RCPT (MAIL
itself is taken with 250), and it leaves a pending retry for the secondary.
The client itself is clean (forward-confirmed rDNS), so the HELO name is
the only thing against it."""

import pytest

from tierlib import BANNER, RCPT_DEFER
from harness import HOSTNAME

HELOS = [
    # label, helo, invalid?
    ("bare-ip", "192.0.2.7", True),
    ("bare-own-ip", "OWN", True),
    ("empty-label", "mail..sender.test", True),
    ("bad-character", "mail!sender.test", True),
    ("broken-address-literal", "[300.1.2.3]", True),
    ("our-hostname", HOSTNAME, True),
    ("our-hostname-other-case", HOSTNAME.upper(), True),
    ("primary-tier-literal", "[127.0.0.10]", True),
    ("secondary-tier-literal", "[127.0.0.11]", True),
    ("bait-tier-literal", "[127.0.0.12]", True),
    ("valid-hostname", "mail.sender.test", False),
    ("valid-trailing-dot", "mail.sender.test.", False),
    ("dotless-name-is-poor-but-valid", "WIN-ABC123", False),
    ("valid-own-address-literal", "[OWN]", False),
    ("valid-foreign-address-literal", "[192.0.2.7]", False),
]

# every name with the default tempfail_stage, a sample again with tempfail_stage = rcpt
RCPT_STAGE_SAMPLE = ("bare-ip", "our-hostname", "primary-tier-literal", "valid-hostname")
PARAMS = [("greeting",) + h for h in HELOS] + [("rcpt",) + h for h in HELOS if h[0] in RCPT_STAGE_SAMPLE]
IDS = ["%s-stage-%s" % (stage, label) for stage, label, _, _ in PARAMS]


@pytest.mark.parametrize("stage, label, helo, invalid", PARAMS, ids=IDS)
def test_helo_invalid_at_primary(world, stage, label, helo, invalid):
    n = 40 + [h[0] for h in HELOS].index(label) + (20 if stage == "rcpt" else 0)
    ip = "127.1.%d.5" % n
    helo = helo.replace("OWN", ip)
    world.dns.host(ip, "mail.sender%d.test" % n)
    world.start(tempfail_stage=stage)
    v = world.visit("primary", ip, action="open")
    assert v.greeting.last == BANNER, "HELO is not known at the greeting"
    c = v.client
    assert c.cmd("EHLO " + helo).code == 250
    assert c.cmd("MAIL FROM:<sender@example.test>").code == 250
    if invalid:
        for rcpt in ("a@dest.test", "b@dest.test"):
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            assert r.raw == (RCPT_DEFER + "\r\n").encode()
        r = c.cmd("DATA")
        assert r.code != 354 and r.code >= 400
        v.quit()
        assert v.log["verdict"] == "tempfail"
        assert v.reasons == ["helo-invalid"]
        assert world.backend.mail_connections() == []
    else:
        assert c.cmd("RCPT TO:<a@dest.test>").code == 250
        v.quit()
        assert v.log["verdict"] == "relay"
        assert v.reasons == []
    assert v.log["helo"] == helo


@pytest.mark.parametrize("retry_from", ["same-address", "same-24"])
def test_helo_invalid_deferral_is_retried_at_the_secondary(world, retry_from):
    ip = "127.1.80.5" if retry_from == "same-address" else "127.1.81.5"
    retry_ip = ip if retry_from == "same-address" else ip[:-1] + "9"
    for a in {ip, retry_ip}:
        world.dns.host(a, "mail.n%s.test" % "x".join(a.split(".")[2:]))   # a domain each
    world.start()
    v = world.visit("primary", ip, action="open")
    v.client.ehlo("192.0.2.7")
    v.client.cmd("MAIL FROM:<sender@example.test>")
    assert v.client.cmd("RCPT TO:<a@dest.test>").raw == (RCPT_DEFER + "\r\n").encode()
    v.quit()
    # the MTA comes back at MX 20 with the same (bad) HELO: relayed, reason retried
    s = world.visit("secondary", retry_ip, action="open")
    assert s.greeting.last == BANNER
    s.deliver(helo="192.0.2.7")
    assert s.log["verdict"] == "relay"
    assert sorted(s.reasons) == ["helo-invalid", "retried"]
    assert len(world.backend.messages()) == 1


def test_helo_invalid_at_secondary_first_is_skipped_primary(world):
    ip = "127.1.82.5"
    world.dns.host(ip, "mail.sender82.test")
    world.start()
    v = world.visit("secondary", ip, action="open")
    v.client.ehlo("192.0.2.7")
    assert v.client.cmd("MAIL FROM:<sender@example.test>").code == 250
    assert v.client.cmd("RCPT TO:<a@dest.test>").code == 451
    v.quit()
    assert v.log["verdict"] == "tempfail"
    assert sorted(v.reasons) == ["helo-invalid", "skipped-primary"]
    assert world.backend.mail_connections() == []
