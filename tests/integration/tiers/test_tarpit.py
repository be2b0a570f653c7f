"""tarpit_delay (docs/engine.md): "a suspect's greeting refusal is written
one byte per delay" (spamd's stutter). Measured on the wire: the refusal
line arrives in many pieces and takes at least (length - 1) x delay from
its first byte to its last. Other answers are not slowed down."""

import time

import pytest

from tierlib import BANNER, DEFER, TIER_ADDR, listed
from harness import SmtpClient, wait_until

DELAY = 0.015


def read_timed(world, tier, source):
    """read_timed - the greeting line as it arrives: (bytes, chunks, first->last seconds, connect->last)."""
    c = SmtpClient(world.daemon.port, host=TIER_ADDR[tier], source=source, timeout=10)
    try:
        t0 = time.monotonic()
        data, chunks, first = b"", 0, None
        c.sock.settimeout(10)
        while not data.endswith(b"\r\n"):
            got = c.sock.recv(4096)
            if not got:
                break
            if first is None:
                first = time.monotonic()
            data += got
            chunks += 1
        end = time.monotonic()
        return data, chunks, end - first, end - t0
    finally:
        c.close()


@pytest.mark.parametrize("tier, net, reasons", [
    ("primary", 190, ["no-rdns"]),
    ("secondary", 191, ["no-rdns", "skipped-primary"]),
], ids=["primary-deferral", "secondary-skipped-primary"])
def test_suspect_refusal_is_stuttered(world, tier, net, reasons):
    ip = "127.1.%d.5" % net
    world.start(tarpit_delay="%dms" % int(DELAY * 1000))
    data, chunks, spread, _ = read_timed(world, tier, ip)
    line = (DEFER + "\r\n").encode()
    assert data == line
    assert spread >= (len(line) - 1) * DELAY * 0.95, \
        "%d bytes in %.3fs, expected >= %.3fs" % (len(line), spread, (len(line) - 1) * DELAY)
    assert chunks >= len(line) // 2, "refusal arrived in %d pieces" % chunks
    sessions = wait_until(lambda: [s for s in world.daemon.sessions() if s["client"].startswith(ip + ":")],
                          5.0, what="the session log line of " + ip)
    assert len(sessions) == 1
    assert sessions[0]["verdict"] == "tempfail" and sorted(sessions[0]["reason_list"]) == sorted(reasons)


def test_banner_and_hard_refusals_are_not_stuttered(world):
    clean, listed_ip = "127.1.192.5", "127.1.193.5"
    world.dns.host(clean, "mail.sender192.test")
    world.dns.host(listed_ip, "mail.sender193.test").listed("bl.test", listed_ip)
    world.start(tarpit_delay="200ms", dnsbl_sites="bl.test*3")
    data, chunks, _, total = read_timed(world, "primary", clean)
    assert data == (BANNER + "\r\n").encode() and total < 1.0
    data, chunks, _, total = read_timed(world, "primary", listed_ip)
    assert data == (listed(listed_ip) + "\r\n").encode() and total < 1.0
