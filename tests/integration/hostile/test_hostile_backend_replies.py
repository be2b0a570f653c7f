"""Malformed backend replies (issue 6, hostile-input suite).

A scripted backend (hostile_backend.py) answers one connection with a
broken reply at one stage.  Whatever it sends, the client gets either the
reply the backend really gave to that command (when it is well-formed) or
a 4xx; never a 250 the backend did not give for that command, never a
line the backend injected, no reply line over 512 octets; mxtierd does not
hang (each reply within a bound), does not crash, and serves the next
session normally.
"""

import threading
import time

import pytest

from harness import HOSTNAME
from hostile_backend import ScriptedBackend
from hostile_lib import alive, assert_rss_bounded, malformed_log_lines, rss_kib

LOST_BEFORE_DATA = "451 4.4.1 Backend not available, try again later"
LOST_IN_DATA = "451 4.4.2 Backend connection lost, message not accepted"
MESSAGE = b"From: <a@example.org>\r\nSubject: scripted\r\n\r\nbody\r\n"
MULTI = b"250-2.0.0 first line\r\n250-2.0.0 second line\r\n250 2.0.0 last line\r\n"

# label, stage, steps, extra mxtierd config, expected outcome:
#   ("exact", STAGE, raw reply bytes): that stage's reply is exactly these bytes,
#                                      the rest of the transaction succeeds
#   ("fail", STAGE, last reply line): the transaction fails at STAGE with that reply
#   ("never", STAGE, marker): STAGE is answered, but no reply the client gets
#                             carries marker (the backend's injected line)
# A label with "later" makes the client wait 0.5 s after the scripted stage's reply, so
# that the late bytes arrive while no command is outstanding (see transaction()).
CASES = [
    ("mail-reply-one-byte-per-write", "MAIL", [("drip", b"250 2.1.0 Ok, slowly\r\n", 0.01)], {},
     ("exact", "MAIL", b"250 2.1.0 Ok, slowly\r\n")),
    ("end-of-data-multiline-in-pieces", "DOT",
     [("chunks", [MULTI[:5], MULTI[5:23], MULTI[23:24], MULTI[24:50], MULTI[50:]], 0.05)], {},
     ("exact", "DOT", MULTI)),
    ("rcpt-multiline", "RCPT", [("write", b"250-2.1.5 one\r\n250-2.1.5 two\r\n250 2.1.5 three\r\n")], {},
     ("exact", "RCPT", b"250-2.1.5 one\r\n250-2.1.5 two\r\n250 2.1.5 three\r\n")),
    ("mail-reply-bare-lf-reframed", "MAIL", [("write", b"250 2.1.0 Ok\n")], {},
     ("exact", "MAIL", b"250 2.1.0 Ok\r\n")),
    ("mail-reply-70-lines", "MAIL", [("write", b"250-2.1.0 more\r\n" * 69 + b"250 2.1.0 Ok\r\n")], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("mail-reply-line-100k", "MAIL", [("write", b"250 2.1.0 " + b"x" * 100000 + b"\r\n")], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("rcpt-reply-line-600-octets", "RCPT", [("write", b"250 2.1.5 " + b"y" * 588 + b"\r\n")], {},
     ("fail", "RCPT", LOST_BEFORE_DATA)),
    ("end-of-data-line-100k", "DOT", [("write", b"250 2.0.0 " + b"x" * 100000 + b"\r\n")], {},
     ("fail", "DOT", LOST_IN_DATA)),
    ("end-of-data-1mb-junk-without-newline", "DOT", [("write", b"250" + b"z" * (1 << 20))], {},
     ("fail", "DOT", LOST_IN_DATA)),
    ("greeting-line-5000-octets", "CONNECT", [("write", b"220 " + b"g" * 5000 + b"\r\n")], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("ehlo-reply-2000-lines", "EHLO", [("write", b"250-CAPA\r\n" * 2000 + b"250 OK\r\n")], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("extra-line-after-mail-reply", "MAIL", [("write", b"250 2.1.0 Ok\r\n250 2.1.5 injected\r\n")], {},
     ("never", "RCPT", "injected")),
    ("extra-line-after-mail-reply-later", "MAIL",
     [("write", b"250 2.1.0 Ok\r\n"), ("sleep", 0.2), ("write", b"250 2.1.5 injected\r\n")], {},
     ("never", "RCPT", "injected")),
    ("extra-line-after-rcpt-reply", "RCPT", [("write", b"250 2.1.5 Ok\r\n354 injected go ahead\r\n")], {},
     ("never", "DATA", "injected")),
    # the backend took the message (every reply before came alone, so this 250 is its
    # own): the client gets it, not a 451 that would make it send the message twice;
    # the line after it never reaches the client and the connection is not reused
    ("end-of-data-250-then-extra-reply", "DOT",
     [("write", b"250 2.0.0 Ok: queued\r\n250 2.1.0 injected sender ok\r\n")], {},
     ("exact", "DOT", b"250 2.0.0 Ok: queued\r\n")),
    ("end-of-data-250-then-garbage-later", "DOT",
     [("write", b"250 2.0.0 Ok: queued as LATER\r\n"), ("sleep", 0.2), ("write", b"injected garbage\r\n")], {},
     ("never", "DOT+MAIL", "injected")),
    ("greeting-then-injected-line", "CONNECT", [("write", b"220 backend.test ESMTP\r\n250 2.1.0 injected\r\n")], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("ehlo-reply-then-injected-line", "EHLO",
     [("write", b"250-backend.test\r\n250 PIPELINING\r\n250 2.1.0 injected\r\n")], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("data-354-and-early-250-same-write", "DATA", [("write", b"354 go ahead\r\n250 2.0.0 injected early\r\n")], {},
     ("fail", "DATA", LOST_IN_DATA)),
    ("data-354-then-early-250-later", "DATA",
     [("write", b"354 go ahead\r\n"), ("sleep", 0.2), ("write", b"250 2.0.0 injected early\r\n")], {},
     ("fail", "DOT", LOST_IN_DATA)),
    ("rcpt-multiline-mismatched-codes", "RCPT", [("write", b"250-2.1.5 looks fine\r\n550 5.1.1 but is not\r\n")], {},
     ("fail", "RCPT", LOST_BEFORE_DATA)),
    ("end-of-data-multiline-mismatched", "DOT", [("write", b"550-5.7.1 no\r\n250 2.0.0 yes\r\n")], {},
     ("fail", "DOT", LOST_IN_DATA)),
    ("mail-reply-not-numeric", "MAIL", [("write", b"hello, this is not SMTP\r\n")], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("mail-reply-code-2x0", "MAIL", [("write", b"2x0 2.1.0 Ok\r\n")], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("rcpt-reply-code-only-2-digits", "RCPT", [("write", b"25\r\n")], {},
     ("fail", "RCPT", LOST_BEFORE_DATA)),
    ("rcpt-reply-1xx", "RCPT", [("write", b"150 2.1.5 maybe\r\n")], {},
     ("fail", "RCPT", LOST_BEFORE_DATA)),
    ("mail-reply-with-nul", "MAIL", [("write", b"250 2.1.0 O\x00k\r\n")], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("mail-reply-no-crlf-then-close", "MAIL", [("write", b"250 2.1.0 Ok"), ("close",)], {},
     ("fail", "MAIL", LOST_BEFORE_DATA)),
    ("end-of-data-no-crlf-then-close", "DOT", [("write", b"250 2.0.0 Ok: queued"), ("close",)], {},
     ("fail", "DOT", LOST_IN_DATA)),
    ("data-354-then-close", "DATA", [("write", b"354 go ahead\r\n"), ("close",)], {},
     ("fail", "DOT", LOST_IN_DATA)),
    ("end-of-data-no-crlf-then-silence", "DOT", [("write", b"250 2.0.0 Ok"), ("hang",)],
     {"backend_data_timeout": "1s"}, ("fail", "DOT", LOST_IN_DATA)),
]


@pytest.fixture
def scripted():
    b = ScriptedBackend().start()
    yield b
    b.stop()


def transaction(c, replies, pause_after=None):
    """transaction - MAIL, RCPT, DATA, message; each reply into replies[stage]; stop at a failure.

    pause_after: a stage after whose reply the client waits 0.5 s (so that
    what the backend sends late arrives while no command is outstanding:
    bytes that come after the next command went out are, on the wire, its
    reply, and no proxy can tell them apart)."""
    steps = [("MAIL", b"MAIL FROM:<a@example.org>\r\n"), ("RCPT", b"RCPT TO:<b@example.org>\r\n"),
             ("DATA", b"DATA\r\n"), ("DOT", MESSAGE + b".\r\n")]
    for stage, data in steps:
        t0 = time.monotonic()
        c.send(data)
        try:
            r = c.read_reply(timeout=8)
        except (EOFError, ConnectionError) as e:
            replies[stage] = "closed: %s" % e
            return stage
        replies[stage] = r
        # no hang: a backend fault is answered within the backend timeouts (3 s here)
        assert time.monotonic() - t0 < 6, (stage, r)
        if r.code not in (250, 354):
            return stage
        if stage == pause_after:
            time.sleep(0.5)
    return None


@pytest.mark.parametrize("label, stage, steps, config, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_backend_reply(start_daemon, connect, scripted, label, stage, steps, config, expected):
    d = start_daemon(scripted.port, backend_probe_interval="1h", **config)
    # the start-up probe is not to get the script
    assert scripted.wait_idle(), [(c.commands, c.end) for c in scripted.conns]
    scripted.arm({stage: steps})
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    replies = {}
    kind, where, what = expected
    failed_at = transaction(c, replies, pause_after=stage if "later" in label else None)
    seen = b"".join(r.raw for r in replies.values() if not isinstance(r, str))

    if kind == "never" and where == "DOT+MAIL":
        # the end-of-data reply was the backend's own; garbage after it must not
        # answer the next command
        assert replies["DOT"].raw == b"250 2.0.0 Ok: queued as LATER\r\n", replies
        r = c.cmd("MAIL FROM:<a@example.org>", timeout=8)
        seen += r.raw
        assert r.code in (250, 451), r
        where = "MAIL"

    # what matters most: nothing the backend injected, no 250 it did not give
    assert b"injected" not in seen, replies
    for r in replies.values():
        if isinstance(r, str):
            continue
        for line in r.raw.split(b"\r\n")[:-1]:
            assert len(line) + 2 <= 512, "reply line of %d octets to the client" % (len(line) + 2)
            assert b"\x00" not in line and b"\r" not in line and b"\n" not in line
    assert not any(isinstance(r, str) for r in replies.values()), "client cut off: %r" % replies

    if kind == "exact":
        assert failed_at is None, replies
        assert replies[where].raw == what, replies
        assert [m for m in scripted.scripted()[0].messages] == [MESSAGE]
    elif kind == "fail":
        assert failed_at == where, replies
        assert replies[where].last == what, replies
    elif kind == "never":
        if where in replies:
            assert replies[where].code != 250 or where == "MAIL", replies
        if where == "RCPT":
            # the RCPT was not answered by the MAIL reply's extra line
            assert failed_at in ("MAIL", "RCPT"), replies
            assert replies[failed_at].last == LOST_BEFORE_DATA, replies
        if where == "DATA":
            assert failed_at in ("RCPT", "DATA"), replies
            assert replies[failed_at].code == 451, replies

    # the session goes on: RSET, then the next transaction meets a normal backend
    assert c.cmd("RSET").code == 250
    again = {}
    assert transaction(c, again) is None, again
    assert c.cmd("QUIT").code == 221

    # mxtierd is alive, its log is one line per session, a new session is served
    assert alive(d), d.stderr()[-2000:]
    c2 = connect(d, source="127.0.0.3")
    assert c2.greeting().code == 220
    assert c2.ehlo().code == 250
    more = {}
    assert transaction(c2, more) is None, more
    log = d.session_for(c)
    # messages counts the end-of-data replies the client got as 250.  The
    # scripted transaction delivers when its outcome is "exact" (the backend's
    # reply was passed on) or when the junk only came after the 250 to the end
    # of data (DOT+MAIL); every other case fails before or at the end of data
    # (a 451, never a 250).  The transaction after RSET always delivers.
    delivered_first = kind == "exact" or expected[1] == "DOT+MAIL"
    assert (replies.get("DOT") is not None and not isinstance(replies["DOT"], str)
            and replies["DOT"].code == 250) == delivered_first, replies
    assert log["messages"] == ("2" if delivered_first else "1"), log
    assert malformed_log_lines(d) == []
    assert alive(d)
    assert HOSTNAME in c2.cmd("QUIT").text


def test_backend_that_stops_reading_mid_message(start_daemon, connect, scripted):
    """The backend says 354 and then reads nothing: mxtierd holds the client back
    (bounded memory), gives up after backend_timeout and answers the end of data 451."""
    d = start_daemon(scripted.port, backend_probe_interval="1h", backend_timeout="2s")
    assert scripted.wait_idle()
    scripted.arm({"DATA": [("write", b"354 go ahead\r\n"), ("hang",)]})
    c = connect(d, timeout=20)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    rss0 = rss_kib(d.proc.pid)
    line = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (16 * 1024)          # 16 MiB
    peak = rss0
    t0 = time.monotonic()
    sender = threading.Thread(target=c.sock.sendall, args=(body + b".\r\n",))
    sender.start()
    while sender.is_alive() and time.monotonic() - t0 < 30:
        peak = max(peak, rss_kib(d.proc.pid))
        time.sleep(0.05)
    sender.join(1)
    assert not sender.is_alive(), "mxtierd stopped reading the client for good"
    r = c.read_reply(timeout=10)
    took = time.monotonic() - t0
    print("backend stops reading: end of data answered after %.1f s" % took)
    assert r.last == LOST_IN_DATA, r
    assert took >= 1.5, took                         # it waited for the backend, not less
    # far less than the 16 MiB message
    assert_rss_bounded(d.proc.pid, rss0, peak, 16 * 1024, "backend stops reading")
    assert c.cmd("RSET").code == 250
    again = {}
    assert transaction(c, again) is None, again
    assert alive(d) and malformed_log_lines(d) == []
