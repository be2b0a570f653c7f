"""A client that half-closes (shuts down its sending side) still gets every
reply it is owed.  Exim pipelines `.`, QUIT and its FIN in one segment and
waits for the reply to the dot: mxtierd must answer it, pass on the
backend's own reply, and deliver the message exactly once.  An EOF inside
message data must deliver nothing and answer no 250.

Each case is a real socket: the client's shutdown(SHUT_WR) sends the FIN;
what the client reads afterwards, what the recording backend kept and the
session log line are what is checked."""

import socket
import time

import pytest

from harness import wait_until
from test_tls import certs, starttls, tls_keys  # noqa: F401  (certs is a fixture)

MESSAGE = b"From: <a@example.org>\r\nTo: <b@example.org>\r\nSubject: half-close\r\nMessage-ID: <hc@test>\r\n\r\nbody\r\n"


def read_all_replies(c, timeout=8.0):
    """read_all_replies - every reply until the server closes, which it must."""
    replies, closed = c.replies_until_close(timeout)
    assert closed, "the session did not end after the client's EOF; replies so far: %r" % replies
    return replies


def half_close(c):
    """half_close - FIN on the client's sending side; under TLS the raw socket's, without close_notify."""
    raw = c.sock
    if hasattr(raw, "unwrap"):
        raw = socket.socket(fileno=raw.fileno())
        try:
            raw.shutdown(socket.SHUT_WR)
        finally:
            raw.detach()
    else:
        raw.shutdown(socket.SHUT_WR)


def open_transaction(connect, d):
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    return c


def test_eof_after_the_dot_gets_the_backends_reply_and_quit(mxtierd, backend, connect):
    c = open_transaction(connect, mxtierd)
    c.send(MESSAGE + b".\r\nQUIT\r\n")      # Exim: dot, QUIT and FIN in one go
    half_close(c)
    replies = read_all_replies(c)
    assert [r.code for r in replies] == [250, 221], replies
    assert len(backend.messages()) == 1
    log = mxtierd.session_for(c)
    assert log["messages"] == "1" and log["verdict"] == "relay", log


def test_eof_in_one_segment_with_the_data(mxtierd, backend, connect):
    """The whole tail (data, dot, QUIT) and the FIN arrive together."""
    c = connect(mxtierd)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
    c.send(MESSAGE + b".\r\nQUIT\r\n")
    half_close(c)
    assert [r.code for r in read_all_replies(c)] == [250, 221]
    assert len(backend.messages()) == 1


def test_eof_after_a_pipelined_group(mxtierd, backend, connect):
    """MAIL, RCPT, RSET, NOOP, QUIT pipelined, then FIN: five replies, in order."""
    c = connect(mxtierd)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    half_close(c)
    assert [r.code for r in read_all_replies(c)] == [250, 250, 250, 250, 221]
    assert backend.messages() == []


def test_eof_with_a_group_ending_in_data_gets_354_then_nothing(mxtierd, backend, connect):
    """The group's DATA gets its 354; the EOF then cuts the message: no 250, nothing delivered."""
    c = connect(mxtierd)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    half_close(c)
    assert [r.code for r in read_all_replies(c)] == [250, 250, 354]
    assert backend.messages() == []


@pytest.mark.parametrize("tail", [b"", b"Subject: cut\r\n\r\npart of a body", b"Subject: cut\r\n\r\nline\r\n"],
                         ids=["nothing", "mid-line", "whole-lines-no-dot"])
def test_eof_inside_data_delivers_nothing_and_says_no_250(mxtierd, backend, connect, tail):
    c = open_transaction(connect, mxtierd)
    c.send(tail)
    half_close(c)
    replies = read_all_replies(c)
    assert all(r.code != 250 for r in replies), replies
    log = mxtierd.session_for(c)
    assert log["messages"] == "0", log
    # the backend never saw an end-of-data: no complete message
    wait_until(lambda: all(conn.get("end") for conn in backend.mail_connections()), 5,
               what="backend connection closed")
    assert backend.messages() == []
    assert "message not accepted" in mxtierd.stderr()


def test_eof_after_the_dot_while_the_backend_is_slow(start_backend, start_daemon, connect):
    b = start_backend("--delay", "DOT:2")
    d = start_daemon(b)
    c = open_transaction(connect, d)
    started = time.monotonic()
    c.send(MESSAGE + b".\r\nQUIT\r\n")
    half_close(c)
    replies = read_all_replies(c, timeout=10)
    assert [r.code for r in replies] == [250, 221], replies
    assert time.monotonic() - started >= 1.5      # the 250 is the backend's, after its delay
    assert len(b.messages()) == 1


def test_eof_after_the_dot_when_the_backend_refuses_it(start_backend, start_daemon, connect):
    b = start_backend("--reply", "DOT:554 5.7.1 rejected by content filter")
    d = start_daemon(b)
    c = open_transaction(connect, d)
    c.send(MESSAGE + b".\r\nQUIT\r\n")
    half_close(c)
    replies = read_all_replies(c)
    assert [r.code for r in replies] == [554, 221], replies
    assert "content filter" in replies[0].text


def test_eof_after_the_dot_inside_tls(start_daemon, backend, connect, certs):  # noqa: F811
    d = start_daemon(backend, **tls_keys(certs))
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    starttls(c)
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(MESSAGE + b".\r\nQUIT\r\n")
    half_close(c)
    replies = read_all_replies(c)
    assert [r.code for r in replies] == [250, 221], replies
    assert len(backend.messages()) == 1
    log = d.session_for(c)
    assert log["tls"].startswith("TLS") and log["messages"] == "1", log


def test_eof_before_the_banner_ends_the_session(start_daemon, backend, connect):
    """Nothing was answered yet (greet wait running): nothing is owed, the session ends at once."""
    d = start_daemon(backend, greet_wait="3s")
    c = connect(d)
    c.send(b"EHLO early.example\r\n")
    half_close(c)
    started = time.monotonic()
    assert c.is_closed(timeout=2.5)
    assert time.monotonic() - started < 2.0
