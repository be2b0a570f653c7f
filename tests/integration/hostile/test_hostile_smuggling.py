"""End-of-data smuggling (issue 6, hostile-input suite).

Every bare-CR/LF/NUL end-of-data variant, each followed by a smuggled
MAIL FROM, RCPT TO, DATA or a whole second message.  The backend is the
*lenient* recording backend (it also ends DATA at "\\n.\\n" and friends,
like a vulnerable MTA), so whatever mxtierd let through would show up there
as a completed or a second message.  docs/engine.md: a bare LF, bare CR or
NUL in DATA gets `521 5.5.2 HOSTNAME Bare CR, LF or NUL in message data`,
the backend transaction is aborted without end-of-data, the client is
disconnected, reason `bare-lf`.

One mxtierd and one backend serve the whole table (backend_client_info =
xclient, so each backend connection names the client it belongs to); each
case plays its own client address.
"""

import os
import shutil
import tempfile
import time

import pytest

from harness import HOSTNAME, Daemon, RecordingBackend, SmtpClient, wait_until
from hostile_lib import alive, backend_conns_for, bare_bytes, malformed_log_lines

VARIANTS = [
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

PAYLOADS = [
    ("mail-from", b"MAIL FROM:<smuggler@evil.example>\r\n"),
    ("rcpt-to", b"RCPT TO:<victim@smuggled.example>\r\n"),
    ("data", b"DATA\r\nSubject: smuggled body\r\n\r\nsmuggled\r\n.\r\n"),
    ("second-message", b"MAIL FROM:<smuggler@evil.example>\r\nRCPT TO:<victim@smuggled.example>\r\nDATA\r\n"
                       b"From: <ceo@example.org>\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"),
]

MARKERS = (b"smuggler", b"victim", b"smuggled")
HEAD = b"From: <alice@example.org>\r\nSubject: first\r\n\r\nfirst part"
BARE_REPLY = "521 5.5.2 %s Bare CR, LF or NUL in message data" % HOSTNAME

# label, the message's first bytes, the variant and payload after them, what the client
# sends after those (None: nothing), expected reply, split (the variant's bytes one per
# TCP segment, 20 ms apart)
CASES = [("%s+%s" % (v, p), HEAD, vb + pb, None, BARE_REPLY, False) for v, vb in VARIANTS for p, pb in PAYLOADS]
CASES += [("%s+second-message-one-byte-per-segment" % v, HEAD, vb + PAYLOADS[3][1], None, BARE_REPLY, True)
          for v, vb in VARIANTS]
# right after the 354: the DATA line's own CRLF is the first half of the terminator
CASES += [("at-start:%s+second-message" % v, b"", vb + PAYLOADS[3][1], None, BARE_REPLY, False)
          for v, vb in [(".lf", b".\n"), (".cr", b".\r"), ("nul.crlf", b"\x00.\r\n"), (".cr-crlf", b".\r\r\n"),
                        ("lf.crlf", b"\n.\r\n")]]
# controls: the same words with proper line ends stay message data of one message
CASES += [
    ("control:stuffed-dot+mail-from", HEAD, b"\r\n..\r\n" + PAYLOADS[0][1], b".\r\n", "250", False),
    ("control:dot-space+second-message", HEAD,
     b"\r\n. \r\n" + PAYLOADS[3][1].replace(b"\r\n.\r\n", b"\r\n..\r\n"), b".\r\n", "250", False),
    ("control:stuffed-dot-one-byte-per-segment", HEAD, b"\r\n..\r\n" + PAYLOADS[0][1], b".\r\n", "250", True),
    ("control:at-start-stuffed-dot", b"", b"..\r\n" + PAYLOADS[0][1], b".\r\n", "250", False),
]


@pytest.fixture(scope="module")
def world():
    """world - a lenient recording backend and one mxtierd for the module."""
    workdir = tempfile.mkdtemp(prefix="mxtier-hostile-")
    backend = RecordingBackend(workdir, ["--lenient-eod"], name="lenient").start()
    # backend_pool_size = 0: each backend connection carries one client's session,
    # so its raw input can be examined per client once it is closed
    daemon = Daemon(workdir, backend.port, {"backend_client_info": "xclient", "max_sessions_per_client": 5,
                                            "backend_pool_size": 0})
    try:
        daemon.start()
    except Exception:
        backend.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    yield daemon, backend
    daemon.stop()
    backend.stop()
    shutil.rmtree(workdir, ignore_errors=True)


SOURCES = iter(range(1, 250))


@pytest.mark.parametrize("head, after, ending, expected, split", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_end_of_data_smuggling(world, head, after, ending, expected, split):
    d, backend = world
    source = "127.0.6.%d" % next(SOURCES)
    sent = head + after + (ending or b"")
    with SmtpClient(d.port, source=source) as c:
        assert c.greeting().code == 220
        assert c.ehlo().code == 250
        assert c.cmd("MAIL FROM:<alice@example.org>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        if split:
            # the variant (and a little beyond) one byte per segment, then the rest at once
            c.send(head)
            try:
                for i in range(12):
                    time.sleep(0.02)
                    c.send(after[i:i + 1])
                c.send(after[12:] + (ending or b""))
            except (BrokenPipeError, ConnectionResetError):
                pass                        # cut off at the bad byte: what a client would see
        else:
            c.send(sent)
        r = c.read_reply()
        if expected == "250":
            assert r.code == 250, r
            assert c.cmd("QUIT").code == 221
        else:
            assert r.last.startswith(expected), r
            # nothing more: no reply to anything smuggled, the client is cut off
            assert c.is_closed(3), "still open; pending %r" % c.buf
            assert b"250" not in c.buf and b"354" not in c.buf, c.buf
        log = d.session_for(c)
        conns = wait_until(lambda: backend_conns_for(backend, c), 3, what="backend connection")
        # the backend leg is over before it is examined
        wait_until(lambda: all(x["closed"] for x in backend_conns_for(backend, c)), 5,
                   what="backend connection closed")
        conns = backend_conns_for(backend, c)

    for conn in conns:
        raw = backend.raw_input(conn)
        assert bare_bytes(raw) == [], "bare CR/LF/NUL reached the backend at %s: %r" % (bare_bytes(raw), raw)
        mails = [x for x in conn["commands"] if x.upper().startswith("MAIL")]
        assert len(mails) <= 1, "a second MAIL reached the backend: %r" % mails
        assert not any(m in x.encode("latin-1") for x in conn["commands"] for m in MARKERS), conn["commands"]
    messages = [(m, open(os.path.join(backend.dir, m["file"]), "rb").read())
                for conn in conns for m in conn["messages"] if m["file"]]
    if expected == "250":
        # one message, byte for byte what the client sent (without the terminator)
        assert [(m["complete"], data) for m, data in messages] == [(True, sent[:-3])], messages
        assert log["verdict"] == "relay" and log["messages"] == "1", log
    else:
        assert [m for m, _ in messages if m["complete"]] == [], "the backend completed a message: %r" % messages
        for m, data in messages:
            # an aborted message: a clean prefix of the good lines, never the smuggled part
            assert sent.startswith(data), (data, sent)
            assert bare_bytes(data) == [] and not any(x in data for x in MARKERS), data
        assert "bare-lf" in log["reason_list"], log
        assert log["messages"] == "0", log
    assert alive(d)
    assert malformed_log_lines(d) == []
