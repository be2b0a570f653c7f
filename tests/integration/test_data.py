"""DATA: SMTP smuggling (every bare CR/LF/NUL end-of-data variant), text line
length and the silence timeout.

The smuggling tests use a *lenient* recording backend that, like a vulnerable
MTA, also ends DATA at "\\n.\\n" and friends: anything mxtierd lets through
would show up there as a completed or a second message."""

import re
import time

import pytest

from harness import HOSTNAME

SMUGGLE_VARIANTS = [
    ("lf.lf", b"\n.\n"),
    ("lf.cr", b"\n.\r"),
    ("cr.lf", b"\r.\n"),
    ("cr.cr", b"\r.\r"),
    ("lf.crlf", b"\n.\r\n"),
    ("cr.crlf", b"\r.\r\n"),
    ("crlf-nul.crlf", b"\r\n\x00.\r\n"),
    ("crlf.cr-crlf", b"\r\n.\r\r\n"),
    ("cr-crlf.cr-crlf", b"\r\r\n.\r\r\n"),
    ("crlf.lf", b"\r\n.\n"),
    ("crlf.cr", b"\r\n.\r"),
]

SMUGGLED = (b"MAIL FROM:<smuggler@evil.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
            b"From: <ceo@example.org>\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")

BARE = re.compile(rb"(?<!\r)\n|\r(?!\n)|\x00")


@pytest.fixture
def lenient(start_backend):
    return start_backend("--lenient-eod")


@pytest.mark.parametrize("variant", [v for _, v in SMUGGLE_VARIANTS], ids=[i for i, _ in SMUGGLE_VARIANTS])
def test_smuggling_end_of_data_variants_are_refused(start_daemon, lenient, connect, variant):
    d = start_daemon(lenient)
    c = connect(d)
    c.greeting()
    c.ehlo()
    assert c.cmd("MAIL FROM:<alice@example.org>").code == 250
    assert c.cmd("RCPT TO:<bob@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"From: <alice@example.org>\r\nSubject: first\r\n\r\nfirst part" + variant + SMUGGLED)
    r = c.read_reply()
    assert r.code == 521, r
    # nothing more: no 250 for the smuggled message, the client is cut off
    assert c.is_closed(3), "still open; pending %r" % c.buf
    assert b"250" not in c.buf

    time.sleep(0.3)
    assert lenient.messages(complete=True) == [], "the backend completed a message"
    for conn in lenient.connections():
        mails = [cmd for cmd in conn["commands"] if cmd.upper().startswith("MAIL")]
        assert len(mails) <= 1, "a second MAIL reached the backend: %r" % mails
        assert "smuggler" not in "".join(conn["commands"])
        raw = lenient.raw_input(conn)
        assert not BARE.search(raw), "bare CR/LF/NUL reached the backend: %r" % raw
    log = d.session_for(c)
    assert "bare-lf" in log["reason_list"]
    assert r.last.startswith("521 5.5.2 %s " % HOSTNAME), r


@pytest.mark.parametrize("variant", [v for _, v in SMUGGLE_VARIANTS[:4]], ids=[i for i, _ in SMUGGLE_VARIANTS[:4]])
def test_bare_newline_in_a_later_packet(start_daemon, lenient, connect, variant):
    """The bad line ending arrives in its own packet after a good line."""
    d = start_daemon(lenient)
    c = connect(d)
    c.greeting()
    c.ehlo()
    replies = [c.cmd("MAIL FROM:<alice@example.org>"), c.cmd("RCPT TO:<bob@example.org>"), c.cmd("DATA")]
    assert [r.code for r in replies] == [250, 250, 354]
    c.send(b"Subject: split\r\n\r\nfirst part")
    time.sleep(0.2)
    c.send(variant)
    time.sleep(0.2)
    c.send(SMUGGLED)
    r = c.read_reply()
    assert r.code == 521, r
    assert c.is_closed(3)
    assert lenient.messages(complete=True) == []


LINE_LENGTHS = [
    # label, body, expected end-of-data reply
    ("1000-octets-with-crlf", b"a" * 998 + b"\r\n", "250"),
    ("1001-octets-with-crlf", b"a" * 999 + b"\r\n", "552 5.5.6"),
    ("5000-octet-line", b"a" * 4998 + b"\r\n", "552 5.5.6"),
    ("long-line-then-more", b"ok\r\n" + b"b" * 2000 + b"\r\nmore\r\n", "552 5.5.6"),
    ("long-line-of-dots", b"." * 1200 + b"\r\n", "552 5.5.6"),
]


@pytest.mark.parametrize("body, expected", [l[1:] for l in LINE_LENGTHS], ids=[l[0] for l in LINE_LENGTHS])
def test_text_line_length(mxtierd, backend, connect, body, expected):
    c = connect(mxtierd)
    c.greeting()
    c.ehlo()
    data = b"Subject: lines\r\n\r\n" + body
    replies = c.send_mail("a@example.org", ["b@example.org"], data)
    r = replies[-1]
    assert r.last.startswith(expected), replies
    if expected == "250":
        assert [m for _, _, m in backend.messages()] == [data]
        return
    time.sleep(0.2)
    assert backend.messages() == [], "the backend completed the refused message"
    # the client stays connected and can send the next message
    replies = c.send_mail("a@example.org", ["b@example.org"], b"Subject: next\r\n\r\nok\r\n")
    assert replies[-1].code == 250, replies
    assert [m for _, _, m in backend.messages()] == [b"Subject: next\r\n\r\nok\r\n"]


@pytest.mark.parametrize("sent", [b"", b"Subject: partial\r\n\r\nno end of li"],
                         ids=["silent-after-354", "silent-mid-line"])
def test_data_timeout(start_daemon, backend, connect, sent):
    d = start_daemon(backend, data_timeout="1s")
    c = connect(d)
    c.greeting()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    t0 = time.monotonic()
    if sent:
        c.send(sent)
    r = c.read_reply(timeout=5)
    elapsed = time.monotonic() - t0
    assert r.raw == ("421 4.4.2 %s Timeout, closing connection\r\n" % HOSTNAME).encode()
    assert 0.8 <= elapsed <= 2.5, elapsed
    assert c.is_closed(3)
    time.sleep(0.2)
    assert backend.messages() == []


def open_data(connect, d):
    c = connect(d)
    c.greeting()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    return c


def test_data_timeout_is_the_longest_silence_even_inside_a_line(start_daemon, backend, connect):
    """A byte every 0.4 s inside one line is never 1 s of silence: the message goes through."""
    d = start_daemon(backend, data_timeout="1s", min_data_rate="0")
    c = open_data(connect, d)
    c.send(b"Subject: drip\r\n\r\n")
    for _ in range(8):
        time.sleep(0.4)
        c.send(b"x")
    c.send(b"\r\n.\r\n")
    assert c.read_reply().code == 250
    assert [m for _, _, m in backend.messages()] == [b"Subject: drip\r\n\r\nxxxxxxxx\r\n"]


def test_min_data_rate_catches_a_drip_inside_one_long_line(start_daemon, backend, connect):
    d = start_daemon(backend, data_timeout="5s", min_data_rate="100", min_data_rate_grace="1s")
    c = open_data(connect, d)
    t0 = time.monotonic()
    r = None
    while time.monotonic() - t0 < 6:
        try:
            c.send(b"y")
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            c.sock.settimeout(0.25)
            r = c.read_reply(timeout=0.25)
            break
        except OSError:
            pass
    assert r is not None and r.raw == ("421 4.4.2 %s Data rate too low, closing connection\r\n" % HOSTNAME).encode(), r
    assert 0.9 <= time.monotonic() - t0 <= 3.0
    assert backend.messages() == []


SPLIT_BODY = b"Subject: split\r\n\r\nline one\r\n..stuffed\r\nlast"
SPLIT_DATA = SPLIT_BODY + b"\r\n.\r\n"


@pytest.mark.parametrize("cut", range(len(SPLIT_DATA) - 12, len(SPLIT_DATA)),
                         ids=lambda cut: "cut-before-%r" % SPLIT_DATA[cut:].decode())
def test_end_of_data_split_across_packets(mxtierd, backend, connect, cut):
    """CRLF.CRLF (and the line before it) cut into two TCP segments is still one end-of-data."""
    c = connect(mxtierd)
    c.greeting()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(SPLIT_DATA[:cut])
    time.sleep(0.15)
    c.send(SPLIT_DATA[cut:])
    r = c.read_reply()
    assert r.code == 250, r
    assert [m for _, _, m in backend.messages()] == [SPLIT_BODY + b"\r\n"]
    assert c.cmd("QUIT").code == 221
