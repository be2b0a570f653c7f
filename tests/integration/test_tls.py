"""STARTTLS on both legs, against real TLS peers: Python's ssl and smtplib,
swaks --tls and `openssl s_client -starttls smtp`.

Certificates are made at test time with the openssl CLI (RSA, ECDSA, a small
CA for the backend) in a temp dir.  What is checked is what an operator or a
client sees: the EHLO keywords, the replies, the bytes the backend gets, the
session log line and the PROXY v2 TLV.
"""

import os
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import types

import pytest

from harness import MXTIERD, PRIMARY, Daemon, sanitizer_env, wait_until

OPENSSL = "/usr/bin/openssl"
SWAKS = "/usr/bin/swaks"


def message(subject=b"tls", body=b"hello over TLS\r\n"):
    return (b"From: <a@example.org>\r\nTo: <b@example.org>\r\nSubject: " + subject
            + b"\r\n\r\n" + body)


# -- certificates ---------------------------------------------------------------

@pytest.fixture(scope="module")
def certs():
    """certs - RSA and ECDSA server certificates, a CA with a backend certificate, and bad files."""
    d = tempfile.mkdtemp(prefix="mxtier-tls-")
    p = lambda name: os.path.join(d, name)     # noqa: E731

    def openssl(*args):
        subprocess.run([OPENSSL] + list(args), check=True, capture_output=True, timeout=60)

    def self_signed(name, cn, *key):
        openssl("req", "-x509", "-newkey", *key, "-nodes", "-keyout", p(name + ".key"), "-out", p(name + ".pem"),
                "-days", "2", "-subj", "/CN=" + cn)

    ec = ("ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
    self_signed("rsa", "mx.mxtier.test", "rsa:2048")
    self_signed("rsa2", "other.mxtier.test", "rsa:2048")
    self_signed("ecdsa", "mx.mxtier.test", *ec)
    self_signed("ca", "mxtier test CA", *ec)
    self_signed("otherca", "some other CA", *ec)
    openssl("req", "-newkey", *ec, "-nodes", "-keyout", p("backend.key"), "-out", p("backend.csr"),
            "-subj", "/CN=backend.test")
    openssl("x509", "-req", "-in", p("backend.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
            "-CAcreateserial", "-out", p("backend.pem"), "-days", "2")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256",
            "-pass", "pass:secret", "-out", p("encrypted.key"))
    with open(p("garbage.pem"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    # Test keys only: the SMTP engine re-reads them at SIGHUP as the unprivileged user.
    os.chmod(d, 0o755)
    for name in os.listdir(d):
        os.chmod(p(name), 0o644)
    ns = types.SimpleNamespace(dir=d, path=p)
    for name in ("rsa", "rsa2", "ecdsa", "ca", "otherca", "backend"):
        with open(p(name + ".pem")) as f:
            setattr(ns, name + "_der", ssl.PEM_cert_to_DER_cert(f.read()))
    yield ns
    shutil.rmtree(d, ignore_errors=True)


def tls_keys(certs, kinds=("rsa", "ecdsa")):
    return {"tls_cert_file": ", ".join(certs.path(k + ".pem") for k in kinds),
            "tls_key_file": ", ".join(certs.path(k + ".key") for k in kinds),
            "tls_handshake_timeout": "3s"}


@pytest.fixture
def tls_daemon(start_daemon, backend, certs):
    return start_daemon(backend, **tls_keys(certs))


# -- clients --------------------------------------------------------------------

def client_context(minimum=None, maximum=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def quiet(sock, seconds):
    """quiet - True when nothing arrives on sock for this long (the data is left unread)."""
    r, _, _ = select.select([sock], [], [], seconds)
    return not r


def starttls(c, ctx=None):
    """starttls - STARTTLS on an SmtpClient, then the handshake; the client then speaks TLS."""
    r = c.cmd("STARTTLS")
    assert r.raw == b"220 2.0.0 Ready to start TLS\r\n", r
    assert c.buf == b"", "more than the 220 before TLS: %r" % c.buf
    c.sock = (ctx or client_context()).wrap_socket(c.sock)
    return c.sock


def tls_session(connect, daemon, ctx=None, helo="client.example.org"):
    """tls_session - greeting, EHLO, STARTTLS, handshake, EHLO again."""
    c = connect(daemon)
    assert c.greeting().code == 220
    assert "250-STARTTLS" in c.ehlo(helo).lines
    starttls(c, ctx)
    r = c.ehlo(helo)
    assert r.code == 250, r
    return c


def s_client(port, *args, stdin=b"", timeout=15):
    """s_client - openssl s_client -starttls smtp; stdin lines in lower case (s_client takes "Q..." as quit)."""
    cmd = [OPENSSL, "s_client", "-starttls", "smtp", "-connect", "%s:%d" % (PRIMARY, port),
           "-name", "client.example.org", "-crlf", "-ign_eof"] + list(args)
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)


def daemon_log_lines(daemon, session_id, pattern):
    return [l for l in daemon.stderr().splitlines() if ("session %s:" % session_id) in l and re.search(pattern, l)]


def tls_stats(daemon):
    """tls_stats - SIGUSR1, then the counters of the "stats tls" line as a dict."""
    before = daemon.stderr().count("stats tls ")
    daemon.signal(signal.SIGUSR1)
    wait_until(lambda: daemon.stderr().count("stats tls ") > before, 5, what="a \"stats tls\" line after SIGUSR1")
    line = [l for l in daemon.stderr().splitlines() if "stats tls " in l][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


# -- configuration ----------------------------------------------------------------

CONFIG_CASES = [
    # label, keys (callable of certs), expected problem (regex) or None for ok
    ("rsa-only", lambda c: tls_keys(c, ("rsa",)), None),
    ("ecdsa-only", lambda c: tls_keys(c, ("ecdsa",)), None),
    ("rsa-and-ecdsa", lambda c: tls_keys(c), None),
    ("missing-cert-file", lambda c: {"tls_cert_file": c.path("nope.pem"), "tls_key_file": c.path("rsa.key")},
     r"tls_cert_file: cannot read .*nope\.pem: No such file"),
    ("not-a-certificate", lambda c: {"tls_cert_file": c.path("garbage.pem"), "tls_key_file": c.path("rsa.key")},
     r"tls_cert_file: no certificate in .*garbage\.pem"),
    ("key-of-another-certificate", lambda c: {"tls_cert_file": c.path("rsa.pem"), "tls_key_file": c.path("rsa2.key")},
     r"tls_key_file: .*rsa2\.key is not the \(unencrypted\) key of .*rsa\.pem"),
    ("ecdsa-key-for-rsa-cert", lambda c: {"tls_cert_file": c.path("rsa.pem"), "tls_key_file": c.path("ecdsa.key")},
     r"tls_key_file: .*ecdsa\.key is not the"),
    ("encrypted-key", lambda c: {"tls_cert_file": c.path("ecdsa.pem"), "tls_key_file": c.path("encrypted.key")},
     r"tls_key_file: .*encrypted\.key is not the \(unencrypted\) key"),
    ("more-certs-than-keys", lambda c: {"tls_cert_file": c.path("rsa.pem") + "," + c.path("ecdsa.pem"),
                                        "tls_key_file": c.path("rsa.key")},
     r"tls_key_file: 2 certificate file\(s\) but 1 key file\(s\)"),
    ("key-without-cert", lambda c: {"tls_key_file": c.path("rsa.key")},
     r"tls_key_file: 0 certificate file\(s\) but 1 key file\(s\)"),
    ("ecdsa-cert-given-the-rsa-key", lambda c: {"tls_cert_file": c.path("rsa.pem") + "," + c.path("ecdsa.pem"),
                                                "tls_key_file": c.path("rsa.key") + "," + c.path("rsa.key")},
     r"tls_key_file: .*rsa\.key is not the \(unencrypted\) key of .*ecdsa\.pem"),
    ("two-rsa-certificates", lambda c: tls_keys(c, ("rsa", "rsa2")),
     r"tls_cert_file: .*rsa\.pem and .*rsa2\.pem both hold RSA keys"),
    ("handshake-timeout-too-long", lambda c: dict(tls_keys(c), tls_handshake_timeout="1h"),
     r"tls_handshake_timeout: \"1h\" out of range"),
    ("bad-backend-tls", lambda c: {"backend_tls": "always"}, r"backend_tls: \"always\" is not one of none, may, encrypt"),
    ("ca-file-without-backend-tls", lambda c: {"backend_tls_ca_file": c.path("ca.pem")},
     r"backend_tls_ca_file: needs backend_tls = may or encrypt"),
    ("ca-file-missing", lambda c: {"backend_tls": "encrypt", "backend_tls_ca_file": c.path("nope.pem")},
     r"backend_tls_ca_file: cannot read"),
    ("ca-file-not-a-certificate", lambda c: {"backend_tls": "encrypt", "backend_tls_ca_file": c.path("rsa.key")},
     r"backend_tls_ca_file: no CA certificate"),
]


@pytest.mark.parametrize("keys, problem", [(k, p) for _, k, p in CONFIG_CASES], ids=[l for l, _, _ in CONFIG_CASES])
def test_config_check_names_the_tls_key(workdir, certs, keys, problem):
    d = Daemon(workdir, 25, keys(certs), name="check")
    d.write_config()
    out = subprocess.run([MXTIERD, "-c", d.conf_path, "-t"], capture_output=True, timeout=20, env=sanitizer_env())
    text = (out.stdout + out.stderr).decode()
    if problem is None:
        assert out.returncode == 0, text
        assert "configuration ok" in text
        return
    assert out.returncode == 1, text
    # "FILE:LINE: key: problem", and the line is the key's own line in the file
    m = re.search(re.escape(d.conf_path) + r":(\d+): (\w+): ", text)
    assert m, text
    lines = open(d.conf_path).read().splitlines()
    assert lines[int(m.group(1)) - 1].startswith(m.group(2) + " "), (m.group(0), lines)
    assert re.search(problem, text), text


def test_effective_settings_list_the_tls_keys(workdir, certs):
    d = Daemon(workdir, 25, dict(tls_keys(certs), backend_tls="may"), name="print")
    d.write_config()
    out = subprocess.run([MXTIERD, "-c", d.conf_path, "-n"], capture_output=True, timeout=20, env=sanitizer_env())
    text = out.stdout.decode()
    assert out.returncode == 0, out.stderr
    assert "tls_cert_file = %s, %s\n" % (certs.path("rsa.pem"), certs.path("ecdsa.pem")) in text
    assert "tls_handshake_timeout = 3s\n" in text
    assert "backend_tls = may\n" in text
    assert "backend_tls_ca_file = \n" in text


# -- offered or not -----------------------------------------------------------------

def test_not_offered_without_a_certificate(mxtierd, connect):
    c = connect(mxtierd)
    c.greeting()
    assert "STARTTLS" not in c.ehlo().text
    assert c.cmd("STARTTLS").raw == b"502 5.5.1 Command not implemented\r\n"
    assert c.cmd("NOOP").code == 250
    assert c.cmd("QUIT").code == 221
    assert mxtierd.session_for(c)["tls"] == "no"


def test_offered_once_and_gone_after_the_handshake(tls_daemon, connect):
    c = connect(tls_daemon)
    c.greeting()
    before = c.ehlo()
    assert "250-STARTTLS" in before.lines, before
    starttls(c)
    after = c.ehlo()
    assert after.code == 250
    assert not any("STARTTLS" in l for l in after.lines), after
    assert "STARTTLS" not in c.cmd("HELP").text


@pytest.mark.parametrize("kind, client_ciphers, expect_der", [
    ("rsa", None, "rsa_der"),
    ("ecdsa", None, "ecdsa_der"),
    ("both", "ECDHE-RSA-AES128-GCM-SHA256", "rsa_der"),
    ("both", "ECDHE-ECDSA-AES128-GCM-SHA256", "ecdsa_der"),
], ids=["rsa-only", "ecdsa-only", "both-rsa-client", "both-ecdsa-client"])
def test_certificate_key_types(start_daemon, backend, connect, certs, kind, client_ciphers, expect_der):
    kinds = ("rsa", "ecdsa") if kind == "both" else (kind,)
    d = start_daemon(backend, **tls_keys(certs, kinds))
    ctx = client_context(maximum=ssl.TLSVersion.TLSv1_2 if client_ciphers else None, ciphers=client_ciphers)
    c = connect(d)
    c.greeting()
    c.ehlo()
    sock = starttls(c, ctx)
    assert sock.getpeercert(binary_form=True) == getattr(certs, expect_der)
    assert c.ehlo().code == 250
    if client_ciphers:
        assert sock.cipher()[0] == client_ciphers


# -- refusals and state -----------------------------------------------------------

REFUSALS = [
    ("argument", ["EHLO client.example.org"], "STARTTLS now", b"501 5.5.4 Syntax: STARTTLS\r\n"),
    ("before-ehlo", [], "STARTTLS", b"503 5.5.1 Error: send EHLO first\r\n"),
    ("inside-a-transaction", ["EHLO client.example.org", "MAIL FROM:<a@example.org>"], "STARTTLS",
     b"503 5.5.1 Error: MAIL transaction in progress\r\n"),
]


@pytest.mark.parametrize("before, command, reply", [(b, c, r) for _, b, c, r in REFUSALS],
                         ids=[l for l, _, _, _ in REFUSALS])
def test_starttls_refused(tls_daemon, connect, before, command, reply):
    c = connect(tls_daemon)
    c.greeting()
    for line in before:
        assert c.cmd(line).code == 250
    assert c.cmd(command).raw == reply
    # still plaintext, still usable
    assert c.cmd("NOOP").raw == b"250 2.0.0 Ok\r\n"


AFTER_TLS = [
    ("mail-before-ehlo", [("MAIL FROM:<a@example.org>", b"503 5.5.1 Error: send HELO/EHLO first\r\n")]),
    ("rcpt-before-ehlo", [("RCPT TO:<b@example.org>", b"503 5.5.1 Error: need MAIL command\r\n")]),
    ("second-starttls", [("EHLO client.example.org", None),
                         ("STARTTLS", b"503 5.5.1 Error: TLS already active\r\n"),
                         ("NOOP", b"250 2.0.0 Ok\r\n")]),
    ("second-starttls-before-ehlo", [("STARTTLS", b"503 5.5.1 Error: TLS already active\r\n")]),
    ("helo-then-mail", [("HELO client.example.org", b"250 mx.mxtier.test\r\n"),
                        ("MAIL FROM:<a@example.org>", b"250 2.1.0 Ok\r\n")]),
]


@pytest.mark.parametrize("steps", [s for _, s in AFTER_TLS], ids=[l for l, _ in AFTER_TLS])
def test_state_is_reset_by_the_handshake(tls_daemon, connect, steps):
    c = connect(tls_daemon)
    c.greeting()
    c.ehlo()
    starttls(c)
    for line, expected in steps:
        r = c.cmd(line)
        if expected is None:
            assert r.code == 250, (line, r)
        else:
            assert r.raw == expected, (line, r)


# -- message relayed over TLS -----------------------------------------------------

def test_smtplib_message_relayed_byte_exact(tls_daemon, backend):
    data = message(body=b"line one\r\n..dot-stuffed\r\n" + bytes(range(0x80, 0x100)) + b"\r\n")
    with smtplib.SMTP(PRIMARY, tls_daemon.port, local_hostname="client.example.org",
                      source_address=("127.0.0.2", 0), timeout=10) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        assert s.starttls(context=client_context())[0] == 220
        s.ehlo()
        assert not s.has_extn("starttls")
        local = "%s:%d" % s.sock.getsockname()[:2]
        refused = s.sendmail("a@example.org", ["b@example.org"], data)
        assert refused == {}
        s.quit()
    [(conn, entry, got)] = backend.messages()
    # smtplib dot-stuffs the lines that start with "."; the backend records the stuffed bytes
    assert got == data.replace(b"\r\n.", b"\r\n..")
    log = tls_daemon.session_for(local)
    assert log["tls"] == "TLSv1.3/TLS_AES_256_GCM_SHA384"
    assert log["helo"] == "client.example.org"
    assert log["messages"] == "1"
    assert log["backend_tls"] == "no"


def test_swaks_tls(tls_daemon, backend):
    out = subprocess.run([SWAKS, "--server", "%s:%d" % (PRIMARY, tls_daemon.port), "--tls",
                          "--helo", "swaks.example.org", "--from", "a@example.org", "--to", "b@example.org",
                          "--header", "Subject: swaks over TLS", "--body", "sent by swaks"],
                         capture_output=True, timeout=30)
    text = out.stdout.decode(errors="replace")
    assert out.returncode == 0, text + out.stderr.decode(errors="replace")
    assert "STARTTLS" in text and "TLS started" in text
    [(conn, entry, got)] = backend.messages()
    assert b"Subject: swaks over TLS\r\n" in got and b"sent by swaks" in got
    log = [s for s in tls_daemon.sessions() if s.get("helo") == "swaks.example.org"]
    assert len(log) == 1 and log[0]["tls"].startswith("TLSv1.3/"), log


def test_quit_inside_tls_sends_close_notify(tls_daemon, connect):
    c = connect(tls_daemon)
    c.greeting()
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    # without ragged-EOF suppression, a TCP close with no close_notify raises SSLEOFError on recv
    c.sock = client_context().wrap_socket(c.sock, suppress_ragged_eofs=False)
    assert c.ehlo().code == 250
    assert c.cmd("QUIT").code == 221
    c.sock.settimeout(5)
    assert c.sock.recv(10) == b""


# -- injection (CVE-2011-0411 class) -----------------------------------------------

INJECTIONS = [
    ("mail", b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n"),
    ("whole-envelope", b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.org>\r\nRCPT TO:<victim@example.org>\r\n"),
    ("quit", b"STARTTLS\r\nQUIT\r\n"),
    ("ehlo", b"STARTTLS\r\nEHLO injected.example\r\n"),
    ("partial-line", b"STARTTLS\r\nMAIL FROM:<injected@exa"),
    ("bare-lf", b"STARTTLS\nMAIL FROM:<injected@example.org>\n"),
    ("lower-case", b"starttls\r\nmail from:<injected@example.org>\r\n"),
    ("second-starttls", b"STARTTLS\r\nSTARTTLS\r\n"),
    ("rset-and-noop", b"STARTTLS\r\nRSET\r\nNOOP\r\n"),
]


@pytest.mark.parametrize("payload", [p for _, p in INJECTIONS], ids=[l for l, _ in INJECTIONS])
def test_plaintext_pipelined_after_starttls_is_never_executed(tls_daemon, backend, connect, payload):
    c = connect(tls_daemon)
    c.greeting()
    assert c.ehlo().code == 250
    c.send(payload)             # one write: STARTTLS and the injection arrive together
    assert c.read_reply().raw == b"220 2.0.0 Ready to start TLS\r\n"
    assert c.buf == b"" and quiet(c.sock, 0.3), "a plaintext reply after the 220: %r" % c.buf
    c.sock = client_context().wrap_socket(c.sock)
    # the first reply inside TLS is to our own command: the injection left no reply behind
    assert c.cmd("NOOP").raw == b"250 2.0.0 Ok\r\n"
    assert c.cmd("MAIL FROM:<real@example.org>").raw == b"503 5.5.1 Error: send HELO/EHLO first\r\n"
    assert c.ehlo().code == 250
    replies = c.send_mail("real@example.org", ["b@example.org"], message())
    assert [r.code for r in replies] == [250, 250, 354, 250], replies
    assert c.cmd("QUIT").code == 221
    # the backend saw exactly one envelope: ours
    mails = [cmd for conn in backend.connections() for cmd in conn["commands"] if cmd.upper().startswith("MAIL")]
    assert mails == ["MAIL FROM:<real@example.org> SIZE=%d\r\n" % len(message())] or \
        mails == ["MAIL FROM:<real@example.org>\r\n"], mails
    log = tls_daemon.session_for(c)
    assert log["from"] == "<real@example.org>" and log["helo"] == "client.example.org"
    discarded = len(payload) - payload.index(b"\n", payload.upper().index(b"STARTTLS")) - 1
    assert daemon_log_lines(tls_daemon, log["id"], r"%d bytes pipelined after STARTTLS discarded" % discarded)


def test_220_leaves_after_a_backlog_of_plaintext_replies(tls_daemon, backend):
    """A client that pipelined many commands and reads slowly: every plaintext reply, then the 220, then TLS."""
    n = 20000                   # ~300 KB of replies: far more than the client's tiny receive window
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.2", 0))
    sock.settimeout(20)
    sock.connect((PRIMARY, tls_daemon.port))
    try:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220 ")
        sock.sendall(b"EHLO client.example.org\r\n")
        while f.readline()[3:4] == b"-":
            pass
        sender = threading.Thread(target=sock.sendall, args=(b"NOOP\r\n" * n + b"STARTTLS\r\n",))
        sender.start()
        for i in range(n):
            line = f.readline()
            assert line == b"250 2.0.0 Ok\r\n", (i, line)
            if i % 2000 == 0:
                time.sleep(0.05)     # a slow reader: the daemon's writes fall short and libevent takes over
        assert f.readline() == b"220 2.0.0 Ready to start TLS\r\n"
        sender.join(10)
        assert quiet(sock, 0.2), "plaintext after the 220"
        tls = client_context().wrap_socket(sock)
        tls.sendall(b"EHLO client.example.org\r\n")
        reply = b""
        while not re.search(rb"(^|\n)250 [^\n]*\n", reply):
            reply += tls.recv(4096)
        assert b"STARTTLS" not in reply
        tls.sendall(b"QUIT\r\n")
        assert tls.recv(4096).startswith(b"221 ")
    finally:
        sock.close()


def test_plaintext_after_the_220_breaks_the_handshake(tls_daemon, backend, connect):
    c = connect(tls_daemon)
    c.greeting()
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    c.send(b"MAIL FROM:<injected@example.org>\r\nRCPT TO:<victim@example.org>\r\n")
    assert c.is_closed(3), "still open after plaintext where a TLS handshake belongs"
    assert not re.search(rb"^250", c.buf, re.M), c.buf
    log = tls_daemon.session_for(c)
    assert log["tls"] == "failed" and log["from"] == "<>"
    assert daemon_log_lines(tls_daemon, log["id"], "TLS handshake failed")
    assert backend.mail_connections() == []


# -- handshake failures ---------------------------------------------------------------

TIMEOUTS = [
    ("silent-after-220", b""),
    ("half-a-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
]


@pytest.mark.parametrize("partial", [p for _, p in TIMEOUTS], ids=[l for l, _ in TIMEOUTS])
def test_handshake_timeout_closes_the_session(start_daemon, backend, connect, certs, partial):
    d = start_daemon(backend, **dict(tls_keys(certs), tls_handshake_timeout="1s"))
    c = connect(d)
    c.greeting()
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    started = time.monotonic()
    if partial:
        c.send(partial)
    assert c.is_closed(4), "not closed after tls_handshake_timeout"
    took = time.monotonic() - started
    assert 0.8 <= took <= 3.0, took
    assert c.buf == b"", "plaintext sent into the handshake: %r" % c.buf
    log = d.session_for(c)
    assert log["tls"] == "timeout"
    assert "timeout" in log["reason_list"]
    assert daemon_log_lines(d, log["id"], "TLS handshake timed out")


PROTOCOLS = [
    # label, s_client options, handshake succeeds
    ("tls1.0-refused", ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], False),
    ("tls1.1-refused", ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], False),
    ("tls1.2", ["-tls1_2"], True),
    ("tls1.3", ["-tls1_3"], True),
    ("anonymous-dh-refused", ["-tls1_2", "-cipher", "aNULL@SECLEVEL=0"], False),
    ("null-encryption-refused", ["-tls1_2", "-cipher", "eNULL@SECLEVEL=0"], False),
    ("sha1-cbc-still-served", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"], True),
]


@pytest.mark.parametrize("options, ok", [(o, k) for _, o, k in PROTOCOLS], ids=[l for l, _, _ in PROTOCOLS])
def test_protocol_versions_and_ciphers(tls_daemon, options, ok):
    out = s_client(tls_daemon.port, *options, stdin=b"quit\n")
    text = (out.stdout + out.stderr).decode(errors="replace")
    if ok:
        assert out.returncode == 0, text
        assert re.search(r"Protocol\s*: TLSv1\.[23]\n", text), text
        assert "221 2.0.0" in text
    else:
        assert out.returncode != 0, text
        assert "Cipher is (NONE)" in text, text
    # a refused client costs one failed session, never the daemon
    mine = lambda: [s for s in tls_daemon.sessions() if s["tls"] != "no"]  # noqa: E731 (not the start probes)
    wait_until(lambda: len(mine()) == 1, 5, what="the session line")
    [log] = mine()
    assert (log["tls"] not in ("no", "failed")) == ok, log


def test_renegotiation_is_refused(tls_daemon):
    proc = subprocess.Popen([OPENSSL, "s_client", "-starttls", "smtp", "-tls1_2", "-crlf",
                             "-connect", "%s:%d" % (PRIMARY, tls_daemon.port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)
        proc.stdin.write(b"NOOP\n")
        proc.stdin.flush()
        time.sleep(0.5)
        proc.stdin.write(b"R\n")        # s_client: renegotiate
        proc.stdin.flush()
        time.sleep(1.0)
        try:
            proc.stdin.write(b"NOOP\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode(errors="replace")
    assert "RENEGOTIATING" in text, text
    assert "no renegotiation" in text, text
    # one handshake only: the NOOP before R was answered, the one after it never was
    assert text.count("250 2.0.0 Ok") == 1, text
    assert text.count("Verify return code") <= 1, text
    # the daemon goes on serving
    out = s_client(tls_daemon.port, "-tls1_2", stdin=b"quit\n")
    assert out.returncode == 0 and b"221 2.0.0" in out.stdout, out.stdout


CLOSES = [
    ("close-notify", True),
    ("no-close-notify", False),
]


@pytest.mark.parametrize("clean", [c for _, c in CLOSES], ids=[l for l, _ in CLOSES])
def test_client_close_is_a_normal_eof(tls_daemon, connect, clean):
    c = tls_session(connect, tls_daemon)
    assert c.cmd("NOOP").code == 250
    started = time.monotonic()
    if clean:
        c.sock.unwrap().close()     # SSL_shutdown: close_notify first
    else:
        c.sock.close()              # Python's close sends no close_notify: a plain TCP FIN
    log = tls_daemon.session_for(c)
    assert time.monotonic() - started < 2.0, "session not ended at EOF"
    assert log["tls"].startswith("TLSv1.3/"), log
    assert log["reason_list"] == [], log
    assert not daemon_log_lines(tls_daemon, log["id"], "TLS error|handshake failed"), tls_daemon.stderr()


def test_tls_counters_in_stats(tls_daemon, connect):
    """The counters an operator reads on SIGUSR1 (stats.c prints tls_counters_log)."""
    c = tls_session(connect, tls_daemon)
    c.close()
    tls_daemon.session_for(c)
    c = connect(tls_daemon)
    c.greeting()
    c.ehlo()
    c.send(b"STARTTLS\r\nMAIL FROM:<x@example.org>\r\n")
    assert c.read_reply().code == 220
    c.send(b"not a client hello\r\n")
    assert c.is_closed(3)
    tls_daemon.session_for(c)
    st = tls_stats(tls_daemon)
    assert st["handshakes"] == 1 and st["handshake_failures"] == 1 and st["errors"] == 0, st
    assert st["discarded_sessions"] == 1 and st["discarded_bytes"] == len(b"MAIL FROM:<x@example.org>\r\n"), st


# -- reload -----------------------------------------------------------------------------

def test_reload_swaps_the_certificate_and_keeps_it_on_a_bad_file(start_daemon, backend, connect, certs):
    d = start_daemon(backend, **tls_keys(certs, ("rsa",)))

    def served_cert():
        c = connect(d)
        c.greeting()
        c.ehlo()
        der = starttls(c).getpeercert(binary_form=True)
        assert c.ehlo().code == 250
        c.close()
        return der

    assert served_cert() == certs.rsa_der
    d.reload({"tls_cert_file": certs.path("missing.pem")})
    wait_until(lambda: "reload refused" in d.stderr(), 5, what="reload refused")
    assert re.search(r"reload refused: .*:\d+: tls_cert_file: cannot read .*missing\.pem", d.stderr())
    assert served_cert() == certs.rsa_der
    d.reload(tls_keys(certs, ("rsa2",)))
    wait_until(lambda: "reloaded " in d.stderr(), 5, what="reloaded")
    assert served_cert() == certs.rsa2_der


# -- what the backend learns ------------------------------------------------------------

def decode_tlvs(data):
    out = {}
    while data:
        t, n = data[0], struct.unpack("!H", data[1:3])[0]
        assert len(data) >= 3 + n, data
        assert t not in out, "TLV 0x%02x twice" % t
        out[t] = data[3:3 + n]
        data = data[3 + n:]
    return out


@pytest.mark.parametrize("use_tls, ciphers", [
    (False, None), (True, None), (True, "ECDHE-RSA-AES128-GCM-SHA256"),
], ids=["plaintext-no-tlv", "tls1.3", "tls1.2"])
def test_proxy_v2_carries_the_tls_tlv(start_backend, start_daemon, connect, certs, use_tls, ciphers):
    b = start_backend("--proxy-protocol")
    d = start_daemon(b, backend_client_info="proxy_v2", **tls_keys(certs))
    c = connect(d)
    c.greeting()
    c.ehlo()
    if use_tls:
        starttls(c, client_context(maximum=ssl.TLSVersion.TLSv1_2 if ciphers else None, ciphers=ciphers))
        c.ehlo()
    replies = c.send_mail("a@example.org", ["b@example.org"], message())
    assert [r.code for r in replies] == [250, 250, 354, 250], replies
    assert c.cmd("QUIT").code == 221
    [conn] = b.mail_connections()
    tlvs = conn["proxy"]["tlvs"]
    if not use_tls:
        assert tlvs == []
        return
    [tlv] = tlvs
    assert tlv["type"] == 0x20                  # PP2_TYPE_SSL
    value = bytes.fromhex(tlv["value_hex"])
    assert value[0] == 0x01                     # PP2_CLIENT_SSL
    assert struct.unpack("!I", value[1:5])[0] != 0   # no verified client certificate
    sub = decode_tlvs(value[5:])
    version, cipher = d.session_for(c)["tls"].split("/")
    assert sub[0x21].decode() == version == ("TLSv1.2" if ciphers else "TLSv1.3")
    assert sub[0x23].decode() == cipher
    if ciphers:
        assert cipher == ciphers


BACKEND_CASES = [
    # label, backend args (callable of certs), daemon keys (callable), client codes, backend TLS expected
    ("may-offered", lambda c: ["--starttls", c.path("backend.pem") + "," + c.path("backend.key")],
     lambda c: {"backend_tls": "may"}, "relayed", True),
    ("may-not-offered", lambda c: [], lambda c: {"backend_tls": "may"}, "relayed", False),
    ("may-refused-454", lambda c: ["--starttls", c.path("backend.pem") + "," + c.path("backend.key"),
                                   "--reply", "STARTTLS:454 4.7.0 TLS not available now"],
     lambda c: {"backend_tls": "may"}, "relayed", False),
    ("encrypt-offered", lambda c: ["--starttls", c.path("backend.pem") + "," + c.path("backend.key")],
     lambda c: {"backend_tls": "encrypt"}, "relayed", True),
    ("encrypt-verified-ca", lambda c: ["--starttls", c.path("backend.pem") + "," + c.path("backend.key")],
     lambda c: {"backend_tls": "encrypt", "backend_tls_ca_file": c.path("ca.pem")}, "relayed", True),
    ("encrypt-not-offered", lambda c: [], lambda c: {"backend_tls": "encrypt"}, "refused", False),
    ("encrypt-refused-454", lambda c: ["--starttls", c.path("backend.pem") + "," + c.path("backend.key"),
                                       "--reply", "STARTTLS:454 4.7.0 TLS not available now"],
     lambda c: {"backend_tls": "encrypt"}, "refused", False),
    ("encrypt-wrong-ca", lambda c: ["--starttls", c.path("backend.pem") + "," + c.path("backend.key")],
     lambda c: {"backend_tls": "encrypt", "backend_tls_ca_file": c.path("otherca.pem")}, "refused", False),
    ("encrypt-backend-drops-at-starttls", lambda c: ["--starttls", c.path("backend.pem") + "," + c.path("backend.key"),
                                                     "--disconnect", "STARTTLS"],
     lambda c: {"backend_tls": "encrypt"}, "refused", False),
]


@pytest.mark.parametrize("backend_args, keys, outcome, backend_tls",
                         [(a, k, o, t) for _, a, k, o, t in BACKEND_CASES], ids=[l for l, *_ in BACKEND_CASES])
def test_backend_tls(start_backend, start_daemon, connect, certs, backend_args, keys, outcome, backend_tls):
    b = start_backend(*backend_args(certs))
    d = start_daemon(b, **keys(certs))
    c = connect(d)
    c.greeting()
    c.ehlo()
    replies = c.send_mail("a@example.org", ["b@example.org"], message())
    if outcome == "relayed":
        assert [r.code for r in replies] == [250, 250, 354, 250], replies
        [(conn, entry, data)] = b.messages()
        assert data == message()
        cmds = [x.split(" ")[0].rstrip("\r\n").upper() for x in conn["commands"]]
        if backend_tls:
            assert cmds[:3] == ["EHLO", "STARTTLS", "EHLO"], cmds
            assert conn["tls"]["version"] == "TLSv1.3"
        else:
            assert conn["tls"] is None
        assert c.cmd("QUIT").code == 221
        log = d.session_for(c)
        assert (log["backend_tls"] == "TLSv1.3/" + conn["tls"]["cipher"]) if backend_tls else \
            (log["backend_tls"] == "no"), log
        return
    # encrypt could not be honoured: a 4xx to MAIL, and nothing went to the backend
    assert replies[0].raw == b"451 4.4.1 Backend not available, try again later\r\n", replies
    assert [r.code for r in replies[1:]] == [503, 503], replies
    assert b.mail_connections() == []
    assert b.messages(complete=None) == []
    assert c.cmd("QUIT").code == 221
    log = d.session_for(c)
    assert log["backend_tls"] == "failed" and log["messages"] == "0", log
    assert re.search(r"session %s: backend (does not offer STARTTLS|refused STARTTLS|TLS handshake failed|closed)"
                     % log["id"], d.stderr()), d.stderr()


def test_backend_tls_comes_before_xclient(start_backend, start_daemon, connect, certs):
    b = start_backend("--starttls", certs.path("backend.pem") + "," + certs.path("backend.key"))
    d = start_daemon(b, backend_tls="encrypt", backend_client_info="xclient", **tls_keys(certs))
    c = tls_session(connect, d, helo="tls-client.example.org")
    replies = c.send_mail("a@example.org", ["b@example.org"], message())
    assert [r.code for r in replies] == [250, 250, 354, 250], replies
    [conn] = b.mail_connections()
    cmds = conn["commands"]
    verbs = [x.split(" ")[0].rstrip("\r\n") for x in cmds]
    # TLS first, then XCLIENT (the client's identity never in plaintext), then EHLO as the client
    assert verbs[:6] == ["EHLO", "STARTTLS", "EHLO", "XCLIENT", "EHLO", "MAIL"], cmds
    assert cmds[4] == "EHLO tls-client.example.org\r\n"
    assert conn["xclient_attrs"][0]["HELO"] == ["tls-client.example.org"]
    assert c.cmd("QUIT").code == 221
    log = d.session_for(c)
    assert log["tls"].startswith("TLSv1.3/") and log["backend_tls"].startswith("TLSv1.3/")


# -- bounded memory and rate --------------------------------------------------------------

def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def test_messages_relay_at_a_sane_rate_over_tls(start_backend, start_daemon, connect, certs):
    b = start_backend("--starttls", certs.path("backend.pem") + "," + certs.path("backend.key"))
    d = start_daemon(b, backend_tls="encrypt", backend_data_timeout="20s", **tls_keys(certs))
    c = tls_session(connect, d)
    # Like an MTA: without it the client's own Nagle + delayed ACK adds 40 ms per message (measured)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    small = message(body=(b"x" * 78 + b"\r\n") * 256)          # ~20 KB
    times = []
    for _ in range(10):
        t = time.monotonic()
        replies = c.send_mail("a@example.org", ["b@example.org"], small)
        times.append(time.monotonic() - t)
        assert [r.code for r in replies] == [250, 250, 354, 250], replies
    rss_before = rss_kib(d.proc.pid)
    # ~4 MB, far above every watermark (the recording backend's end-of-data search is what limits the size)
    big = message(body=(b"y" * 998 + b"\r\n") * 4000)
    t = time.monotonic()
    replies = c.send_mail("a@example.org", ["b@example.org"], big)
    big_secs = time.monotonic() - t
    assert [r.code for r in replies] == [250, 250, 354, 250], replies
    rss_after = rss_kib(d.proc.pid)
    got = [data for _, _, data in b.messages()]
    assert got == [small] * 10 + [big]
    print("20 KB over TLS both legs: median %.1f ms, max %.1f ms; 4 MB: %.2f s (%.1f MB/s); RSS %d -> %d KiB"
          % (sorted(times)[5] * 1000, max(times) * 1000, big_secs, len(big) / big_secs / 1e6, rss_before, rss_after))
    assert sorted(times)[5] < 0.2 and max(times) < 1.0, times
    assert len(big) / big_secs > 2e6, big_secs
    # the message streamed: the daemon did not grow by anything like its size
    assert rss_after - rss_before < 6 * 1024, (rss_before, rss_after)


def test_pooled_backend_tls_connection_serves_the_next_session(start_backend, start_daemon, connect, certs):
    # a reused TLS backend leg: one handshake, the second session still logs the leg's TLS
    b = start_backend("--starttls", certs.path("backend.pem") + "," + certs.path("backend.key"))
    d = start_daemon(b, backend_tls="encrypt", backend_client_info="xclient", allow_networks="127.0.0.0/8")
    logs = []
    for source in ("127.0.0.71", "127.0.0.72"):
        c = connect(d, source=source)
        c.greeting()
        c.ehlo()
        replies = c.send_mail("a@example.org", ["b@example.org"], message())
        assert [r.code for r in replies] == [250, 250, 354, 250], replies
        assert c.cmd("QUIT").code == 221
        logs.append(d.session_for(c))
        c.close()
    [conn] = b.mail_connections()
    assert len(conn["messages"]) == 2 and conn["tls"]["version"] == "TLSv1.3"
    assert [a["ADDR"] for a in conn["xclient_attrs"]] == [["127.0.0.71"], ["127.0.0.72"]]
    assert [l["backend_tls"] for l in logs] == ["TLSv1.3/" + conn["tls"]["cipher"]] * 2, logs
