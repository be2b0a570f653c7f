"""Backend connection reuse (backend_pool_size): a finished backend connection
serves the next relayed session after RSET (and XCLIENT with the new client),
never one that misbehaved, and never in the PROXY protocol modes."""

import re

import pytest

from harness import HOSTNAME

BODY = b"Subject: pool\r\n\r\nhello\r\n"


def one_session(connect, d, source, helo="client.example.org", rcpt="b@example.org"):
    c = connect(d, source=source)
    assert c.greeting().code == 220
    assert c.ehlo(helo).code == 250
    replies = c.send_mail("a@example.org", [rcpt], BODY)
    assert [r.code for r in replies] == [250, 250, 354, 250], replies
    assert c.cmd("QUIT").code == 221
    c.close()


def pool_counters(d):
    """pool_counters - parked, reused, stale from the stats line mxtierd prints when it stops."""
    d.stop()
    line = [l for l in d.stderr().splitlines() if "stats sessions=" in l][-1]
    return tuple(int(re.search(r"\bpool_%s=(\d+)" % k, line).group(1)) for k in ("parked", "reused", "stale"))


def test_xclient_reuses_one_connection_and_announces_each_client(start_daemon, backend, connect):
    d = start_daemon(backend, backend_client_info="xclient", allow_networks="127.0.0.0/8")
    sources = ["127.0.0.71", "127.0.0.72", "127.0.0.73"]
    for i, source in enumerate(sources):
        one_session(connect, d, source, helo="client%d.example.org" % i)
    [conn] = backend.mail_connections()
    assert len(conn["messages"]) == 3
    assert [a["ADDR"] for a in conn["xclient_attrs"]] == [[s] for s in sources]
    assert [a["HELO"] for a in conn["xclient_attrs"]] == [["client%d.example.org" % i] for i in range(3)]
    # between sessions: RSET, then XCLIENT (a new 220), then EHLO with the new client's name
    cmds = conn["commands"]
    second = cmds.index(conn["xclient"][1])
    assert cmds[second - 1] == "RSET\r\n", cmds
    assert cmds[second + 1] == "EHLO client1.example.org\r\n", cmds
    assert cmds[second + 2].startswith("MAIL FROM:<a@example.org>"), cmds
    assert "QUIT\r\n" not in cmds[:-1], cmds
    assert pool_counters(d)[:2] == (3, 2)


def test_none_reuses_with_rset(start_daemon, backend, connect):
    d = start_daemon(backend, backend_client_info="none", allow_networks="127.0.0.0/8")
    one_session(connect, d, "127.0.0.71")
    one_session(connect, d, "127.0.0.72")
    [conn] = backend.mail_connections()
    assert len(conn["messages"]) == 2
    cmds = conn["commands"]
    assert cmds.count("EHLO %s\r\n" % HOSTNAME) == 1, cmds
    assert cmds[cmds.index("RSET\r\n") + 1].startswith("MAIL FROM:"), cmds


@pytest.mark.parametrize("mode", ["proxy_v1", "proxy_v2"])
def test_proxy_protocol_never_reuses(start_backend, start_daemon, connect, mode):
    # one PROXY header per connection: a second client could not be announced
    backend = start_backend("--proxy-protocol")
    d = start_daemon(backend, backend_client_info=mode, allow_networks="127.0.0.0/8")
    one_session(connect, d, "127.0.0.71")
    one_session(connect, d, "127.0.0.72")
    conns = backend.mail_connections()
    assert [len(c["messages"]) for c in conns] == [1, 1]
    assert [c["proxy"]["src"] for c in conns] == ["127.0.0.71", "127.0.0.72"]
    assert pool_counters(d)[:2] == (0, 0)


def test_pool_disabled_opens_a_connection_per_session(start_daemon, backend, connect):
    d = start_daemon(backend, backend_client_info="xclient", allow_networks="127.0.0.0/8", backend_pool_size="0")
    one_session(connect, d, "127.0.0.71")
    one_session(connect, d, "127.0.0.72")
    assert [len(c["messages"]) for c in backend.mail_connections()] == [1, 1]


def test_max_uses_bounds_a_connection(start_daemon, backend, connect):
    d = start_daemon(backend, backend_client_info="xclient", allow_networks="127.0.0.0/8",
                     backend_pool_max_uses="2")
    for i in range(5):
        one_session(connect, d, "127.0.0.%d" % (71 + i))
    assert [len(c["messages"]) for c in backend.mail_connections()] == [2, 2, 1]


def test_idle_connection_gets_quit_and_the_next_session_a_new_one(start_daemon, backend, connect):
    d = start_daemon(backend, backend_client_info="xclient", allow_networks="127.0.0.0/8",
                     backend_pool_idle="1s")
    one_session(connect, d, "127.0.0.71")
    import time
    time.sleep(2.5)
    one_session(connect, d, "127.0.0.72")
    conns = backend.mail_connections()
    assert [len(c["messages"]) for c in conns] == [1, 1]
    assert conns[0]["commands"][-1] == "QUIT\r\n" and conns[0]["end"] == "client-quit", conns[0]


def test_refused_rset_costs_the_client_nothing(start_backend, start_daemon, connect):
    # a pooled connection that fails before the new session's first command: a fresh one, no 4xx
    backend = start_backend("--reply", "RSET:421 4.4.2 closing, idle too long")
    d = start_daemon(backend, backend_client_info="xclient", allow_networks="127.0.0.0/8")
    one_session(connect, d, "127.0.0.71")
    one_session(connect, d, "127.0.0.72")
    conns = backend.mail_connections()
    assert [len(c["messages"]) for c in conns] == [1, 1]
    assert conns[1]["xclient_attrs"][0]["ADDR"] == ["127.0.0.72"]
    parked, reused, stale = pool_counters(d)
    assert (reused, stale) == (1, 1)
    assert "pooled backend connection unusable" in d.stderr()


def test_misbehaving_connection_is_not_reused(start_backend, start_daemon, connect):
    backend = start_backend("--bad-reply", "DOT:extra")
    d = start_daemon(backend, backend_client_info="xclient", allow_networks="127.0.0.0/8")
    one_session(connect, d, "127.0.0.71")
    one_session(connect, d, "127.0.0.72")
    assert [len(c["messages"]) for c in backend.mail_connections()] == [1, 1]
    assert pool_counters(d)[1] == 0


def test_backend_gone_empties_the_pool(start_backend, start_daemon, connect):
    # the parked connection sees the backend close it: dropped, never handed to a session
    backend = start_backend()
    d = start_daemon(backend, backend_client_info="xclient", allow_networks="127.0.0.0/8")
    one_session(connect, d, "127.0.0.71")
    backend.stop()
    c = connect(d, source="127.0.0.72")
    c.greeting()
    c.ehlo("client.example.org")
    assert c.cmd("MAIL FROM:<a@example.org>").last == "451 4.4.1 Backend not available, try again later"
    c.close()
    parked, reused, stale = pool_counters(d)
    assert (parked, reused) == (1, 0), "a connection the backend closed was taken from the pool"


def test_smtp_sink_takes_xclient_between_sessions(start_sink, start_daemon, connect):
    sink = start_sink()
    d = start_daemon(sink, backend_client_info="xclient", allow_networks="127.0.0.0/8")
    for i in range(3):
        one_session(connect, d, "127.0.0.%d" % (71 + i))
    assert len(sink.dumps()) == 3
    assert pool_counters(d)[1] == 2
