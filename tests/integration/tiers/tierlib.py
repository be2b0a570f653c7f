"""tierlib - constants and helpers of the tier-rule tests (see conftest.py).

A module of its own, not conftest.py: the parent directories have
conftest.py files too, so `from conftest import ...` would be ambiguous.
"""

import os
import time

from harness import BAIT, HOSTNAME, PRIMARY, SECONDARY, wait_until

TIER_ADDR = {"primary": PRIMARY, "secondary": SECONDARY, "bait": BAIT}

BANNER = "220 %s ESMTP mxtier" % HOSTNAME
DEFER = "421 4.7.0 %s Service temporarily unavailable, try again later" % HOSTNAME
BUSY = "421 4.3.2 %s Service busy, try again later" % HOSTNAME
BAIT_REFUSAL = "421 4.7.0 %s Service not available, try a lower MX" % HOSTNAME
RCPT_DEFER = "451 4.7.1 Service temporarily unavailable, try again later"


def blocked(ip):
    return "554 5.7.1 %s Service unavailable; client [%s] blocked" % (HOSTNAME, ip)


def held(ip):
    """held - a behaviour block (bait-first-contact, hit-and-run, trap-recipient): 4xx, never a bounce."""
    return "421 4.7.1 %s Client [%s] temporarily blocked, try again later" % (HOSTNAME, ip)


BEHAVIOUR_BLOCKS = ("bait-first-contact", "hit-and-run", "trap-recipient")


def listed(ip):
    return "554 5.7.1 %s Service unavailable; client [%s] listed by DNSBL" % (HOSTNAME, ip)


# Defaults for every daemon here: DNS checks against the test server, short
# windows so that the whole directory runs in well under two minutes.
TIER_DEFAULTS = {
    "dns_checks": "yes",
    "dns_timeout": "500ms",
    "retry_window": "4s",
    "retry_min_delay": "1s",
    "pass_ttl": "1h",
    "bait_window": "1h",
    "block_ttl": "2s",
    "block_ttl_max": "1h",
    "backend_probe_interval": "1s",
}


class Visit:
    """Visit - one connection: the greeting, the client, later the log line."""

    def __init__(self, world, daemon, tier, source, client, greeting, seconds):
        self.world = world
        self.daemon = daemon
        self.tier = tier
        self.source = source
        self.client = client
        self.greeting = greeting
        self.seconds = seconds      # connect -> complete greeting
        self._log = None

    @property
    def log(self):
        if self._log is None:
            self._log = self.daemon.session_for(self.client)
        return self._log

    @property
    def reasons(self):
        return self.log["reason_list"]

    def quit(self):
        r = self.client.cmd("QUIT")
        assert r.code == 221, r
        assert self.client.is_closed(3.0)
        return self

    def deliver(self, helo="mail.example.test", rcpt="user@dest.test", quit=True):
        """deliver - EHLO, MAIL, RCPT, DATA, message; every reply must accept."""
        c = self.client
        assert c.ehlo(helo).code == 250
        replies = c.send_mail("sender@example.test", [rcpt],
                              b"Subject: tier test\r\n\r\nfrom %s via %s\r\n" % (self.source.encode(), self.tier.encode()))
        assert [r.code for r in replies] == [250, 250, 354, 250], replies
        if quit:
            self.quit()
        return replies


class World:
    def __init__(self, dns, start_daemon, start_backend, connect):
        self.dns = dns
        self._start_daemon = start_daemon
        self._start_backend = start_backend
        self._connect = connect
        self.backend = None
        self.daemon = None

    def start(self, backend=None, **config):
        if backend is None:
            backend = self.backend or self._start_backend()
        self.backend = backend if not isinstance(backend, int) else self.backend
        cfg = dict(TIER_DEFAULTS)
        cfg["dns_servers"] = self.dns.server
        cfg.update(config)
        self.daemon = self._start_daemon(backend, **cfg)
        return self.daemon

    def start_backend(self, *args):
        self.backend = self._start_backend(*args)
        return self.backend

    def file(self, name, lines):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def connect(self, tier, source, daemon=None):
        return self._connect(daemon or self.daemon, host=TIER_ADDR[tier], source=source)

    def visit(self, tier, source, action="quit", daemon=None):
        """visit - connect to a tier from source, read the greeting.

        action: "quit" (EHLO + QUIT after a 220), "deliver" (a whole message
        after a 220, which must be accepted), "open" (leave the session
        open).  A refusal must be followed by the server closing.
        """
        t0 = time.monotonic()
        c = self.connect(tier, source, daemon)
        g = c.greeting()
        v = Visit(self, daemon or self.daemon, tier, source, c, g, time.monotonic() - t0)
        if g.code == 220:
            if action == "quit":
                assert c.ehlo("mail.example.test").code == 250
                v.quit()
            elif action == "deliver":
                v.deliver()
        else:
            assert c.is_closed(3.0), "refusal %r but the connection stays open" % g.raw
        return v

    def stderr_count(self, text):
        return self.daemon.stderr().count(text)

    def wait_log(self, text, count=1, timeout=6.0):
        return wait_until(lambda: self.stderr_count(text) >= count, timeout,
                          what="%d x %r in mxtierd stderr:\n%s" % (count, text, self.daemon.stderr()[-3000:]))
