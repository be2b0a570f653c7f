"""Fixtures for the MTA tests: real MTAs delivering to tiers.test through mxtierd.

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

mta.start_sender(kind, addr) starts one of the four sending MTAs of
senders.py (postfix, exim, opensmtpd, sendmail: see there how each runs)
delivering to port 25 of the MX hosts; mta.start_bounce_sink() puts a
recording backend at the MX of bounce.test, so that every DSN a sender makes
for a bounce.test envelope sender is seen.  The matrix_row fixture collects
one line per MTA x case of test_mta_matrix.py; the table is printed at the
end of the run and written to $MXTIER_BUILD/mta-matrix.txt.

Every child is stopped by its own PID in reverse start order, also when the
test fails (then the logs are printed).  Without root, ip netns, Postfix or
python3-dnslib the tests in this directory are skipped with the reason.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from harness import MXTIERD, RecordingBackend, SanitizerReport  # noqa: E402
from mta_harness import (BAIT, PRIMARY, SECONDARY, Dns, Netns, NetnsDaemon,  # noqa: E402
                         Postfix, default_zone, remove_stale_namespaces, set_subreaper,
                         why_unavailable)
from senders import BOUNCE_DOMAIN, BOUNCE_SINK, CACHE, SENDERS, Sender  # noqa: E402

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

    def start_sender(self, kind, client_addr):
        """start_sender(kind, addr) - one of senders.SENDERS (postfix, exim, opensmtpd, sendmail)
        sending from addr to port 25 of the MX hosts."""
        cls = SENDERS[kind]
        s = cls(self.workdir, self.netns, client_addr, name=self._name(kind))
        self.children.append(s)
        return s.start()

    def start_bounce_sink(self):
        """start_bounce_sink - a recording backend on BOUNCE_SINK:25, the MX of bounce.test:
        whatever DSN a sender generates for a bounce.test address lands here."""
        self.dns.add(BOUNCE_DOMAIN, "MX", [10, "mx." + BOUNCE_DOMAIN])
        self.dns.remove("mx." + BOUNCE_DOMAIN, "A").add("mx." + BOUNCE_DOMAIN, "A", BOUNCE_SINK).commit()
        b = RecordingBackend(self.workdir, ("--host", BOUNCE_SINK, "--port", "25"), name=self._name("bounces"))
        self.children.append(b)
        return b.start()

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
            if isinstance(child, Sender) and not isinstance(child, Postfix):
                print("---- %s log (%s) ----\n%s" % (child.kind, child.base, child.debug_text()))
            elif isinstance(child, Postfix):
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


# -- the MTA x case matrix (test_mta_matrix.py) ---------------------------------

MATRIX_ROWS = []


@pytest.fixture
def matrix_row(request):
    """matrix_row - a dict the test fills (mta, case, tiers, time, copies, note); with the
    test's outcome it becomes one line of the matrix printed at the end of the run and
    written to $MXTIER_BUILD/mta-matrix.txt."""
    row = {}
    yield row
    if not row.get("mta"):
        return
    rep = getattr(request.node, "rep_mta_call", None)
    if rep is None:
        setup = getattr(request.node, "rep_mta_setup", None)
        row["result"] = "skip" if setup is not None and setup.skipped else "ERROR"
    else:
        row["result"] = "pass" if rep.passed else ("skip" if rep.skipped else "FAIL")
    MATRIX_ROWS.append(row)


def versions():
    """versions - the sending MTAs' Debian package versions (postfix installed, the rest cached)."""
    out = []
    try:
        out.append("postfix=" + subprocess.run(["dpkg-query", "-W", "-f=${Version}", "postfix"],
                                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                               timeout=10).stdout.decode().strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        with open(os.path.join(CACHE, "VERSIONS")) as f:
            out.extend(l.strip() for l in f if l.strip())
    except OSError:
        pass
    return " ".join(out) or "?"


def matrix_lines():
    rows = sorted(MATRIX_ROWS, key=lambda r: r.get("order", (99, 99)))
    head = "%-14s %-18s %-6s %8s %6s  %s  [%s]" % ("MTA", "case", "result", "delivery", "copies",
                                                   "tiers contacted (tier:verdict, in order)", "sender's log; queue; DSNs")
    lines = ["# mxtierd %s; senders %s" % (MXTIERD, versions()), head, "-" * len(head)]
    for r in rows:
        t = r.get("time")
        lines.append("%-14s %-18s %-6s %8s %6s  %s  [%s]" % (
            r.get("label", r["mta"]), r["case"], r["result"], "-" if t is None else "%.1fs" % t,
            r.get("copies", "-"), r.get("tiers", "-"), r.get("note", "")))
    return lines


def pytest_terminal_summary(terminalreporter):
    if not MATRIX_ROWS:
        return
    lines = matrix_lines()
    build = os.environ.get("MXTIER_BUILD") or os.path.join(os.path.dirname(os.path.dirname(
        os.path.dirname(HERE))), "build")
    path = os.path.join(build, "mta-matrix.txt")
    try:
        os.makedirs(build, exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
    except OSError as e:
        path = "(not written: %s)" % e
    terminalreporter.write_sep("-", "MTA matrix %s" % path)
    for line in lines:
        terminalreporter.write_line(line)
