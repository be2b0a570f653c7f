"""Fixtures for the tier-rule tests: a loopback DNS server and a "world".

    def test_x(world):
        world.dns.host("127.1.7.5", "mail.sender7.test")       # PTR + A
        d = world.start(retry_min_delay="1s")                  # mxtierd, dns_checks on
        v = world.visit("primary", "127.1.7.5")                # connect, greeting, QUIT
        assert v.greeting.last == BANNER and v.log["verdict"] == "relay"

Each test gets its own DNS server (a thread, tier_dns.TierDns), its own
recording backend and its own mxtierd (fresh history), all stopped at
teardown; mxtierd and the backend by PID through the parent conftest's
`procs` fixture.  Clients bind loopback source addresses so that every test
case plays its own senders (distinct /24s: history matches by /24).
Constants and the World/Visit helpers live in tierlib.py.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from tier_dns import TierDns  # noqa: E402
from tierlib import World  # noqa: E402


@pytest.fixture
def dns():
    server = TierDns().start()
    yield server
    server.stop()


@pytest.fixture
def world(dns, start_daemon, start_backend, connect, workdir):
    w = World(dns, start_daemon, start_backend, connect)
    w.workdir = workdir
    return w
