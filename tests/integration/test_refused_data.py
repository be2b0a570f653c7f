"""After a DATA that did not get 354, what the client sent behind it is
message text: RFC 2920 makes DATA the last command of a pipelined group.
A client that sent bytes after a refused DATA is dropped (reason
`pipelining`), none of those bytes is executed, nothing of them reaches
the backend, whether mxtierd or the backend refused the DATA, whether the
client is allow-listed or not, in one write and split at every byte."""

import pytest

from harness import wait_until

SMUGGLED = b"v@ext.test"
# The body a pipelining client sends blind: headers, then lines that would be commands if executed.
BODY = (b"From: <a@example.org>\r\nSubject: pipelined\r\n\r\nRCPT TO:<" + SMUGGLED + b">\r\nDATA\r\n"
        b"smuggled text\r\n.\r\nQUIT\r\n")

ENVELOPE = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"

# label, backend options, mxtierd config, the pipelined bytes, the reply to DATA, who refused it
CASES = [
    ("backend-refuses-rcpt", ("--reply", "RCPT:550 5.1.1 no such user"), {}, ENVELOPE + BODY, "554 5.5.1", "mxtierd"),
    ("rcpt-syntax-refused", (), {}, b"MAIL FROM:<a@example.org>\r\nRCPT TO:<broken\r\nDATA\r\n" + BODY,
     "554 5.5.1", "mxtierd"),
    ("data-without-mail", (), {}, b"DATA\r\nMAIL FROM:<a@example.org>\r\n" + BODY, "503 5.5.1", "mxtierd"),
    ("data-with-argument", (), {}, b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA now\r\n" + BODY,
     "501 5.5.4", "mxtierd"),
    ("backend-451-to-data", ("--reply", "DATA:451 4.3.0 try later"), {}, ENVELOPE + BODY, "451 4.3.0", "backend"),
    ("backend-554-to-data", ("--reply", "DATA:554 5.7.1 no thanks"), {}, ENVELOPE + BODY, "554 5.7.1", "backend"),
    ("allowlisted-client", ("--reply", "RCPT:550 5.1.1 no such user"), {"allow_networks": "127.0.0.2/32"},
     ENVELOPE + BODY, "554 5.5.1", "mxtierd"),
]


def assert_nothing_executed(d, backend, c, replies, data_reply):
    texts = [r.last for r in replies]
    assert any(t.startswith(data_reply) for t in texts), texts
    after = texts[[i for i, t in enumerate(texts) if t.startswith(data_reply)][0] + 1:]
    # after the DATA refusal: only the drop, never a 250 or 354 to a body line
    assert all(t.startswith("554 5.5.0") for t in after), texts
    assert not any(t.startswith("354") for t in texts), texts
    log = d.session_for(c)
    assert "pipelining" in log["reason_list"], log
    assert log["messages"] == "0", log
    assert backend.messages() == []
    for conn in backend.connections():
        assert SMUGGLED not in backend.raw_input(conn), "a body line reached the backend"


@pytest.mark.parametrize("label, bargs, config, payload, data_reply, who", CASES, ids=[c[0] for c in CASES])
def test_body_after_refused_data_in_one_write(start_backend, start_daemon, connect, label, bargs, config, payload,
                                              data_reply, who):
    b = start_backend(*bargs)
    d = start_daemon(b, **config)
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    c.send(payload)
    replies, closed = c.replies_until_close()
    assert closed, replies
    assert_nothing_executed(d, b, c, replies, data_reply)


SPLIT_CASES = [c for c in CASES if c[0] in ("backend-refuses-rcpt", "data-without-mail", "backend-554-to-data")]


@pytest.mark.parametrize("label, bargs, config, payload, data_reply, who", SPLIT_CASES,
                         ids=[c[0] for c in SPLIT_CASES])
def test_body_after_refused_data_split_at_every_byte(start_backend, start_daemon, connect, label, bargs, config,
                                                     payload, data_reply, who):
    """Two writes, split at each offset after the DATA line's start: the outcome never changes."""
    b = start_backend(*bargs)
    d = start_daemon(b, max_errors="50")
    start = payload.index(b"DATA")
    for cut in range(start, len(payload)):
        c = connect(d)
        assert c.greeting().code == 220
        assert c.ehlo().code == 250
        c.send(payload[:cut])
        c.send(payload[cut:])
        replies, closed = c.replies_until_close()
        assert closed, (cut, replies)
        texts = [r.last for r in replies]
        assert not any(t.startswith("354") for t in texts), (cut, texts)
        assert texts[-1].startswith("554 5.5.0"), (cut, texts)
        c.close()
    assert b.messages() == []
    for conn in b.connections():
        assert SMUGGLED not in b.raw_input(conn)
    wait_until(lambda: len([s for s in d.sessions() if "pipelining" in s["reason_list"]]) == len(payload) - start,
               5, what="every session dropped for pipelining")


def test_client_that_waits_for_the_refusal_goes_on(start_backend, start_daemon, connect):
    """A real MTA reads the refusal, then RSETs and sends its next message: nothing is dropped."""
    b = start_backend("--fault-after", "1", "--reply", "RCPT:550 5.1.1 no such user")
    d = start_daemon(b)
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<gone@example.org>").code == 550
    assert c.cmd("DATA").last.startswith("554 5.5.1")
    assert c.cmd("RSET").code == 250
    assert c.cmd("NOOP").code == 250
    assert c.cmd("QUIT").code == 221
    log = d.session_for(c)
    assert "pipelining" not in log["reason_list"], log


def test_backend_refused_data_then_rset_and_next_message(start_backend, start_daemon, connect):
    b = start_backend("--reply", "DATA:451 4.3.0 try later", "--fault-after", "1")
    d = start_daemon(b)
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 451
    assert c.cmd("RSET").code == 250
    assert c.cmd("QUIT").code == 221
    assert "pipelining" not in d.session_for(c)["reason_list"]
