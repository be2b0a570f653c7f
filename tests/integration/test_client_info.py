"""backend_client_info: the backend learns the real client (XCLIENT or a PROXY
header), and a hostile HELO cannot inject anything into XCLIENT."""

import pytest

from harness import HOSTNAME, PRIMARY, SECONDARY

HOSTILE_HELOS = [
    ("plain", "client.example.org"),
    ("brackets-equals", "[x]=y"),
    ("plus-and-equals", "a+b=c"),
    ("fake-attribute", "x+ADDR=192.0.2.1"),
    ("encoded-crlf-lookalike", "x+0D+0AMAIL"),
]


def one_transaction(c, helo):
    c.greeting()
    assert c.ehlo(helo).code == 250
    replies = c.send_mail("a@example.org", ["b@example.org"], b"Subject: info\r\n\r\nhi\r\n")
    assert [r.code for r in replies] == [250, 250, 354, 250], replies


@pytest.mark.parametrize("helo", [h for _, h in HOSTILE_HELOS], ids=[i for i, _ in HOSTILE_HELOS])
def test_xclient_carries_the_real_client_and_an_encoded_helo(start_daemon, backend, connect, helo):
    # allow-listed: relayed whatever its HELO looks like, so the HELO reaches XCLIENT
    d = start_daemon(backend, backend_client_info="xclient", allow_networks="127.0.0.70/32")
    c = connect(d, source="127.0.0.70")
    one_transaction(c, helo)
    [conn] = backend.mail_connections()
    assert len(conn["xclient"]) == 1, conn["xclient"]
    line = conn["xclient"][0]
    assert line.endswith("\r\n") and "\r" not in line[:-2] and "\n" not in line[:-2]
    words = line[:-2].split(" ")
    assert words[0] == "XCLIENT"
    # xtext: only printable ASCII without "=" and "+" except as encodings
    for w in words[1:]:
        key, _, value = w.partition("=")
        assert all(33 <= ord(ch) <= 126 and ch != "=" for ch in value), w
    attrs = conn["xclient_attrs"][0]
    assert attrs["ADDR"] == ["127.0.0.70"]
    assert attrs["PORT"] == [str(c.local_port)]
    assert attrs["HELO"] == [helo]
    assert attrs["PROTO"] == ["ESMTP"]
    assert all(len(v) == 1 for v in attrs.values()), attrs
    # order: EHLO, XCLIENT, EHLO again (new session after 220) with the client's own HELO
    # name (docs/engine.md: the backend records the client's HELO, as with nginx's mail
    # proxy; the name is one validated token, so it adds no command), then the client's MAIL
    cmds = conn["commands"]
    i = cmds.index(line)
    assert cmds[0] == "EHLO %s\r\n" % HOSTNAME, cmds
    assert cmds[i + 1] == "EHLO %s\r\n" % helo, cmds
    assert cmds[i + 1].count("\r\n") == 1 and " " not in cmds[i + 1][5:-2], cmds
    assert cmds[i + 2].startswith("MAIL FROM:<a@example.org>"), cmds


@pytest.mark.parametrize("mode, host", [
    ("proxy_v1", PRIMARY), ("proxy_v1", SECONDARY), ("proxy_v2", PRIMARY), ("proxy_v2", SECONDARY),
], ids=["v1-primary", "v1-secondary", "v2-primary", "v2-secondary"])
def test_proxy_header_carries_the_real_client(start_backend, start_daemon, connect, mode, host):
    backend = start_backend("--proxy-protocol")
    d = start_daemon(backend, backend_client_info=mode)
    c = connect(d, host=host, source="127.0.0.71")
    one_transaction(c, "client.example.org")
    [conn] = backend.mail_connections()
    p = conn["proxy"]
    assert p is not None and p.get("version") == (1 if mode == "proxy_v1" else 2), p
    if mode == "proxy_v1":
        assert p["raw"] == "PROXY TCP4 127.0.0.71 %s %d %d\r\n" % (host, c.local_port, d.port)
    else:
        assert (p["version_nibble"], p["command"], p["family"]) == (2, "PROXY", "TCP4")
        assert (p["src"], p["sport"]) == ("127.0.0.71", c.local_port)
        assert (p["dst"], p["dport"]) == (host, d.port)
    # the header is the very first thing on the connection, then plain SMTP
    raw = backend.raw_input(conn)
    assert raw.startswith(b"PROXY " if mode == "proxy_v1" else b"\r\n\r\n\x00\r\nQUIT\n")
    assert conn["commands"][0] == "EHLO %s\r\n" % HOSTNAME
    assert conn["xclient"] == []


def test_none_sends_no_client_info(start_daemon, backend, connect):
    d = start_daemon(backend, backend_client_info="none")
    c = connect(d)
    one_transaction(c, "client.example.org")
    [conn] = backend.mail_connections()
    assert conn["xclient"] == [] and conn["proxy"] is None
    assert backend.raw_input(conn).startswith(("EHLO %s\r\n" % HOSTNAME).encode())


def test_xclient_is_not_sent_to_a_backend_that_does_not_offer_it(start_backend, start_daemon, connect):
    """The contract does not say whether such mail is relayed without client
    info or refused; either way no XCLIENT goes out and no 250 is invented."""
    backend = start_backend("--no-xclient")
    d = start_daemon(backend, backend_client_info="xclient")
    c = connect(d)
    c.greeting()
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@example.org>")
    assert r.code == 250 or r.last == "451 4.4.1 Backend not available, try again later", r
    for conn in backend.connections():
        assert not any(cmd.upper().startswith("XCLIENT") for cmd in conn["commands"]), conn["commands"]
    if r.code == 250:
        assert c.cmd("RCPT TO:<b@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert c.read_reply().code == 250
        assert len(backend.messages()) == 1
