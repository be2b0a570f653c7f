"""Mail that should go through: what the client sends is what the backend gets."""

import smtplib
import subprocess
import time

import pytest

from harness import PRIMARY, SECONDARY, wait_until


def message(subject=b"test", body=b"hello\r\n"):
    return (b"From: <a@example.org>\r\nTo: <b@example.org>\r\nSubject: " + subject
            + b"\r\n\r\n" + body)


def test_several_messages_in_one_session(mxtierd, backend, connect):
    c = connect(mxtierd)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    sent = [message(b"one"), message(b"two", b"second body\r\n"), message(b"three", b"x\r\n" * 50)]
    eod_replies = []
    for i, data in enumerate(sent):
        replies = c.send_mail("a%d@example.org" % i, ["b%d@example.org" % i], data)
        assert [r.code for r in replies] == [250, 250, 354, 250], replies
        eod_replies.append(replies[-1])
    assert c.cmd("QUIT").code == 221

    got = backend.messages()
    assert [data for _, _, data in got] == sent
    assert len(backend.messages(complete=False)) == 0
    # the client's end-of-data replies are the backend's own, unchanged
    backend_replies = {r for conn, _, _ in got for r in conn["replies"]}
    for r in eod_replies:
        assert r.raw.decode("latin-1") in backend_replies
    log = mxtierd.session_for(c)
    assert log["verdict"] == "relay"
    assert log["messages"] == "3"
    assert log["tier"] == "primary"


def test_pipelined_envelope_replies_in_order(mxtierd, backend, connect):
    c = connect(mxtierd)
    c.greeting()
    assert "PIPELINING" in c.ehlo().text
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
           b"RCPT TO:<c@example.org>\r\nDATA\r\n")
    replies = [c.read_reply() for _ in range(4)]
    assert [r.code for r in replies] == [250, 250, 250, 354], replies
    c.send(message() + b".\r\nQUIT\r\n")
    eod, quit_ = c.read_reply(), c.read_reply()
    assert (eod.code, quit_.code) == (250, 221)
    [(conn, entry, data)] = backend.messages()
    assert data == message()
    assert len(entry["rcpts"]) == 2


@pytest.mark.parametrize("pipeline, expected", [
    pytest.param(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bad\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
                 [250, 501, 250, 354], id="bad-rcpt-in-the-middle"),
    pytest.param(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nNOOP\r\nRSET\r\n"
                 b"MAIL FROM:<d@example.org>\r\nRCPT TO:<e@example.org>\r\nDATA\r\n",
                 [250, 250, 250, 250, 250, 250, 354], id="rset-inside-pipeline"),
    pytest.param(b"RCPT TO:<b@example.org>\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n",
                 [503, 250, 250], id="out-of-order-pipeline"),
])
def test_pipelined_commands_each_get_their_reply(mxtierd, backend, connect, pipeline, expected):
    c = connect(mxtierd)
    c.greeting()
    c.ehlo()
    c.send(pipeline)
    replies = [c.read_reply() for _ in expected]
    assert [r.code for r in replies] == expected, replies
    if expected[-1] == 354:
        c.send(message() + b".\r\n")
        assert c.read_reply().code == 250
        assert [m for _, _, m in backend.messages()] == [message()]
    # nothing more is pending: the next command gets its own reply
    assert c.cmd("NOOP").code == 250


def test_rset_discards_the_envelope(mxtierd, backend, connect):
    c = connect(mxtierd)
    c.greeting()
    c.ehlo()
    assert c.cmd("MAIL FROM:<first@example.org>").code == 250
    assert c.cmd("RCPT TO:<dropped@example.org>").code == 250
    assert c.cmd("RSET").code == 250
    r = c.cmd("RCPT TO:<after-rset@example.org>")
    assert r.code == 503 and r.last.startswith("503 5.5.1"), r
    replies = c.send_mail("second@example.org", ["kept@example.org"], message())
    assert [r.code for r in replies] == [250, 250, 354, 250], replies
    [(conn, entry, data)] = backend.messages()
    assert "<second@example.org>" in entry["mail_from"]
    assert len(entry["rcpts"]) == 1 and "<kept@example.org>" in entry["rcpts"][0]
    assert data == message()


BODIES = [
    ("plain", message()),
    ("empty-body", b""),
    ("only-an-empty-line", b"\r\n"),
    ("headers-only", b"Subject: no body\r\n"),
    ("dot-stuffed", message(body=b"..leading dot\r\n..\r\n...\r\nend\r\n")),
    ("dot-space-line", message(body=b". \r\nafter\r\n")),
    ("8bit", message(body=bytes(range(0x80, 0x100)) + b"\r\n")),
    ("utf8", message(body="Grüße, 日本語\r\n".encode("utf-8"))),
    ("control-chars", message(body=bytes(range(1, 9)) + b"\x0b\x0c" + bytes(range(0x0e, 0x20)) + b"\x7f\r\n")),
    ("trailing-whitespace", message(body=b"tab\t\r\nspaces   \r\n\r\n\r\n")),
    ("998-octet-line", message(body=b"y" * 998 + b"\r\n")),
    ("one-mebibyte", message(body=(b"z" * 78 + b"\r\n") * 13108)),
]


@pytest.mark.parametrize("data", [b for _, b in BODIES], ids=[i for i, _ in BODIES])
def test_backend_gets_the_exact_data_bytes(mxtierd, backend, connect, data):
    c = connect(mxtierd)
    c.greeting()
    c.ehlo()
    replies = c.send_mail("a@example.org", ["b@example.org"], data)
    assert [r.code for r in replies] == [250, 250, 354, 250], replies
    got = backend.messages()
    assert len(got) == 1
    assert got[0][2] == data
    # and the raw stream ends with exactly the client's end-of-data
    raw = backend.raw_input(got[0][0])
    assert (b"DATA\r\n" + data + b".\r\n") in raw


@pytest.mark.parametrize("extra", [[], ["--pipeline"]], ids=["plain", "pipelining"])
def test_swaks_through_to_smtp_sink(start_sink, start_daemon, extra):
    sink = start_sink()
    d = start_daemon(sink)
    out = subprocess.run(["/usr/bin/swaks", "--server", PRIMARY, "--port", str(d.port),
                          "--from", "sender@example.org", "--to", "rcpt@example.net",
                          "--helo", "swaks.example.org", "--body", "hello from swaks",
                          "--timeout", "10"] + extra,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "<-  250" in out.stdout
    dumps = sink.dumps()
    assert len(dumps) == 1
    assert b"hello from swaks" in dumps[0]
    assert b"X-Rcpt-Args: <rcpt@example.net>" in dumps[0]


def test_smtp_source_twenty_messages_in_five_sessions(start_sink, start_daemon):
    sink = start_sink()
    d = start_daemon(sink)
    out = subprocess.run(["/usr/sbin/smtp-source", "-s", "5", "-m", "20", "-c", "-M", "source.example.org",
                          "%s:%d" % (PRIMARY, d.port)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(sink.dumps()) == 20

    # smtp-source may exit on the 221 before mxtierd has written the last session's line
    def relayed_messages():
        return sum(int(s.get("messages", 0)) for s in d.sessions() if s.get("verdict") == "relay")
    wait_until(lambda: relayed_messages() >= 20, 5, what="20 relayed messages in the session lines")
    assert relayed_messages() == 20


@pytest.mark.parametrize("source, host, reason_expected", [
    ("127.0.0.30", PRIMARY, True),
    ("127.0.0.31", PRIMARY, False),
    ("127.0.0.32", SECONDARY, False),
], ids=["allowlisted-client", "ordinary-client", "ordinary-client-at-secondary"])
def test_smtplib_clients_from_different_addresses(start_daemon, backend, source, host, reason_expected):
    d = start_daemon(backend, allow_networks="127.0.0.30/32", backend_client_info="xclient")
    with smtplib.SMTP(host, d.port, local_hostname="client.example.org",
                      source_address=(source, 0), timeout=10) as s:
        local = s.sock.getsockname()
        refused = s.sendmail("from@example.org", ["to@example.net"], message(body=b"from " + source.encode() + b"\r\n"))
        assert refused == {}
    [(conn, entry, data)] = backend.messages()
    assert conn["xclient_attrs"][0]["ADDR"] == [source]
    log = d.session_for("%s:%d" % local[:2])
    assert log["verdict"] == "relay"
    assert ("allowlist" in log["reason_list"]) == reason_expected
    assert log["tier"] == ("primary" if host == PRIMARY else "secondary")


# What the backend says at the end of DATA is logged (backend="...") and may
# hold any byte but CR, LF and NUL: control characters, an ANSI escape,
# latin-1, DEL, a quote and a backslash.  A quoted local part (MAIL FROM, RCPT
# TO) and a HELO may hold a quote and a backslash.  log_escape writes each of
# these as \xHH, so the line stays one printable line and no quoted field can
# be closed early.
HOSTILE_DOT_REPLY = '250 2.0.0 Ok: queued as Q\x01\x1b[31m\xe9\x7f "q" \\ end'
HOSTILE_DOT_REPLY_LOGGED = r'250 2.0.0 Ok: queued as Q\x01\x1b[31m\xe9\x7f \x22q\x22 \x5c end'


def test_session_log_line_fields(start_daemon, start_backend, connect):
    backend = start_backend("--reply", "DOT:" + HOSTILE_DOT_REPLY)
    # allow-listed, so that the session is relayed rather than judged
    mxtierd = start_daemon(backend, allow_networks="127.0.0.2/32")
    started = time.monotonic()
    c = connect(mxtierd)
    c.greeting()
    assert c.ehlo('client.example"q\\').code == 250
    mail_from = r'"a\"b\\c"@example.org'          # the quoted local part  "a\"b\\c"
    first_rcpt = r'"x\\y"@example.net'
    replies = c.send_mail(mail_from, [first_rcpt, "c@example.org"], message())
    assert [r.code for r in replies] == [250, 250, 250, 354, 250]
    # the client gets the backend's reply as it was (the proxy only logs it escaped)
    assert replies[-1].raw == HOSTILE_DOT_REPLY.encode("latin-1") + b"\r\n"
    time.sleep(0.3)
    c.cmd("QUIT")
    log = mxtierd.session_for(c)
    elapsed = time.monotonic() - started

    with open(mxtierd.stderr_path, "rb") as f:
        [line] = [l for l in f.read().split(b"\n")
                  if b"session id=" in l and b"client=%s:%d " % (c.local[0].encode(), c.local[1]) in l]
    assert all(0x20 <= b < 0x7f for b in line), "raw control or non-ASCII byte in the log line: %r" % line
    assert b' backend="' + HOSTILE_DOT_REPLY_LOGGED.encode() + b'"' in line, line
    assert b' helo="client.example\\x22q\\x5c" ' in line, line
    assert b' from=<\\x22a\\x5c\\x22b\\x5c\\x5cc\\x22@example.org> ' in line, line
    assert b' first_rcpt=<\\x22x\\x5c\\x5cy\\x22@example.net> ' in line, line

    # the same fields as the harness parses them (the backend field is the last one on the line)
    assert log["backend"] == HOSTILE_DOT_REPLY_LOGGED
    assert log["helo"] == "client.example\\x22q\\x5c"
    assert log["from"] == "<\\x22a\\x5c\\x22b\\x5c\\x5cc\\x22@example.org>"
    assert log["first_rcpt"] == "<\\x22x\\x5c\\x5cy\\x22@example.net>"
    assert log["tier"] == "primary"
    assert log["rcpts"] == "2"
    assert log["messages"] == "1"
    assert log["verdict"] == "relay" and log["reason_list"] == ["allowlist"]
    assert int(log["bytes"]) >= len(message())
    # the session lasted at least the 0.3 s it waited, and no longer than this test watched it
    assert 0.3 <= float(log["duration"]) <= elapsed + 0.01, (log["duration"], elapsed)
    assert log["id"]
    assert log["client"] == "127.0.0.2:%d" % c.local_port
