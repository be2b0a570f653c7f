"""A real sending MTA (Postfix 3.7) delivering to tiers.test, whose three MX
point at mxtierd's tier addresses (see conftest.py for the environment)."""

import re
import time

import pytest

from harness import MXTIERD, wait_until
from mta_harness import (BAIT, DOMAIN, GOOD_CLIENT, NO_RDNS_CLIENT, PRIMARY, SECONDARY,
                         TIER_PORT, mxtierd_settings)

RCPT = "user@" + DOMAIN
SENDER = "alice@x.test"


def relay_of(delivery):
    """relay_of - ("mx20.tiers.test", "127.0.0.10", 2525) from relay=mx20.tiers.test[127.0.0.10]:2525."""
    m = re.match(r"([^\[]+)\[([^\]]+)\]:(\d+)$", delivery["relay"])
    assert m, "unexpected relay field %r" % delivery["relay"]
    return m.group(1), m.group(2), int(m.group(3))


def backend_message(backend, msgid, timeout=10.0):
    """backend_message - the (connection, entry, bytes) that carries this Message-ID."""
    def find():
        for conn, entry, data in backend.messages():
            if msgid.encode() in data:
                return conn, entry, data
        return None
    return wait_until(find, timeout, interval=0.1, what="message %s at the backend" % msgid)


def client_addr(session):
    return session.get("client", "").rsplit(":", 1)[0]


def test_postfix_delivers_through_the_primary(mta):
    """(1) MX 10 = primary: one session at the primary, relayed, the backend has the message."""
    backend = mta.start_backend()
    # greet_wait > 0: Postfix must wait for the last banner line (not a pregreet client)
    d = mta.start_mxtierd(backend, greet_wait="1s")
    pf = mta.start_postfix(GOOD_CLIENT)

    msgid = pf.send(rcpt=RCPT, sender=SENDER)
    qid = pf.queue_id(msgid)
    delivery = pf.wait_delivery(qid, "sent")

    assert relay_of(delivery) == ("mx10.tiers.test", PRIMARY, TIER_PORT)
    assert delivery["to"] == RCPT
    conn, entry, data = backend_message(backend, msgid)
    assert "<%s>" % SENDER in entry["mail_from"], entry
    assert any(RCPT in r for r in entry["rcpts"])
    # the backend's end-of-data reply went back to Postfix unchanged
    queued = re.search(r"queued as (R\d+)", delivery["text"])
    assert queued, delivery["text"]

    s = d.wait_session(lambda s: client_addr(s) == GOOD_CLIENT and s.get("messages") == "1",
                       what="session of %s" % GOOD_CLIENT)
    assert s["tier"] == "primary"
    assert s["verdict"] == "relay", s
    assert "pregreet" not in s["reason_list"] and "pipelining" not in s["reason_list"]
    assert s["helo"] == "sender.mta.test"
    assert s["from"] == "<%s>" % SENDER
    assert queued.group(1) in s.get("backend", "")
    # Postfix touched only the primary: no session at the other tiers
    assert [x["tier"] for x in d.mail_sessions()] == ["primary"], d.mail_sessions()


def test_postfix_walks_the_mx_list_after_421_at_greeting(mta):
    """(2) MX 10 -> the bait (421 at the greeting), MX 20 -> the primary: same attempt, second MX.

    The client is allow-listed: a real MTA that meets the bait first would otherwise be
    blocked as a bait-first-contact (see test_misordered_mx_blocks_and_postfix_defers)."""
    mta.dns.mx(DOMAIN, {
        "mx10.tiers.test": (10, BAIT),
        "mx20.tiers.test": (20, PRIMARY),
        "mx30.tiers.test": (30, SECONDARY),
    }).commit()
    backend = mta.start_backend()
    d = mta.start_mxtierd(backend, allow_networks=GOOD_CLIENT + "/32")
    pf = mta.start_postfix(GOOD_CLIENT)

    msgid = pf.send(rcpt=RCPT, sender=SENDER)
    qid = pf.queue_id(msgid)
    delivery = pf.wait_delivery(qid, "sent")

    assert relay_of(delivery) == ("mx20.tiers.test", PRIMARY, TIER_PORT)
    # the one and only delivery line of this message is status=sent: no deferral,
    # no second queue run -- the MX walk happened within one delivery attempt
    assert [x["status"] for x in pf.deliveries(qid)] == ["sent"], pf.smtp_lines(qid)
    # Postfix logged the bait's greeting before it moved on
    walked = [l for l in pf.smtp_lines(qid) if "host mx10.tiers.test[%s] " % BAIT in l]
    assert len(walked) == 1, pf.smtp_lines(qid)
    assert re.search(r"refused to talk to me: 421 4\.7\.0 mx\.mxtier\.test Service not available", walked[0])
    assert pf.smtp_lines(qid).index(walked[0]) < pf.smtp_lines(qid).index(
        [l for l in pf.smtp_lines(qid) if "status=sent" in l][0])
    backend_message(backend, msgid)

    bait = d.wait_session(lambda s: s["tier"] == "bait", what="bait session")
    primary = d.wait_session(lambda s: s["tier"] == "primary", what="primary session")
    assert client_addr(bait) == client_addr(primary) == GOOD_CLIENT
    assert bait["verdict"] == "tempfail" and "bait" in bait["reason_list"], bait
    assert primary["verdict"] == "relay" and primary["messages"] == "1", primary
    assert [x["tier"] for x in d.mail_sessions()] == ["bait", "primary"], d.mail_sessions()
    # MX 30 (the secondary here) was never touched
    assert float(primary["duration"]) < 5


def test_primary_keeps_relaying_after_backend_probes(mta):
    """A healthy backend must stay `up` through repeated probes: after a few probe
    intervals Postfix still delivers through the primary (no load-shed/backend-down 421)."""
    backend = mta.start_backend()
    d = mta.start_mxtierd(backend, backend_probe_interval="1s")
    pf = mta.start_postfix(GOOD_CLIENT)
    # let the probe run five times against the (healthy) recording backend (every
    # probe is one connection there); two failed probes would mark it down, and the
    # primary's shedding check (about once a second) would then answer 421 4.3.2
    wait_until(lambda: len(backend.connections()) >= 5, 10, interval=0.1,
               what="five backend probes")
    time.sleep(1.2)

    msgid = pf.send(rcpt=RCPT, sender=SENDER)
    qid = pf.queue_id(msgid)
    delivery = pf.wait_delivery(qid, "sent", timeout=15)
    assert "backend down" not in d.stderr(), d.stderr()[-2000:]
    assert relay_of(delivery) == ("mx10.tiers.test", PRIMARY, TIER_PORT), pf.smtp_lines(qid)
    backend_message(backend, msgid)
    assert [x["tier"] for x in d.mail_sessions()] == ["primary"], d.mail_sessions()


# -- tier rules (reasons no-rdns, retried, bait-first-contact, ...) -------------

_settings = None


def daemon_settings():
    global _settings
    if _settings is None:
        _settings = mxtierd_settings()
    return _settings


def binary_has(*words):
    try:
        with open(MXTIERD, "rb") as f:
            binary = f.read()
    except OSError:
        return False
    return all(w.encode() in binary for w in words)


def has_retry_rules():
    """has_retry_rules - `mxtierd -n` knows dns_checks, dns_servers and retry_window, and the
    binary carries the reason codes of the rules (the keys came before the rules)."""
    s = daemon_settings()
    return all(k in s for k in ("dns_checks", "dns_servers", "retry_window")) and \
        binary_has("no-rdns", "retried")


def has_bait_rule():
    return "bait_window" in daemon_settings() and binary_has("bait-first-contact")


RULES = dict(dns_checks="yes", dns_servers="127.0.0.1:53", retry_window="1h", retry_min_delay="1m")


@pytest.mark.skipif("not has_bait_rule()", reason="mxtierd has no bait-first-contact rule yet")
def test_misordered_mx_blocks_the_mta_but_postfix_only_defers(mta):
    """MX 10 pointing at the bait: a real MTA's first contact is the bait, so mxtierd blocks it
    (bait-first-contact) at every tier; a behavioural block is answered 421 4.7.1 (a 5xx would
    make Exim and Sendmail bounce: test_mta_matrix.py), Postfix defers -- the mail is delayed,
    not bounced, and nothing reaches the backend."""
    mta.dns.mx(DOMAIN, {
        "mx10.tiers.test": (10, BAIT),
        "mx20.tiers.test": (20, PRIMARY),
        "mx30.tiers.test": (30, SECONDARY),
    }).commit()
    backend = mta.start_backend()
    d = mta.start_mxtierd(backend)
    pf = mta.start_postfix(GOOD_CLIENT)

    msgid = pf.send(rcpt=RCPT, sender=SENDER)
    qid = pf.queue_id(msgid)
    delivery = pf.wait_delivery(qid, "deferred")
    assert "421 4.7.1 mx.mxtier.test Client [%s] temporarily blocked" % GOOD_CLIENT in delivery["text"]
    assert "status=bounced" not in pf.log_text()

    bait = d.wait_session(lambda s: s["tier"] == "bait", what="bait session")
    primary = d.wait_session(lambda s: s["tier"] == "primary", what="primary session")
    assert "bait-first-contact" in bait["reason_list"], bait
    assert primary["verdict"] == "tempfail" and "bait-first-contact" in primary["reason_list"], primary
    assert backend.mail_connections() == []


@pytest.mark.skipif("not has_retry_rules()",
                    reason="mxtierd has no retry tier rules yet (-n lacks dns_checks/dns_servers/"
                           "retry_window or the binary lacks the reason codes no-rdns/retried)")
def test_no_rdns_client_is_sent_to_the_secondary_and_relayed_there(mta):
    """(future) no PTR for the client: 421 at the primary's greeting (no-rdns), Postfix tries
    MX 20 in the same attempt, the secondary relays with reason retried."""
    backend = mta.start_backend()
    d = mta.start_mxtierd(backend, **RULES)
    pf = mta.start_postfix(NO_RDNS_CLIENT)

    msgid = pf.send(rcpt=RCPT, sender=SENDER)
    qid = pf.queue_id(msgid)
    delivery = pf.wait_delivery(qid, "sent", timeout=25)

    assert relay_of(delivery) == ("mx20.tiers.test", SECONDARY, TIER_PORT), pf.smtp_lines(qid)
    assert [x["status"] for x in pf.deliveries(qid)] == ["sent"], pf.smtp_lines(qid)
    refused = [l for l in pf.smtp_lines(qid) if "host mx10.tiers.test[%s] " % PRIMARY in l]
    assert refused and re.search(r"refused to talk to me: 421 4\.7\.0 ", refused[0]), pf.smtp_lines(qid)
    backend_message(backend, msgid)

    first = d.wait_session(lambda s: s["tier"] == "primary", what="primary session")
    second = d.wait_session(lambda s: s["tier"] == "secondary", what="secondary session")
    assert client_addr(first) == client_addr(second) == NO_RDNS_CLIENT
    assert first["verdict"] == "tempfail" and "no-rdns" in first["reason_list"], first
    assert second["verdict"] == "relay" and "retried" in second["reason_list"], second
    assert second["messages"] == "1"
    # the bait (MX 30) was never reached: no bait-first-contact for a real MTA
    assert not [x for x in d.mail_sessions() if x["tier"] == "bait"], d.mail_sessions()
    # mxtierd asked our DNS server for the client's PTR
    assert any("21.0.0.127.in-addr.arpa PTR" in q for q in mta.dns.queries()), mta.dns.queries()


@pytest.mark.skipif("not has_retry_rules()",
                    reason="mxtierd has no retry tier rules yet (-n lacks dns_checks/dns_servers/"
                           "retry_window or the binary lacks the reason codes no-rdns/retried)")
def test_forward_confirmed_client_is_relayed_at_the_primary(mta):
    """(future) the control for the test above: good.sender.test (PTR + A) is not deferred."""
    backend = mta.start_backend()
    d = mta.start_mxtierd(backend, **RULES)
    pf = mta.start_postfix(GOOD_CLIENT)

    msgid = pf.send(rcpt=RCPT, sender=SENDER)
    delivery = pf.wait_delivery(pf.queue_id(msgid), "sent")
    assert relay_of(delivery) == ("mx10.tiers.test", PRIMARY, TIER_PORT)
    backend_message(backend, msgid)
    s = d.wait_session(lambda s: s["tier"] == "primary", what="primary session")
    assert s["verdict"] == "relay" and "no-rdns" not in s["reason_list"], s
    assert [x["tier"] for x in d.mail_sessions()] == ["primary"], d.mail_sessions()
    assert any("20.0.0.127.in-addr.arpa PTR" in q for q in mta.dns.queries()), mta.dns.queries()
