"""Tier roles and first verdicts: bait, allow/block lists, limits, pregreet,
non-SMTP clients, pipelining before EHLO and command timeouts."""

import time

import pytest

from harness import BAIT, HOSTNAME, PRIMARY, SECONDARY


def assert_closed(c):
    assert c.is_closed(3.0), "connection still open; pending bytes %r" % c.buf


def assert_nothing_relayed(backend):
    assert backend.mail_connections() == []
    assert backend.messages(complete=None) == []


@pytest.mark.parametrize("source", ["127.0.0.2", "127.0.0.33"], ids=["client-a", "client-b"])
def test_bait_tier_answers_421_and_closes(mxtierd, backend, connect, source):
    c = connect(mxtierd, host=BAIT, source=source)
    r = c.greeting()
    assert r.raw == ("421 4.7.0 %s Service not available, try a lower MX\r\n" % HOSTNAME).encode()
    assert_closed(c)
    log = mxtierd.session_for(c)
    assert (log["tier"], log["verdict"]) == ("bait", "tempfail")
    assert "bait" in log["reason_list"]
    assert_nothing_relayed(backend)


@pytest.mark.parametrize("source, host", [
    ("127.0.0.41", PRIMARY), ("127.0.0.42", SECONDARY), ("127.0.0.43", PRIMARY),
], ids=["blocked-at-primary", "blocked-at-secondary", "last-address-of-range"])
def test_block_networks_554_at_greeting(start_daemon, backend, connect, source, host):
    d = start_daemon(backend, block_networks="127.0.0.40/30, 10.9.0.0/16")
    c = connect(d, host=host, source=source)
    r = c.greeting()
    assert r.raw == ("554 5.7.1 %s Service unavailable; client [%s] blocked\r\n" % (HOSTNAME, source)).encode()
    assert_closed(c)
    log = d.session_for(c)
    assert log["verdict"] == "reject" and "blocklist" in log["reason_list"]
    # a neighbour outside the range is served
    ok = connect(d, host=host, source="127.0.0.44")
    assert ok.greeting().code == 220
    assert_nothing_relayed(backend)


def test_allow_networks_fast_track(start_daemon, backend, connect):
    d = start_daemon(backend, allow_networks="127.0.0.30/32", greet_wait="2s")
    c = connect(d, source="127.0.0.30")
    t0 = time.monotonic()
    banner = c.greeting()
    assert banner.code == 220 and time.monotonic() - t0 < 1.0, "allow-listed client waited for the banner"
    # pipelining before EHLO is not held against an allow-listed client
    c.send(b"HELO allowed.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert [c.read_reply().code for _ in range(4)] == [250, 250, 250, 354]
    c.send(b"Subject: fast\r\n\r\nfast track\r\n.\r\n")
    assert c.read_reply().code == 250
    assert c.cmd("QUIT").code == 221
    assert len(backend.messages()) == 1
    log = d.session_for(c)
    assert log["verdict"] == "relay"
    assert "allowlist" in log["reason_list"] and "pipelining" not in log["reason_list"]


def test_ordinary_client_waits_for_greet_wait(start_daemon, backend, connect):
    d = start_daemon(backend, allow_networks="127.0.0.30/32", greet_wait="2s")
    c = connect(d, source="127.0.0.31")
    t0 = time.monotonic()
    first = c.read_line()
    assert first == ("220-%s ESMTP mxtier\r\n" % HOSTNAME).encode()
    assert time.monotonic() - t0 < 1.0
    last = c.read_line()
    assert last == ("220 %s ESMTP mxtier\r\n" % HOSTNAME).encode()
    assert 1.7 <= time.monotonic() - t0 <= 4.0


@pytest.mark.parametrize("when", ["before-any-banner", "between-banner-lines"])
def test_pregreet_client_is_rejected_at_rcpt(start_daemon, backend, connect, when):
    d = start_daemon(backend, greet_wait="1s")
    c = connect(d)
    if when == "between-banner-lines":
        assert c.read_line().startswith(b"220-")
    c.send(b"EHLO early.example.org\r\n")
    banner_rest = c.read_reply()
    assert banner_rest.code == 220
    assert c.read_reply().code == 250                      # EHLO
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    for rcpt in ("b@example.org", "c@example.org"):
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.last.startswith("550 5.5.1"), r
    r = c.cmd("DATA")
    assert r.last.startswith("554 5.5.1"), r
    c.cmd("QUIT")
    log = d.session_for(c)
    assert log["verdict"] == "reject" and "pregreet" in log["reason_list"]
    assert_nothing_relayed(backend)


NON_SMTP = ["GET / HTTP/1.0", "POST /submit HTTP/1.1", "HEAD / HTTP/1.0", "PUT /x HTTP/1.1",
            "CONNECT mail.example.org:25 HTTP/1.1", "OPTIONS * HTTP/1.1", "USER root",
            "Host: mx.example.org"]


@pytest.mark.parametrize("line", NON_SMTP, ids=[l.split()[0] for l in NON_SMTP])
def test_non_smtp_command_521_and_close(mxtierd, backend, connect, line):
    c = connect(mxtierd)
    c.greeting()
    r = c.cmd(line)
    assert r.last.startswith("521 5.7.0"), r
    assert_closed(c)
    log = mxtierd.session_for(c)
    assert log["verdict"] == "reject" and "non-smtp" in log["reason_list"]
    assert_nothing_relayed(backend)


@pytest.mark.parametrize("opening, replies", [
    (b"HELO client.example.org\r\nMAIL FROM:<a@example.org>\r\n", 2),
    (b"NOOP\r\nNOOP\r\nEHLO client.example.org\r\n", 3),
    (b"RSET\r\nHELO client.example.org\r\n", 2),
], ids=["helo-then-mail", "noop-noop-ehlo", "rset-helo"])
def test_pipelining_before_ehlo_is_rejected_at_rcpt(mxtierd, backend, connect, opening, replies):
    c = connect(mxtierd)
    c.greeting()
    c.send(opening)
    for _ in range(replies):
        assert c.read_reply().code == 250
    if b"MAIL" not in opening:
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    r = c.cmd("RCPT TO:<b@example.org>")
    assert r.last.startswith("550 5.5.1"), r
    r = c.cmd("DATA")
    assert r.last.startswith("554 5.5.1"), r
    c.cmd("QUIT")
    log = mxtierd.session_for(c)
    assert log["verdict"] == "reject" and "pipelining" in log["reason_list"]
    assert_nothing_relayed(backend)


def test_per_client_session_limit(start_daemon, backend, connect):
    d = start_daemon(backend, max_sessions_per_client=2)
    held = [connect(d, source="127.0.0.50") for _ in range(2)]
    for c in held:
        assert c.greeting().code == 220
    over = connect(d, source="127.0.0.50")
    r = over.greeting()
    assert r.raw == ("421 4.7.0 %s Too many sessions from your address\r\n" % HOSTNAME).encode()
    assert_closed(over)
    assert "too-many-client-sessions" in d.session_for(over)["reason_list"]
    # another address is not affected
    assert connect(d, source="127.0.0.51").greeting().code == 220


def test_allow_networks_are_exempt_from_the_per_client_limit(start_daemon, backend, connect):
    """A site's own relays (allow_networks) open many parallel sessions, as
    Postfix exempts mynetworks; max_sessions still bounds them."""
    d = start_daemon(backend, max_sessions_per_client=2, max_sessions=5, allow_networks="127.0.0.52/32")
    time.sleep(0.3)           # let the start-up probe connections end
    held = [connect(d, source="127.0.0.52") for _ in range(5)]
    assert [c.greeting().code for c in held] == [220] * 5
    assert held[4].ehlo().code == 250
    replies = held[4].send_mail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
    assert replies[-1].code == 250
    # the global bound still holds for them
    over = connect(d, source="127.0.0.52")
    assert over.greeting().code == 421
    assert "too-many-sessions" in d.session_for(over)["reason_list"]


def test_global_session_limit(start_daemon, backend, connect):
    d = start_daemon(backend, max_sessions=3)
    time.sleep(0.3)           # let the start-up probe connections end
    held = [connect(d, source="127.0.0.%d" % (60 + i)) for i in range(3)]
    for c in held:
        assert c.greeting().code == 220
    over = connect(d, source="127.0.0.63")
    r = over.greeting()
    assert r.raw == ("421 4.3.2 %s Too many sessions, try again later\r\n" % HOSTNAME).encode()
    assert_closed(over)
    assert "too-many-sessions" in d.session_for(over)["reason_list"]
    held[0].cmd("QUIT")
    held[0].close()
    time.sleep(0.3)
    assert connect(d, source="127.0.0.64").greeting().code == 220


@pytest.mark.parametrize("before, slow_line", [
    ([], b"EHLO slowloris.example.org\r\n"),
    (["EHLO slowloris.example.org"], b"MAIL FROM:<slowloris@example.org>\r\n"),
], ids=["slow-ehlo", "slow-mail"])
def test_command_timeout_cuts_a_slowloris(start_daemon, backend, connect, before, slow_line):
    d = start_daemon(backend, command_timeout="2s")
    c = connect(d)
    c.greeting()
    for line in before:
        assert c.cmd(line).code == 250
    t0 = time.monotonic()
    reply = None
    for i in range(len(slow_line)):
        try:
            c.send(slow_line[i:i + 1])
        except OSError:
            break
        if c.is_closed(0.5) or b"\r\n" in c.buf:
            break
    elapsed = time.monotonic() - t0
    assert b"\r\n" in c.buf, "no reply after %.1fs (buffer %r)" % (elapsed, c.buf)
    reply = c.read_reply()
    assert reply.raw == ("421 4.4.2 %s Timeout, closing connection\r\n" % HOSTNAME).encode()
    assert 1.5 <= elapsed <= 3.2, "cut after %.1fs, command_timeout is 2s" % elapsed
    assert_closed(c)
    assert_nothing_relayed(backend)
