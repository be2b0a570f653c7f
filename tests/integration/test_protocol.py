"""The SMTP front end: replies to each command, EHLO keywords, syntax and
length limits, recipient and error limits, message size."""

import time

import pytest

from harness import HOSTNAME, wait_until


def session(connect, daemon, ehlo=True):
    c = connect(daemon)
    assert c.greeting().code == 220
    if ehlo:
        assert c.ehlo().code == 250
    return c


COMMANDS = [
    ("FOO bar", "500 5.5.2"),
    ("MAILX FROM:<a@example.org>", "500 5.5.2"),
    ("XCLIENT ADDR=192.0.2.1 NAME=spoofed.example", "502 5.5.1"),
    ("XFORWARD ADDR=192.0.2.1", "502 5.5.1"),
    ("BDAT 0 LAST", "502 5.5.1"),
    ("EXPN staff", "502 5.5.1"),
    ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "502 5.5.1"),
    ("STARTTLS", "502 5.5.1"),
    ("ETRN example.org", "502 5.5.1"),
    ("TURN", "502 5.5.1"),
    ("VRFY postmaster", "252 2.5.2"),
    ("HELP", "214"),
    ("NOOP", "250"),
    ("RSET", "250"),
]


@pytest.mark.parametrize("line, expected", COMMANDS, ids=[c[0].split()[0] for c in COMMANDS])
def test_command_replies(mxtierd, connect, line, expected):
    c = session(connect, mxtierd)
    r = c.cmd(line)
    assert r.last.startswith(expected), r
    # the session goes on (the reply texts are checked in test_reply_texts.py)
    assert c.cmd("NOOP").code == 250


def test_client_xclient_does_not_change_what_the_backend_is_told(start_daemon, backend, connect):
    d = start_daemon(backend, backend_client_info="xclient")
    c = session(connect, d)
    assert c.cmd("XCLIENT ADDR=192.0.2.1 NAME=spoofed.example").code == 502
    replies = c.send_mail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
    assert replies[-1].code == 250
    [(conn, _, _)] = backend.messages()
    assert [a["ADDR"] for a in conn["xclient_attrs"]] == [["127.0.0.2"]]


@pytest.mark.parametrize("advertise_8bitmime", [True, False], ids=["backend-offers-8bitmime", "backend-without-8bitmime"])
def test_ehlo_keywords(start_backend, start_daemon, connect, advertise_8bitmime):
    b = start_backend() if advertise_8bitmime else start_backend("--no-8bitmime")
    d = start_daemon(b, message_size_limit="10m")
    # give the daemon its first look at the backend
    deadline = time.monotonic() + 3
    while not b.connections() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    c = session(connect, d, ehlo=False)
    r = c.ehlo("client.example.org")
    assert r.lines[0] == "250-" + HOSTNAME
    assert r.last == "250 ENHANCEDSTATUSCODES"
    keywords = [l[4:].split()[0].upper() for l in r.lines[1:]]
    assert "PIPELINING" in keywords
    assert "250-SIZE 10485760" in r.lines
    assert ("8BITMIME" in keywords) == advertise_8bitmime
    for never in ("CHUNKING", "XCLIENT", "XFORWARD", "AUTH", "STARTTLS", "BINARYMIME"):
        assert never not in keywords, r.text
    # HELO gets one plain line
    assert c.cmd("HELO client.example.org").last.startswith("250 ")


OUT_OF_ORDER = [
    ("rcpt-before-mail", [], "RCPT TO:<b@example.org>", ("503 5.5.1",)),
    ("data-before-mail", [], "DATA", ("503 5.5.1",)),
    # the contract does not say which; Postfix answers 554 5.5.1 here
    ("data-before-rcpt", ["MAIL FROM:<a@example.org>"], "DATA", ("503 5.5.1", "554 5.5.1")),
    ("mail-twice", ["MAIL FROM:<a@example.org>"], "MAIL FROM:<c@example.org>", ("503 5.5.1",)),
]


@pytest.mark.parametrize("before, line, expected", [o[1:] for o in OUT_OF_ORDER], ids=[o[0] for o in OUT_OF_ORDER])
def test_out_of_order_503(mxtierd, connect, before, line, expected):
    c = session(connect, mxtierd)
    for b in before:
        assert c.cmd(b).code == 250
    r = c.cmd(line)
    assert r.last.startswith(expected), r
    assert c.cmd("NOOP").code == 250


LONG_LOCAL = "l" * 65
LONG_DOMAIN = ".".join(["d" * 63] * 4) + ".org"           # 260 octets
LONG_PATH = "p" * 64 + "@" + ".".join(["e" * 60] * 4)     # 308 octets, parts within limits
PATHS = [
    ("mail-no-brackets", "MAIL FROM:a@example.org", "501 5.1.7", None),
    ("mail-unclosed", "MAIL FROM:<a@example.org", "501 5.1.7", None),
    ("mail-garbage", "MAIL FROM:<a b@example.org>", "501 5.1.7", None),
    ("mail-local-part-65", "MAIL FROM:<%s@example.org>" % LONG_LOCAL, "501", "too long"),
    ("mail-domain-260", "MAIL FROM:<a@%s>" % LONG_DOMAIN, "501", "too long"),
    ("mail-path-308", "MAIL FROM:<%s>" % LONG_PATH, "501", "too long"),
    ("mail-unknown-param", "MAIL FROM:<a@example.org> FOO=bar", "555 5.5.4", None),
    ("mail-auth-param", "MAIL FROM:<a@example.org> AUTH=<>", "555 5.5.4", None),
    ("mail-size-over-limit", "MAIL FROM:<a@example.org> SIZE=20000", "552 5.3.4", None),
    ("rcpt-no-brackets", "RCPT TO:b@example.org", "501 5.1.3", None),
    ("rcpt-unclosed", "RCPT TO:<b@example.org", "501 5.1.3", None),
    ("rcpt-empty", "RCPT TO:<>", "501 5.1.3", None),
    ("rcpt-local-part-65", "RCPT TO:<%s@example.org>" % LONG_LOCAL, "501", "too long"),
    ("rcpt-domain-260", "RCPT TO:<b@%s>" % LONG_DOMAIN, "501", "too long"),
    ("rcpt-path-308", "RCPT TO:<%s>" % LONG_PATH, "501", "too long"),
    ("rcpt-notify-param", "RCPT TO:<b@example.org> NOTIFY=NEVER", "555 5.5.4", None),
]


@pytest.mark.parametrize("line, code, text", [(l, c, t) for _, l, c, t in PATHS], ids=[p[0] for p in PATHS])
def test_path_and_parameter_errors(start_daemon, backend, connect, line, code, text):
    d = start_daemon(backend, message_size_limit="10k")
    c = session(connect, d)
    if line.startswith("RCPT"):
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    r = c.cmd(line)
    assert r.last.startswith(code), r
    if text:
        assert text in r.last, r
    # nothing of the bad command reached the backend
    for conn in backend.connections():
        assert line + "\r\n" not in conn["commands"]


@pytest.mark.parametrize("line", [
    "MAIL FROM:<a@example.org> SIZE=1000",
    "MAIL FROM:<a@example.org> BODY=8BITMIME",
    "MAIL FROM:<a@example.org> BODY=7BIT SIZE=10",
    "MAIL FROM:<>",
], ids=["size", "body-8bitmime", "body-7bit-and-size", "null-sender"])
def test_accepted_mail_parameters(start_daemon, backend, connect, line):
    d = start_daemon(backend, message_size_limit="10k")
    if "8BITMIME" in line:
        # BODY=8BITMIME is taken once the first probe saw the backend offer it
        def offered():
            c = session(connect, d, ehlo=False)
            return "8BITMIME" in c.ehlo("client.example.org").text
        wait_until(offered, 5, interval=0.1, what="8BITMIME offered after the first backend probe")
    c = session(connect, d)
    assert c.cmd(line).code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250


LINES = [
    # label, line (without CRLF), expected reply, follow-up command, its expected reply
    ("512-octets-with-crlf", b"NOOP " + b"x" * 505, "250", "NOOP", "250"),
    ("513-octets-with-crlf", b"NOOP " + b"x" * 506, "500 5.5.2 Line too long", "NOOP", "250"),
    ("8000-octets", b"NOOP " + b"x" * 8000, "500 5.5.2 Line too long", "NOOP", "250"),
    ("tail-after-512-not-run", b"NOOP " + b"x" * 507 + b"QUIT", "500 5.5.2 Line too long", "NOOP", "250"),
    ("long-mail-not-truncated-and-run", b"MAIL FROM:<a@example.org>" + b" " * 600,
     "500 5.5.2 Line too long", "RCPT TO:<b@example.org>", "503"),
]


@pytest.mark.parametrize("line, expected, follow, follow_expected",
                         [l[1:] for l in LINES], ids=[l[0] for l in LINES])
def test_command_line_length(mxtierd, connect, line, expected, follow, follow_expected):
    c = session(connect, mxtierd)
    r = c.cmd(line)
    assert r.last.startswith(expected), r
    r = c.cmd(follow)
    assert r.last.startswith(follow_expected), r
    assert c.cmd("NOOP").code == 250


@pytest.mark.parametrize("count", [101, 130])
def test_too_many_recipients(mxtierd, backend, connect, count):
    c = session(connect, mxtierd)
    rcpts = ["r%d@example.org" % i for i in range(count)]
    c.send(("MAIL FROM:<a@example.org>\r\n" + "".join("RCPT TO:<%s>\r\n" % r for r in rcpts)).encode())
    replies = [c.read_reply() for _ in range(count + 1)]
    assert [r.code for r in replies[:101]] == [250] * 101
    for r in replies[101:]:
        assert r.last.startswith("452 4.5.3"), r
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: many\r\n\r\nmany\r\n.\r\n")
    assert c.read_reply().code == 250
    [(conn, entry, _)] = backend.messages()
    assert len(entry["rcpts"]) == 100


@pytest.mark.parametrize("bad", [
    "FOO", "MAIL FROM:broken", "RCPT TO:<b@example.org>",
], ids=["unknown-command", "bad-mail-syntax", "out-of-order"])
def test_max_errors_421(start_daemon, backend, connect, bad):
    d = start_daemon(backend, max_errors=3)
    c = session(connect, d)
    replies = []
    try:
        for _ in range(4):
            c.send(bad + "\r\n")
            r = c.read_reply()
            replies.append(r)
            if r.code == 421:
                break
    except (EOFError, ConnectionError):
        pass
    assert replies and replies[-1].code == 421, replies
    assert len(replies) <= 4
    assert all(400 <= r.code < 600 for r in replies)
    assert replies[-1].last.startswith("421 4.7.0 %s " % HOSTNAME), replies
    assert c.is_closed(3)


def message_of(size):
    line = b"s" * 98 + b"\r\n"
    body = line * (size // 100)
    return b"Subject: size\r\n\r\n" + body


SIZES = [
    ("data-20k-no-size-param", "", 20000, "552 5.3.4"),
    ("data-20k-size-param-lies", " SIZE=5000", 20000, "552 5.3.4"),
    ("data-9k-fits", "", 9000, "250"),
    ("data-9k-with-size", " SIZE=9100", 9000, "250"),
]


@pytest.mark.parametrize("param, size, expected", [s[1:] for s in SIZES], ids=[s[0] for s in SIZES])
def test_message_size_limit(start_daemon, backend, connect, param, size, expected):
    d = start_daemon(backend, message_size_limit="10k")
    c = session(connect, d)
    assert c.cmd("MAIL FROM:<a@example.org>" + param).code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(message_of(size) + b".\r\n")
    r = c.read_reply()
    assert r.last.startswith(expected), r
    if expected.startswith("552"):
        assert backend.messages() == []
        # the session survives a refused message
        replies = c.send_mail("a@example.org", ["b@example.org"], message_of(1000))
        assert replies[-1].code == 250
        assert len(backend.messages()) == 1
    else:
        assert [d for _, _, d in backend.messages()] == [message_of(size)]
