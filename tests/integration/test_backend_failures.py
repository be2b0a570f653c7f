"""Backend failure at each stage: the client gets the backend's own reply or a
451, and never a 250 to end-of-data that the backend did not give."""

import pytest

from harness import free_port

STAGES = ("MAIL", "RCPT", "DATA", "DOT")
DATA = b"From: <a@example.org>\r\nSubject: failure test\r\n\r\n" + b"body line\r\n" * 20

LOST_BEFORE_DATA = "451 4.4.1 Backend not available, try again later"
LOST_IN_DATA = "451 4.4.2 Backend connection lost, message not accepted"

# label, backend ("rec" recording backend / "sink" smtp-sink / "none"), its
# options, mxtierd config, the stage that must fail, the expected reply
# (exact text of the last reply line; "bounded": whatever it is, no reply line
# over 512 octets and, when it is not a 250, the 451 4.4.2 of a lost message)
CASES = [
    ("connect-refused", "none", [], {}, "MAIL", LOST_BEFORE_DATA),
    ("greeting-554", "rec", ["--reply", "CONNECT:554 5.3.2 not now"], {}, "MAIL", LOST_BEFORE_DATA),
    ("greeting-disconnect", "rec", ["--disconnect", "CONNECT"], {}, "MAIL", LOST_BEFORE_DATA),
    ("greeting-malformed", "rec", ["--bad-reply", "CONNECT:malformed"], {}, "MAIL", LOST_BEFORE_DATA),
    ("ehlo-disconnect", "rec", ["--disconnect", "EHLO"], {}, "MAIL", LOST_BEFORE_DATA),
    ("mail-451", "rec", ["--reply", "MAIL:451 4.3.0 Backend says later"], {}, "MAIL", "451 4.3.0 Backend says later"),
    ("mail-550", "rec", ["--reply", "MAIL:550 5.7.1 Backend says no"], {}, "MAIL", "550 5.7.1 Backend says no"),
    ("rcpt-450", "rec", ["--reply", "RCPT:450 4.2.0 Mailbox busy"], {}, "RCPT", "450 4.2.0 Mailbox busy"),
    ("rcpt-550", "rec", ["--reply", "RCPT:550 5.1.1 No such user"], {}, "RCPT", "550 5.1.1 No such user"),
    ("data-451", "rec", ["--reply", "DATA:451 4.3.0 Not now"], {}, "DATA", "451 4.3.0 Not now"),
    ("data-554", "rec", ["--reply", "DATA:554 5.6.0 No"], {}, "DATA", "554 5.6.0 No"),
    ("end-of-data-451", "rec", ["--reply", "DOT:451 4.3.0 Queue full"], {}, "DOT", "451 4.3.0 Queue full"),
    ("end-of-data-554", "rec", ["--reply", "DOT:554 5.7.1 Spam"], {}, "DOT", "554 5.7.1 Spam"),
    ("disconnect-at-mail", "rec", ["--disconnect", "MAIL"], {}, "MAIL", LOST_BEFORE_DATA),
    ("disconnect-at-rcpt", "rec", ["--disconnect", "RCPT"], {}, "RCPT", LOST_BEFORE_DATA),
    ("disconnect-at-data", "rec", ["--disconnect", "DATA"], {}, "DATA", LOST_IN_DATA),
    ("disconnect-mid-data", "rec", ["--disconnect", "MIDDATA", "--middata-bytes", "20"], {}, "DOT", LOST_IN_DATA),
    ("disconnect-at-end-of-data", "rec", ["--disconnect", "DOT"], {}, "DOT", LOST_IN_DATA),
    ("mail-reply-delayed", "rec", ["--delay", "MAIL:5"], {"backend_timeout": "1s"}, "MAIL", LOST_BEFORE_DATA),
    ("rcpt-reply-delayed", "rec", ["--delay", "RCPT:5"], {"backend_timeout": "1s"}, "RCPT", LOST_BEFORE_DATA),
    ("data-reply-delayed", "rec", ["--delay", "DATA:5"], {"backend_timeout": "1s"}, "DATA", LOST_IN_DATA),
    ("end-of-data-reply-delayed", "rec", ["--delay", "DOT:5"], {"backend_data_timeout": "1s"}, "DOT", LOST_IN_DATA),
    ("mail-reply-malformed", "rec", ["--bad-reply", "MAIL:malformed"], {}, "MAIL", LOST_BEFORE_DATA),
    ("end-of-data-malformed", "rec", ["--bad-reply", "DOT:malformed"], {}, "DOT", LOST_IN_DATA),
    ("end-of-data-bad-code", "rec", ["--bad-reply", "DOT:badcode"], {}, "DOT", LOST_IN_DATA),
    ("end-of-data-mixed-codes", "rec", ["--bad-reply", "DOT:mixed"], {}, "DOT", LOST_IN_DATA),
    ("end-of-data-unterminated", "rec", ["--bad-reply", "DOT:partial"], {"backend_data_timeout": "1s"}, "DOT", LOST_IN_DATA),
    # a 100 kB "250 ..." line: not passed on as it is (over the 512-octet reply limit)
    ("end-of-data-oversized-line", "rec", ["--bad-reply", "DOT:oversized"], {}, "DOT", "bounded"),
    ("sink-mail-soft-reject", "sink", ["-r", "MAIL"], {}, "MAIL", "450 4.3.0 Error: command failed"),
    ("sink-rcpt-hard-reject", "sink", ["-f", "RCPT"], {}, "RCPT", "500 5.3.0 Error: command failed"),
    ("sink-end-of-data-hard-reject", "sink", ["-f", "."], {}, "DOT", "500 5.3.0 Error: command failed"),
    ("sink-end-of-data-soft-reject", "sink", ["-r", "."], {}, "DOT", "450 4.3.0 Error: command failed"),
    ("sink-disconnect-at-end-of-data", "sink", ["-q", "."], {}, "DOT", LOST_IN_DATA),
    ("sink-data-reply-delayed", "sink", ["-w", "5"], {"backend_timeout": "1s"}, "DATA", LOST_IN_DATA),
]


def run_transaction(c):
    """run_transaction - MAIL, RCPT, DATA, data; stop at the first failure.

    Returns {stage: Reply or "closed"}."""
    seen = {}
    steps = [("MAIL", "MAIL FROM:<a@example.org>"), ("RCPT", "RCPT TO:<b@example.org>"),
             ("DATA", "DATA"), ("DOT", None)]
    for stage, line in steps:
        try:
            if line is None:
                c.send(DATA + b".\r\n")
                r = c.read_reply(timeout=10)
            else:
                r = c.cmd(line, timeout=10)
        except (EOFError, ConnectionError):
            seen[stage] = "closed"
            return seen
        seen[stage] = r
        if r.code not in (250, 354):
            return seen
    return seen


@pytest.mark.parametrize("kind, args, config, stage, expected",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_backend_failure(start_backend, start_sink, start_daemon, connect, kind, args, config, stage, expected):
    if kind == "rec":
        backend = start_backend(*args)
    elif kind == "sink":
        backend = start_sink(*args)
    else:
        backend = free_port()         # nothing listens there
    # one probe at start only: load shedding on a failing probe is not tested here
    d = start_daemon(backend, backend_probe_interval="1h", **config)
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    seen = run_transaction(c)

    dot = seen.get("DOT")
    if expected == "bounded":
        assert dot not in (None, "closed"), seen
        assert all(len(line) + 2 <= 512 for line in dot.lines), "reply line over 512 octets: %r" % dot.raw[:600]
        assert dot.code == 250 or dot.last == LOST_IN_DATA, dot
        return
    # the one property that matters most: no 250 the backend did not give
    assert not (dot not in (None, "closed") and dot.code == 250), "end-of-data got 250: %r" % dot

    failed = list(seen)[-1]
    reply = seen[failed]
    assert failed == stage, "failure at %s, expected at %s: %r" % (failed, stage, seen)
    assert reply != "closed", "client was disconnected instead of getting a reply: %r" % seen
    assert reply.last == expected, reply
    # the client is not thrown out: it can try again in the same session
    assert c.cmd("RSET").code == 250


def test_multiline_backend_reply_is_passed_on_as_it_is(start_backend, start_daemon, connect):
    backend = start_backend("--bad-reply", "DOT:multiline")
    d = start_daemon(backend)
    c = connect(d)
    c.greeting()
    c.ehlo()
    seen = run_transaction(c)
    assert seen["DOT"].raw == (b"250-2.0.0 first line\r\n250-2.0.0 second line\r\n"
                               b"250 2.0.0 Ok: last line\r\n")
    assert [m for _, _, m in backend.messages()] == [DATA]


def test_end_of_data_250_with_more_after_it_is_still_a_250(start_backend, start_daemon, connect):
    """A backend that answers the dot with 250 and more in the same write took
    the message: the client gets that 250 (a 451 would make it send the
    message again), and the next transaction gets a fresh backend connection."""
    backend = start_backend("--bad-reply", "DOT:extra")
    d = start_daemon(backend)
    c = connect(d)
    c.greeting()
    c.ehlo()
    first = run_transaction(c)
    assert first["DOT"] != "closed" and first["DOT"].last == "250 2.0.0 Ok: queued", first
    second = run_transaction(c)
    assert second["DOT"] != "closed" and second["DOT"].code == 250, second
    assert [m for _, _, m in backend.messages()] == [DATA, DATA]
    carried = [len(conn["messages"]) for conn in backend.connections() if conn["messages"]]
    assert carried == [1, 1], "the misbehaving connection was reused: %r" % carried
    assert "sent data after its reply" in d.stderr()


def test_mail_pipelined_behind_that_250_gets_a_fresh_backend(start_backend, start_daemon, connect):
    """The same backend, and the client pipelines its next MAIL behind the
    dot, so the MAIL is read while the misbehaving connection is still
    there: it must start the next transaction on a fresh connection, not be
    answered 451 (or sent down the connection that is being dropped)."""
    backend = start_backend("--bad-reply", "DOT:extra")
    d = start_daemon(backend)
    c = connect(d)
    c.greeting()
    c.ehlo()
    for line in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>", "DATA"):
        assert c.cmd(line, timeout=10).code in (250, 354)
    c.send(DATA + b".\r\nMAIL FROM:<a@example.org>\r\n")
    assert c.read_reply(timeout=10).last == "250 2.0.0 Ok: queued"
    assert c.read_reply(timeout=10).code == 250, "the pipelined MAIL was refused"
    assert c.cmd("RCPT TO:<b@example.org>", timeout=10).code == 250
    assert c.cmd("DATA", timeout=10).code == 354
    c.send(DATA + b".\r\n")
    assert c.read_reply(timeout=10).code == 250
    assert [m for _, _, m in backend.messages()] == [DATA, DATA]
    assert "sent data after its reply" in d.stderr()
