"""Hostile commands (issue 6, hostile-input suite): BDAT without CHUNKING,
client-sent XCLIENT / XFORWARD / PROXY, CR, LF and NUL in every value that
reaches the backend or the log, over-long command and text lines, and
thousands of recipients.

What is checked is what a user would check: the replies (docs/engine.md),
the bytes the recording backend got (byte-exact files), the session log
line on mxtierd's stderr, and the daemon's memory.
"""

import re
import time

import pytest

from harness import HOSTNAME, PRIMARY
from hostile_lib import (alive, assert_rss_bounded, backend_conn_for, backend_conns_for, bare_bytes,
                         malformed_log_lines, rss_kib)

MESSAGE = b"From: <a@example.org>\r\nSubject: hostile\r\n\r\nbody\r\n"
CLEAN_COMMAND = re.compile(rb"^[\x20-\x7e]*\r\n$")
NOT_IMPLEMENTED = "502 5.5.1"
SPOOFED = (b"192.0.2.66", b"spoof.example", b"INJ")


def sessions_of(daemon, c):
    key = "%s:%d" % c.local[:2]
    return [s for s in daemon.sessions() if s.get("client") == key]


def deliver(c):
    """deliver - a normal transaction; returns its replies' codes."""
    replies = c.send_mail("a@example.org", ["b@example.org"], MESSAGE)
    return [r.code for r in replies]


def assert_backend_clean(backend, conn):
    raw = backend.raw_input(conn)
    assert bare_bytes(raw) == [], "bare CR/LF/NUL reached the backend: %r" % raw
    for s in SPOOFED:
        assert s not in raw, "%r reached the backend: %r" % (s, raw)
    for cmd in conn["commands"]:
        assert CLEAN_COMMAND.match(cmd.encode("latin-1")), cmd


# -- BDAT without CHUNKING ---------------------------------------------------------

CHUNK_COMMANDS = b"MAIL FROM:<bdat@evil.example>\r\nRCPT TO:<victim@evil.example>\r\n"
CHUNK_MESSAGE = b"Subject: chunked\r\n\r\nnot a command\r\n"
CHUNK_BINARY = b"\x00\x01\r\n\xff\nQUIT\r\n\x00\x00\r"

BDAT = [
    # label, bytes sent (BDAT line and its chunk)
    ("bdat-last-with-commands", b"BDAT %d LAST\r\n" % len(CHUNK_COMMANDS) + CHUNK_COMMANDS),
    ("bdat-with-message", b"BDAT %d LAST\r\n" % len(CHUNK_MESSAGE) + CHUNK_MESSAGE),
    ("bdat-binary-chunk", b"BDAT %d\r\n" % len(CHUNK_BINARY) + CHUNK_BINARY),
    ("bdat-zero-last", b"BDAT 0 LAST\r\n"),
]


@pytest.mark.parametrize("sent", [b for _, b in BDAT], ids=[l for l, _ in BDAT])
def test_bdat_without_chunking(start_daemon, backend, connect, sent):
    d = start_daemon(backend, backend_client_info="xclient")
    c = connect(d)
    assert c.greeting().code == 220
    r = c.ehlo()
    assert "CHUNKING" not in r.text and "BINARYMIME" not in r.text, r
    c.send(sent + b"NOOP\r\n")
    r = c.read_reply()
    assert r.last.startswith(NOT_IMPLEMENTED), r
    # the chunk's bytes are neither commands nor data: the next reply is the NOOP's
    r = c.read_reply()
    assert r.last.startswith("250 2.0.0"), "chunk bytes were taken as commands: %r" % r
    assert c.cmd("RCPT TO:<b@example.org>").code == 503        # no MAIL from the chunk in effect
    assert deliver(c) == [250, 250, 354, 250]
    conn = backend_conn_for(backend, c)
    assert_backend_clean(backend, conn)
    raw = backend.raw_input(conn)
    assert b"BDAT" not in raw and b"bdat@evil" not in raw and b"victim" not in raw, raw
    assert [m["rcpts"] for m in conn["messages"]] == [["TO:<b@example.org>"]]
    assert alive(d)


# -- XCLIENT, XFORWARD, PROXY from the client ----------------------------------------

CLIENT_INFO = [
    # label, bytes sent after EHLO, expected reply
    ("xclient", b"XCLIENT ADDR=192.0.2.66 PORT=4242 NAME=spoof.example HELO=spoof.example\r\n", NOT_IMPLEMENTED),
    ("xclient-lowercase", b"xclient addr=192.0.2.66 name=spoof.example\r\n", NOT_IMPLEMENTED),
    ("xforward", b"XFORWARD ADDR=192.0.2.66 NAME=spoof.example PROTO=ESMTP\r\n", NOT_IMPLEMENTED),
    ("proxy-v1", b"PROXY TCP4 192.0.2.66 127.0.0.10 4242 25\r\n", NOT_IMPLEMENTED),
    ("proxy-v1-unknown", b"PROXY UNKNOWN\r\n", NOT_IMPLEMENTED),
]


@pytest.mark.parametrize("mode", ["none", "xclient", "proxy_v1", "proxy_v2"])
@pytest.mark.parametrize("sent, expected", [c[1:] for c in CLIENT_INFO], ids=[c[0] for c in CLIENT_INFO])
def test_client_sent_client_info_is_refused_and_never_forwarded(start_backend, start_daemon, connect,
                                                                 sent, expected, mode):
    backend = start_backend("--proxy-protocol") if mode.startswith("proxy") else start_backend()
    d = start_daemon(backend, backend_client_info=mode, backend_probe_interval="1h")
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    c.send(sent)
    r = c.read_reply()
    assert r.last.startswith(expected), r
    assert deliver(c) == [250, 250, 354, 250]
    [conn] = [x for x in backend.mail_connections()]
    raw = backend.raw_input(conn)
    if mode == "none":
        assert conn["xclient"] == [] and conn["proxy"] is None, conn
        assert_backend_clean(backend, conn)
        assert b"XFORWARD" not in raw and b"XCLIENT" not in raw and b"PROXY" not in raw, raw
    elif mode == "xclient":
        assert [a["ADDR"] for a in conn["xclient_attrs"]] == [["127.0.0.2"]], conn["xclient_attrs"]
        assert conn["xclient_attrs"][0]["PORT"] == [str(c.local_port)]
        assert_backend_clean(backend, conn)
    else:
        # the one PROXY header is mxtierd's own, with the real client
        assert conn["proxy"]["src"] == "127.0.0.2" and conn["proxy"]["sport"] == c.local_port, conn["proxy"]
        assert conn["proxy"]["dst"] == PRIMARY, conn["proxy"]
        assert raw.count(b"PROXY") <= 1 and b"XFORWARD" not in raw and b"XCLIENT" not in raw, raw
        for s in SPOOFED:
            assert s not in raw, raw
    assert len(conn["messages"]) == 1
    assert malformed_log_lines(d) == []


def test_proxy_v2_signature_from_the_client(start_daemon, backend, connect):
    """The v2 signature is built to stop an SMTP server at "QUIT\\n"; nothing of it is relayed."""
    d = start_daemon(backend, backend_client_info="xclient")
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    header = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11, 0x00, 0x0c]) + bytes([192, 0, 2, 66, 127, 0, 0, 10]) + \
        b"\x10\x92\x00\x19"
    c.send(header + b"MAIL FROM:<a@example.org>\r\n")
    replies = []
    try:
        while True:
            replies.append(c.read_reply(timeout=3))
    except (EOFError, ConnectionError):
        pass
    codes = [r.code for r in replies]
    # empty lines and the NUL line are refused (500), the QUIT ends the session
    assert codes and codes[-1] == 221, replies
    assert all(code in (500, 501, 502, 221) for code in codes), replies
    time.sleep(0.2)
    assert backend.mail_connections() == []
    assert alive(d) and malformed_log_lines(d) == []


# -- nothing runs after the session ended ---------------------------------------------------

AFTER = b"MAIL FROM:<after@evil.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: after\r\n\r\nx\r\n.\r\n"
ENDINGS = [
    # label, bytes that end the session, the replies they get (prefixes)
    ("quit", b"QUIT\r\n", ["221"]),
    ("http-get", b"GET / HTTP/1.1\r\n", ["521 5.7.0"]),
    ("http-header-line", b"Host: mx.example\r\n", ["521 5.7.0"]),
    ("max-errors", b"FOO\r\n" * 3, ["500 5.5.2", "500 5.5.2", "500 5.5.2", "421 4.7.0 %s Too many errors" % HOSTNAME]),
]


@pytest.mark.parametrize("ending, expected", [e[1:] for e in ENDINGS], ids=[e[0] for e in ENDINGS])
def test_nothing_runs_after_the_session_ends(start_daemon, backend, connect, ending, expected):
    d = start_daemon(backend, backend_client_info="xclient", max_errors=3)
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    c.send(ending + AFTER)
    replies = [c.read_reply() for _ in expected]
    for r, want in zip(replies, expected):
        assert r.last.startswith(want), replies
    assert c.is_closed(3), "still open after %r; pending %r" % (replies[-1], c.buf)
    assert c.buf == b"", "replies after the end: %r" % c.buf
    time.sleep(0.2)
    assert backend.mail_connections() == []
    assert len(sessions_of(d, c)) == 1 and malformed_log_lines(d) == []
    assert alive(d)


# -- CR, LF and NUL in values ----------------------------------------------------------

# label, stage, the hostile line (without its CRLF), the replies it gets (prefixes, in
# order; "a|b": either).  A bare LF ends a command line (as in Postfix), so what
# follows it is a command of its own, answered on its own.
VALUES = [
    ("helo-cr-mail", "helo", b"EHLO a.example\rMAIL FROM:<INJ@evil.example>", ["500 5.5.2"]),
    ("helo-nul", "helo", b"EHLO a.example\x00INJ.example", ["500 5.5.2"]),
    ("helo-lf-xclient", "helo", b"EHLO a.example\nXCLIENT ADDR=192.0.2.66 NAME=INJ", ["250", NOT_IMPLEMENTED]),
    ("helo-lf-inside-name", "helo", b"HELO a.\nexample", ["250", "500 5.5.2"]),
    ("helo-cr-crlf", "helo", b"EHLO a.example\r\r", ["500 5.5.2"]),
    ("helo-tab", "helo", b"EHLO a.example\tINJ", ["501 5.5.4"]),
    ("helo-escape-sequence", "helo", b"EHLO a\x1b[2J.example", ["501 5.5.4"]),
    ("helo-del-and-8bit", "helo", b"EHLO a\x7f\xff.example", ["501 5.5.4"]),
    ("helo-300-octet-name", "helo", b"EHLO " + b"h" * 300, ["501 5.5.4"]),
    ("mail-cr-in-path", "mail", b"MAIL FROM:<a\r@example.org>", ["500 5.5.2"]),
    ("mail-cr-then-rcpt", "mail", b"MAIL FROM:<a@example.org>\rRCPT TO:<INJ@evil.example>", ["500 5.5.2"]),
    ("mail-nul-after-param", "mail", b"MAIL FROM:<a@example.org> SIZE=100\x00RCPT TO:<INJ@evil.example>",
     ["500 5.5.2"]),
    ("mail-lf-in-quoted-local", "mail", b'MAIL FROM:<"a\nINJ"@example.org>', ["501 5.1.7", "500 5.5.2"]),
    ("mail-cr-in-param", "mail", b"MAIL FROM:<a@example.org> BODY=8BITMIME\rINJ=1", ["500 5.5.2"]),
    ("mail-quoted-pair-cr", "mail", b'MAIL FROM:<"a\\\rb"@example.org>', ["500 5.5.2"]),
    ("mail-quoted-pair-nul", "mail", b'MAIL FROM:<"a\\\x00b"@example.org>', ["500 5.5.2"]),
    ("mail-escape-in-path", "mail", b"MAIL FROM:<a\x1b[31m@example.org>", ["501 5.1.7"]),
    ("mail-param-vertical-tab", "mail", b"MAIL FROM:<a@example.org> BODY=8BITMIME\x0bINJ", ["555 5.5.4|501 5.5.4"]),
    ("rcpt-cr-then-data", "rcpt", b"RCPT TO:<b@example.org>\rDATA", ["500 5.5.2"]),
    ("rcpt-nul-in-path", "rcpt", b"RCPT TO:<b\x00INJ@example.org>", ["500 5.5.2"]),
    ("rcpt-lf-xforward", "rcpt", b"RCPT TO:<b@example.org>\nXFORWARD ADDR=192.0.2.66", ["250", NOT_IMPLEMENTED]),
    ("rcpt-lf-in-path", "rcpt", b"RCPT TO:<b@exa\nmple.org>", ["501 5.1.3", "500 5.5.2"]),
    ("rcpt-cr-in-param", "rcpt", b"RCPT TO:<b@example.org> NOTIFY=NEVER\rINJ", ["500 5.5.2"]),
]

SOURCES = iter(range(1, 250))


@pytest.mark.parametrize("stage, line, expected", [v[1:] for v in VALUES], ids=[v[0] for v in VALUES])
def test_cr_lf_nul_in_values(start_daemon, backend, connect, stage, line, expected):
    # allow-listed: pipelining/pregreet are not held against these clients, so every
    # value that is accepted goes on to the backend (XCLIENT carries the HELO)
    d = start_daemon(backend, backend_client_info="xclient", allow_networks="127.0.7.0/24")
    c = connect(d, source="127.0.7.%d" % next(SOURCES))
    assert c.greeting().code == 220
    before = {"helo": [], "mail": ["EHLO ok.example"], "rcpt": ["EHLO ok.example", "MAIL FROM:<a@example.org>"]}
    rest = {"helo": ["EHLO ok.example", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>"],
            "mail": ["MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>"],
            "rcpt": ["RCPT TO:<b@example.org>"]}
    for cmd in before[stage]:
        assert c.cmd(cmd).code == 250, cmd
    c.send(line + b"\r\n")
    replies = [c.read_reply() for _ in expected]
    for r, want in zip(replies, expected):
        assert r.last.startswith(tuple(want.split("|"))), (replies, expected)
    assert c.cmd("NOOP").code == 250            # nothing else is pending
    for cmd in rest[stage]:
        assert c.cmd(cmd).code == 250, cmd
    assert c.cmd("DATA").code == 354
    c.send(MESSAGE + b".\r\n")
    assert c.read_reply().code == 250
    assert c.cmd("QUIT").code == 221

    conn = backend_conn_for(backend, c)
    assert_backend_clean(backend, conn)
    assert [m["mail_from"] for m in conn["messages"]] == ["FROM:<a@example.org>"], conn["messages"]
    assert conn["xclient_attrs"][0]["HELO"] == ["ok.example"], conn["xclient_attrs"]
    assert all(r == "TO:<b@example.org>" for m in conn["messages"] for r in m["rcpts"]), conn["messages"]
    # the log: one line for the session, nothing injected into stderr
    log = d.session_for(c)
    assert len(sessions_of(d, c)) == 1
    assert log["helo"] == "ok.example" and log["from"] == "<a@example.org>", log
    assert malformed_log_lines(d) == []
    assert alive(d)


# -- over-long command lines and text lines ------------------------------------------------

LONG_COMMANDS = [
    # label, bytes (with their line end); each line gets exactly one 500 5.5.2 Line too long
    ("mail-513-octets", b"MAIL FROM:<a@example.org> SIZE=1" + b"0" * 480 + b"\r\n"),
    ("rcpt-600-octets-then-crlf", b"RCPT TO:<" + b"r" * 580 + b"@example.org>\r\n"),
    ("ehlo-64k", b"EHLO " + b"h" * 65536 + b"\r\n"),
    ("noop-1mb-no-line-end-then-crlf", b"NOOP " + b"n" * (1 << 20) + b"\r\n"),
    ("xclient-tail-after-512", b"NOOP " + b"p" * 507 + b"XCLIENT ADDR=192.0.2.66\r\n"),
    ("mail-tail-after-512", b"NOOP " + b" " * 507 + b"MAIL FROM:<INJ@evil.example>\r\n"),
]


@pytest.mark.parametrize("sent", [c[1] for c in LONG_COMMANDS], ids=[c[0] for c in LONG_COMMANDS])
def test_over_long_command_lines(start_daemon, backend, connect, sent):
    d = start_daemon(backend, backend_client_info="xclient")
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    c.send(sent + b"NOOP\r\n")
    r = c.read_reply()
    assert r.last.startswith("500 5.5.2 Line too long"), r
    r = c.read_reply()
    assert r.last.startswith("250 2.0.0"), "the refused line's tail was run: %r" % r
    # nothing of the refused line was truncated and run: no transaction is open
    assert c.cmd("RCPT TO:<b@example.org>").code == 503
    assert deliver(c) == [250, 250, 354, 250]
    conn = backend_conn_for(backend, c)
    assert_backend_clean(backend, conn)
    assert all(len(x) <= 512 for x in conn["commands"]), conn["commands"]
    assert c.cmd("QUIT").code == 221
    log = d.session_for(c)
    assert log["helo"] == "client.example.org" and log["from"] == "<a@example.org>", log
    assert malformed_log_lines(d) == []
    assert alive(d)


LONG_TEXT = [
    # label, message body; end-of-data gets 552 5.5.6, the backend completes nothing
    ("text-line-1001-octets", b"Subject: long\r\n\r\n" + b"a" * 999 + b"\r\n"),
    ("header-line-4000-octets", b"Subject: " + b"s" * 3989 + b"\r\n\r\nbody\r\n"),
    ("long-line-then-stuffed-dot", b"Subject: x\r\n\r\n" + b"b" * 1100 + b"\r\n..\r\nmore\r\n"),
    ("1mb-single-line", b"Subject: x\r\n\r\n" + b"m" * (1 << 20) + b"\r\n"),
]


@pytest.mark.parametrize("body", [c[1] for c in LONG_TEXT], ids=[c[0] for c in LONG_TEXT])
def test_over_long_text_lines(start_daemon, backend, connect, body):
    d = start_daemon(backend, backend_client_info="xclient")
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(body + b".\r\n")
    r = c.read_reply(timeout=10)
    assert r.last.startswith("552 5.5.6"), r
    assert deliver(c) == [250, 250, 354, 250]
    time.sleep(0.2)
    done = [m for conn in backend_conns_for(backend, c) for m in conn["messages"] if m["complete"]]
    assert [m["size"] for m in done] == [len(MESSAGE)], done
    for conn in backend_conns_for(backend, c):
        assert_backend_clean(backend, conn)
        raw = backend.raw_input(conn)
        assert b"a" * 999 not in raw and b"s" * 1000 not in raw and b"m" * 1000 not in raw and b"b" * 1000 not in raw
    assert alive(d)


# -- thousands of recipients -------------------------------------------------------------

RCPT_FLOODS = [
    # label, max_recipients, RCPT commands pipelined after one MAIL
    ("5000-rcpts-limit-100", 100, 5000),
    ("3000-rcpts-limit-250", 250, 3000),
]


@pytest.mark.parametrize("limit, count", [r[1:] for r in RCPT_FLOODS], ids=[r[0] for r in RCPT_FLOODS])
def test_thousands_of_pipelined_recipients(start_daemon, backend, connect, limit, count):
    d = start_daemon(backend, backend_client_info="xclient", max_recipients=limit)
    c = connect(d, timeout=20)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    rss0 = rss_kib(d.proc.pid)
    c.send(b"MAIL FROM:<a@example.org>\r\n" + b"".join(b"RCPT TO:<r%d@example.org>\r\n" % i for i in range(count)))
    peak = rss0
    replies = []
    for i in range(count + 1):
        replies.append(c.read_reply(timeout=20))
        if i % 500 == 0:
            peak = max(peak, rss_kib(d.proc.pid))
    codes = [r.code for r in replies]
    assert codes[:limit + 1] == [250] * (limit + 1), codes[:limit + 10]
    assert all(r.last.startswith("452 4.5.3") for r in replies[limit + 1:]), \
        [r for r in replies[limit + 1:] if r.code != 452][:3]
    assert c.cmd("DATA").code == 354
    c.send(MESSAGE + b".\r\n")
    assert c.read_reply().code == 250
    conn = backend_conn_for(backend, c)
    rcpt_cmds = [x for x in conn["commands"] if x.upper().startswith("RCPT")]
    assert len(rcpt_cmds) == limit, len(rcpt_cmds)
    assert len(conn["messages"]) == 1 and len(conn["messages"][0]["rcpts"]) == limit
    peak = max(peak, rss_kib(d.proc.pid))
    assert_rss_bounded(d.proc.pid, rss0, peak, 8 * 1024, "%d RCPT, limit %d" % (count, limit))
    assert c.cmd("QUIT").code == 221
    log = d.session_for(c)
    assert log["rcpts"] == str(limit), log
    assert alive(d)
