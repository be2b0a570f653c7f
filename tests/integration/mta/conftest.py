"""Fixtures for the MTA tests: a real Postfix delivering to tiers.test through mxtierd.

The `mta` fixture gives one test its own network namespace (entered by the
test thread, deleted at teardown together with /etc/netns/NAME), a DNS server
on 127.0.0.1:53 in it with the default zone below already served, and
starters for the recording backend, mxtierd (tier port 2525) and a private
Postfix instance bound to a chosen client address:

    def test_x(mta):
        mta.dns.ptr("127.0.0.22", "x.example.test").commit()   # extend the zone
        backend = mta.start_backend()
        d = mta.start_mxtierd(backend, greet_wait="1s")
        pf = mta.start_postfix("127.0.0.20")
        qid = pf.queue_id(pf.send())
        pf.wait_delivery(qid)                                   # status=sent
        d.wait_session(lambda s: s["tier"] == "primary")

mxtierd matches contact history by exact address and by /24: clients that
must not share history within one test need different /24s (127.0.1.x, ...).
Readiness of mxtierd is read from /proc/net/tcp (no probe connection, so no
history entry).  The DNS zone (mta_harness.default_zone) is a dict:
mta.dns.add(name, type, value), .host(), .ptr(), .mx(), .dnsbl(), then
.commit(); the server reads the file again when it changes.

Every child is stopped by its own PID in reverse start order, also when the
test fails (then the logs are printed).  Without root, ip netns, Postfix or
python3-dnslib the tests in this directory are skipped with the reason.
"""

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from harness import RecordingBackend, SanitizerReport  # noqa: E402
from mta_harness import (BAIT, PRIMARY, SECONDARY, Dns, Netns, NetnsDaemon,  # noqa: E402
                         Postfix, default_zone, remove_stale_namespaces, set_subreaper,
                         why_unavailable)

_unavailable = []


@pytest.fixture(scope="session")
def mta_available():
    if not _unavailable:
        _unavailable.append(why_unavailable())
        if _unavailable[0] is None:
            remove_stale_namespaces()
    if _unavailable[0]:
        pytest.skip("MTA tests: " + _unavailable[0])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_mta_" + report.when, report)


class MtaEnv:
    """MtaEnv - one test's namespace, DNS and children."""

    def __init__(self, workdir, netns):
        self.workdir = workdir
        self.netns = netns
        self.children = []
        self.dns = None
        self.counts = {}

    def _name(self, kind):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return "%s%d" % (kind, self.counts[kind])

    def start_dns(self, zone=None):
        """start_dns(zone) - zone: dict name -> {type: [values]}; default: default_zone()."""
        dns = Dns(self.workdir)
        if zone is None:
            default_zone(dns)
        else:
            dns.zone = {k.lower().rstrip("."): dict(v) for k, v in zone.items()}
        self.children.append(dns)
        self.dns = dns.start()
        return dns

    def start_backend(self, *args):
        """start_backend(*args) - recording_backend.py (options as in its --help) on 127.0.0.1."""
        b = RecordingBackend(self.workdir, args, name=self._name("backend"))
        self.children.append(b)
        return b.start()

    def start_mxtierd(self, backend, **config):
        """start_mxtierd(backend, **config) - mxtierd on 127.0.0.10/.11/.12 port 2525."""
        port = backend if isinstance(backend, int) else backend.port
        cfg = {"primary_ips": PRIMARY, "secondary_ips": SECONDARY, "bait_ips": BAIT,
               # one backend probe at start only: a test of the probe sets its own interval
               "backend_probe_interval": "1h"}
        cfg.update(config)
        d = NetnsDaemon(self.workdir, port, self.netns, cfg, name=self._name("mxtierd"))
        self.children.append(d)
        return d.start()

    def start_postfix(self, client_addr, **settings):
        """start_postfix(addr, **main_cf) - a private Postfix whose smtp client binds addr."""
        p = Postfix(self.workdir, self.netns, client_addr, name=self._name("postfix"), settings=settings)
        self.children.append(p)
        return p.start()

    def stop_all(self, failed):
        reports = []
        for child in reversed(self.children):
            try:
                child.stop()
            except SanitizerReport as e:    # raised once every child is stopped
                reports.append(e)
            except Exception as e:      # keep stopping the others
                print("stopping %r: %s" % (child, e))
        if not failed and not reports:
            return
        for child in self.children:
            if isinstance(child, Postfix):
                print("---- %s maillog ----\n%s" % (child.base, child.log_text()[-6000:]))
                print("---- %s master stderr ----\n%s" % (child.base, child.read_stderr()[-2000:]))
            elif isinstance(child, NetnsDaemon):
                print("---- mxtierd stderr (%s) ----\n%s" % (child.conf_path, child.stderr()[-6000:]))
            elif isinstance(child, RecordingBackend):
                print("---- backend stderr ----\n%s" % open(child.stderr_path, errors="replace").read()[-3000:])
            elif isinstance(child, Dns):
                print("---- DNS queries ----\n%s\n%s" % ("\n".join(child.queries()[-60:]), child.stderr()[-2000:]))
        if reports:
            raise reports[0]


@pytest.fixture
def mta(request, mta_available):
    """mta - namespace + DNS (default zone) + starters; everything torn down by PID."""
    workdir = tempfile.mkdtemp(prefix="mxtier-mta-")
    os.chmod(workdir, 0o755)
    netns = Netns()
    env = None
    try:
        set_subreaper(True)
        netns.create()
        netns.enter()
        env = MtaEnv(workdir, netns)
        env.start_dns()
        yield env
    finally:
        rep = getattr(request.node, "rep_mta_call", None)
        failed = rep is None or rep.failed
        try:
            if env is not None:
                env.stop_all(failed)
        finally:
            netns.destroy()
            set_subreaper(False)
            shutil.rmtree(workdir, ignore_errors=True)
