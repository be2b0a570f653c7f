"""mxtierctl tier list / tier set / dns-check against a real mxtierd and a
real DNS server (dnsmasq on loopback).

tier set edits the file in place and reloads the running daemon through its
control socket: the tests check what an operator would, that the daemon
listens on (or stops listening on) the address, that its SMTP answer is the
new role's, that comments and other lines are kept, and that a refused
change leaves the file byte for byte as it was and the daemon as it was.
dns-check is run against a right zone and several wrong ones.
"""

import os
import re
import socket
import subprocess

import pytest

from harness import (BAIT, HOSTNAME, MXTIERD, PRIMARY, SECONDARY, TOP, Daemon, check_sanitizer_report, port_accepts,
                     sanitizer_env, wait_until)
from loopback_dns import DNSMASQ, Dnsmasq

MXTIERCTL = os.path.join(os.environ.get("MXTIER_BUILD") or os.path.join(TOP, "build"), "mxtierctl")
EXTRA = "127.0.0.13"            # a fourth loopback address, in no tier at first
ABSENT = "203.0.113.77"         # TEST-NET-3: not an address of this machine
BAIT_GREETING = "421 4.7.0 %s Service not available, try a lower MX\r\n" % HOSTNAME

needs_dnsmasq = pytest.mark.skipif(not os.access(DNSMASQ, os.X_OK),
                                   reason="dnsmasq is not installed (packaging/install-deps installs dnsmasq-base)")


def ctl(conf, *args):
    r = subprocess.run([MXTIERCTL, "-c", conf] + list(args), capture_output=True, text=True, timeout=60,
                       env=sanitizer_env())
    check_sanitizer_report(r.stderr, "mxtierctl %s" % " ".join(args))
    return r


def tier_rows(out):
    """tier_rows - `tier list` as {address: (interface, role, listening, reverse dns)}."""
    rows, table = {}, False
    for line in out.splitlines():
        if line.startswith("ADDRESS "):
            table = True
            continue
        if not table or line.startswith(("warning:", "note:")):
            continue
        fields = line.split(None, 4)
        rows[fields[0]] = tuple(fields[1:4]) + (fields[4] if len(fields) > 4 else "",)
    return rows


def daemon_listeners(d):
    """daemon_listeners - the daemon's own answer to "listeners", sorted."""
    lines = control(d, "listeners").splitlines()
    assert lines[0] == "ok", lines
    return sorted(lines[1:])


def control(d, request):
    """control - one request on the daemon's control socket; its whole reply."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(d.control_socket)
    s.sendall(request.encode() + b"\n")
    return read_reply(s)


def read_reply(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode()


class CommentedDaemon(Daemon):
    """CommentedDaemon - mxtierd whose config file an operator wrote: comments, odd spacing."""

    def write_config(self, config=None, extra_lines=()):
        config = dict(self.config if config is None else config)
        with open(self.conf_path, "w") as f:
            f.write("# mxtier appliance (tests/integration/test_ctl_tier.py)\n"
                    "# tier addresses, MX 10 / 20 / 30\n")
            for key in ("primary_ips", "secondary_ips", "bait_ips"):
                if key in config:
                    f.write("%s  =  %s   # %s\n" % (key, config.pop(key), key.split("_")[0]))
            f.write("\n# the rest\n")
            for key, value in config.items():
                if value is not None:
                    f.write("%s = %s\n" % (key, value))
            f.write("# end of file\n")


@pytest.fixture(params=["split", "single"])
def appliance(request, procs, workdir, backend):
    """appliance - mxtierd with a control socket, as a split (root) or one process (user =)."""
    if request.param == "split" and os.geteuid() != 0:
        pytest.skip("the privilege split needs root")
    config = {"control_socket": os.path.join(workdir, "control.sock")}
    if request.param == "single":
        config["user"] = ""
    d = CommentedDaemon(workdir, backend.port, config, name="appliance")
    d.control_socket = config["control_socket"]
    procs.append(d)
    return d.start()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def smtp_greeting(d, host, source):
    s = socket.create_connection((host, d.port), timeout=5, source_address=(source, 0))
    try:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
        s.sendall(b"QUIT\r\n")
        return data.decode(), "%s:%d" % s.getsockname()[:2]
    finally:
        s.close()


def test_tier_set_changes_listeners_roles_and_smtp_keeping_the_file(appliance, workdir):
    d = appliance
    conf = d.conf_path
    before = read(conf).decode()

    # A new bait address: listened on at once, answers like a bait, shows in tier list.
    r = ctl(conf, "tier", "set", EXTRA, "bait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "%s: %s is now bait (was none)" % (conf, EXTRA) in r.stdout
    assert "mxtierd: reloaded %s" % conf in r.stdout
    assert port_accepts(EXTRA, d.port)
    greeting, client = smtp_greeting(d, EXTRA, "127.0.0.51")
    assert greeting == BAIT_GREETING
    log = d.session_for(client)
    assert (log["tier"], log["verdict"]) == ("bait", "tempfail")
    rows = tier_rows(ctl(conf, "tier", "list").stdout)
    assert rows[EXTRA][:3] == ("lo", "bait", "yes"), rows

    # The secondary becomes a primary: the same socket, the primary's answer.
    r = ctl(conf, "tier", "set", SECONDARY, "primary")
    assert r.returncode == 0, r.stdout + r.stderr
    greeting, client = smtp_greeting(d, SECONDARY, "127.0.0.52")
    assert greeting.startswith("220 "), greeting
    assert d.session_for(client)["tier"] == "primary"

    # An IPv6 address works the same way.
    r = ctl(conf, "tier", "set", "::1", "bait")
    assert r.returncode == 0, r.stdout + r.stderr
    s6 = socket.create_connection(("::1", d.port), timeout=5)
    assert s6.recv(1024).decode() == BAIT_GREETING
    s6.close()
    assert tier_rows(ctl(conf, "tier", "list").stdout)["::1"][:3] == ("lo", "bait", "yes")
    r = ctl(conf, "tier", "set", "::1", "none")
    assert r.returncode == 0, r.stdout + r.stderr

    # The old bait leaves every tier: mxtierd stops listening there.
    r = ctl(conf, "tier", "set", BAIT, "none")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: not port_accepts(BAIT, d.port), 5, what="no listener on %s" % BAIT)
    rows = tier_rows(ctl(conf, "tier", "list").stdout)
    assert BAIT not in rows or rows[BAIT][1:3] == ("none", "no"), rows
    assert rows[SECONDARY][1:3] == ("primary", "yes"), rows
    assert rows[PRIMARY][1:3] == ("primary", "yes"), rows
    assert daemon_listeners(d) == sorted("%s %d %s" % (a, d.port, role) for a, role in
                                         ((PRIMARY, "primary"), (SECONDARY, "primary"), (EXTRA, "bait")))

    # Comments, order, spacing and the other lines are as the operator wrote them.
    after = read(conf).decode()
    assert after == (before
                     .replace("primary_ips  =  %s   #" % PRIMARY, "primary_ips  =  %s, %s   #" % (PRIMARY, SECONDARY))
                     .replace("secondary_ips  =  %s   #" % SECONDARY, "secondary_ips  =   #")
                     .replace("bait_ips  =  %s   #" % BAIT, "bait_ips  =  %s   #" % EXTRA)), after
    assert oct(os.stat(conf).st_mode & 0o777) == oct(0o644)
    assert not [f for f in os.listdir(workdir) if f.startswith(".appliance.conf.")]


def test_tier_set_refusals_leave_file_and_daemon_as_they_were(appliance):
    d = appliance
    conf = d.conf_path
    os.chmod(conf, 0o640)
    before, listening = read(conf), daemon_listeners(d)
    cases = [
        (("tier", "set", "127.0.0.300", "bait"), 2, "is not an IPv4 or IPv6 address"),
        (("tier", "set", EXTRA, "tertiary"), 2, 'unknown role "tertiary" (primary, secondary, bait or none)'),
        (("tier", "set", EXTRA), 2, "usage: mxtierctl tier list | tier set ADDRESS"),
    ]
    for args, rc, text in cases:
        r = ctl(conf, *args)
        assert r.returncode == rc, (args, r.stdout, r.stderr)
        assert text in r.stderr, (args, r.stderr)
        assert read(conf) == before, args
    # mxtierd cannot listen on an address this machine does not have: the
    # reload says so, the file comes back, the daemon is back where it was.
    r = ctl(conf, "tier", "set", ABSENT, "secondary")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "mxtierd did not take the change: reloaded %s, but cannot listen on %s port %d (secondary)" % (
        conf, ABSENT, d.port) in r.stderr, r.stderr
    assert "%s restored" % conf in r.stderr
    assert read(conf) == before
    assert oct(os.stat(conf).st_mode & 0o777) == oct(0o640)
    assert daemon_listeners(d) == listening
    assert smtp_greeting(d, BAIT, "127.0.0.53")[0] == BAIT_GREETING


def test_tier_set_refused_by_the_config_check(procs, workdir, backend):
    """A result mxtierd -t would refuse (a relay loop: the backend becomes a tier) is never written."""
    conf_dir = workdir
    d = CommentedDaemon(conf_dir, backend.port, {"control_socket": os.path.join(workdir, "c.sock"), "user": ""},
                        name="loop")
    d.config["backend"] = "%s:%d" % (EXTRA, d.port)     # nothing listens there yet
    procs.append(d)
    d.start()
    before = read(d.conf_path)
    r = ctl(d.conf_path, "tier", "set", EXTRA, "primary")
    assert r.returncode == 1
    assert re.search(r"refused: .*:\d+: backend: %s port %d is mxtierd's own primary tier listener \(a relay loop\); "
                     r"%s unchanged" % (re.escape(EXTRA), d.port, re.escape(d.conf_path)), r.stderr), r.stderr
    assert read(d.conf_path) == before
    assert not port_accepts(EXTRA, d.port)

    # The IPv4-mapped spelling of the secondary is the secondary: it moves, it is not in two tiers.
    r = ctl(d.conf_path, "tier", "set", "::ffff:" + SECONDARY, "bait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "%s is now bait (was secondary)" % SECONDARY in r.stdout
    assert ctl(d.conf_path, "check").returncode == 0
    assert smtp_greeting(d, SECONDARY, "127.0.0.54")[0] == BAIT_GREETING


def test_tier_set_without_a_running_daemon_changes_the_file(workdir):
    conf = os.path.join(workdir, "idle.conf")
    with open(conf, "w") as f:
        f.write("# idle\nprimary_ips = %s\nbacklog_note_is_a_comment = no # not a key\n" % PRIMARY)
    r = ctl(conf, "tier", "set", SECONDARY, "secondary")
    assert r.returncode == 1 and "unknown key" in r.stderr     # the file itself must load first
    with open(conf, "w") as f:
        f.write("# idle\nprimary_ips = %s\ncontrol_socket = %s/none.sock\n" % (PRIMARY, workdir))
    r = ctl(conf, "tier", "set", SECONDARY, "secondary")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mxtierd: not running (cannot reach mxtierd at %s/none.sock" % workdir in r.stdout
    assert read(conf).decode() == ("# idle\nprimary_ips = %s\ncontrol_socket = %s/none.sock\nsecondary_ips = %s\n"
                                   % (PRIMARY, workdir, SECONDARY))
    r = ctl(conf, "tier", "set", SECONDARY, "secondary")
    assert r.returncode == 0 and "is already secondary; nothing to do" in r.stdout


# -- DNS ------------------------------------------------------------------------

RIGHT = dict(
    host_records=[("mx10.right.test", PRIMARY), ("mx20.right.test", SECONDARY), ("mx30.right.test", BAIT)],
    mx_records=[("right.test", "mx10.right.test", 10), ("right.test", "mx20.right.test", 20),
                ("right.test", "mx30.right.test", 30),
                # bait at the lowest preference, primary at the highest
                ("swapped.test", "mx30.right.test", 5), ("swapped.test", "mx20.right.test", 15),
                ("swapped.test", "mx10.right.test", 25),
                # the secondary's MX points at someone else's host
                ("elsewhere.test", "mx10.right.test", 10), ("elsewhere.test", "mx.other.test", 20),
                ("elsewhere.test", "mx30.right.test", 30),
                # primary and secondary at one preference
                ("equal.test", "mx10.right.test", 10), ("equal.test", "mx20.right.test", 10),
                ("equal.test", "mx30.right.test", 20)],
    a_records=[("mx.other.test", "127.0.0.99")])

# PTRs wrong: the secondary has none, the bait's names a host without its address.
WRONG_PTR = dict(
    host_records=[("mx10.ptr.test", PRIMARY)],
    a_records=[("mx20.ptr.test", SECONDARY), ("mx30.ptr.test", BAIT), ("elsewhere.ptr.test", "127.0.0.98")],
    ptr_records=[(BAIT, "elsewhere.ptr.test")],
    mx_records=[("ptr.test", "mx10.ptr.test", 10), ("ptr.test", "mx20.ptr.test", 20),
                ("ptr.test", "mx30.ptr.test", 30)])


@pytest.fixture
def dns_conf(workdir, procs):
    """dns_conf(**records) - a dnsmasq with these records and a config that resolves through it."""
    def make(**records):
        dns = Dnsmasq(workdir)
        procs.append(dns)
        dns.start(**records)
        conf = os.path.join(workdir, "dns.conf")
        with open(conf, "w") as f:
            f.write("primary_ips = %s\nsecondary_ips = %s\nbait_ips = %s\nlisten_port = 2525\n"
                    "dns_servers = 127.0.0.1:%d\ndns_timeout = 2s\n" % (PRIMARY, SECONDARY, BAIT, dns.port))
        return conf, dns
    return make


@needs_dnsmasq
def test_dns_check_right_zone(dns_conf):
    conf, dns = dns_conf(**RIGHT)
    r = ctl(conf, "dns-check", "right.test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "dns-check right.test (DNS: 127.0.0.1:%d)" % dns.port,
        "MX 10 mx10.right.test -> %s (primary)" % PRIMARY,
        "MX 20 mx20.right.test -> %s (secondary)" % SECONDARY,
        "MX 30 mx30.right.test -> %s (bait)" % BAIT,
        "ok   lowest preference (MX 10) points at the primary",
        "ok   middle preference (MX 20) points at the secondary",
        "ok   highest preference (MX 30) points at the bait",
        "ok   primary %s: PTR mx10.right.test, forward-confirmed" % PRIMARY,
        "ok   secondary %s: PTR mx20.right.test, forward-confirmed" % SECONDARY,
        "ok   bait %s: PTR mx30.right.test, forward-confirmed" % BAIT,
        "no mistakes found"]


def mistakes(out):
    lines = out.splitlines()
    assert "mistakes, the costliest first:" in lines, out
    return [re.sub(r"^\s+\d+\. ", "", l) for l in lines[lines.index("mistakes, the costliest first:") + 1:]]


@needs_dnsmasq
@pytest.mark.parametrize("domain, fail_lines, expected", [
    ("swapped.test",
     ["FAIL lowest preference (MX 5) should point at the primary, points at: bait",
      "FAIL highest preference (MX 25) should point at the bait, points at: primary"],
     ["bait-at-lowest-preference: the bait is at the lowest preference (MX 5): every real MTA tries it first "
      "and would be blocked as a back-door spammer",
      "bait-primary-swapped: bait and primary are swapped: the primary has the highest preference (MX 25), "
      "the bait the lowest (MX 5)"]),
    ("elsewhere.test",
     ["FAIL middle preference (MX 20) should point at the secondary, points at: elsewhere"],
     ["tier-not-in-mx: the secondary %s is in no MX record" % SECONDARY,
      "mx-points-elsewhere: MX 20 mx.other.test points at 127.0.0.99, which is not one of this appliance's "
      "tier addresses"]),
    ("equal.test",
     ["FAIL lowest preference (MX 10) should point at the primary, points at: primary+secondary",
      "FAIL middle preference (MX 20) should point at the secondary, points at: bait",
      "FAIL highest preference: no MX left for the bait"],
     ["tiers-out-of-order: the primary (MX 10) must have a lower preference than the secondary (MX 10)",
      "equal-preference: MX 10 points at primary+secondary at once: senders pick one of them at random"]),
    ("nothing.test", ["FAIL nothing.test has no MX records"],
     ["no-mx: nothing.test has no MX records: senders use its A record, not the tiers"]),
], ids=["bait-lowest-swapped", "mx-elsewhere", "equal-preference", "no-mx"])
def test_dns_check_wrong_zones(dns_conf, domain, fail_lines, expected):
    conf, _ = dns_conf(**RIGHT)
    r = ctl(conf, "dns-check", domain)
    assert r.returncode == 1, r.stdout + r.stderr
    assert [l for l in r.stdout.splitlines() if l.startswith("FAIL")] == fail_lines, r.stdout
    assert mistakes(r.stdout) == expected, r.stdout


@needs_dnsmasq
def test_dns_check_missing_and_unconfirmed_ptr(dns_conf):
    conf, _ = dns_conf(**WRONG_PTR)
    r = ctl(conf, "dns-check", "ptr.test")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "ok   primary %s: PTR mx10.ptr.test, forward-confirmed" % PRIMARY in lines
    assert "FAIL secondary %s has no PTR record" % SECONDARY in lines
    assert "FAIL bait %s: PTR elsewhere.ptr.test does not resolve back to it" % BAIT in lines
    assert mistakes(r.stdout) == [
        "no-ptr: the secondary %s has no PTR record (whoever traces mail to it, and some senders, look its name up)" % SECONDARY,
        "ptr-not-confirmed: the bait %s: PTR elsewhere.ptr.test has no A/AAAA record holding %s" % (BAIT, BAIT)]


@needs_dnsmasq
def test_dns_check_ipv6_bait(dns_conf, workdir):
    """An IPv6 tier address: its AAAA behind the MX, its PTR under ip6.arpa."""
    conf, dns = dns_conf(host_records=[("mx10.v6.test", PRIMARY), ("mx20.v6.test", SECONDARY),
                                       ("mx30.v6.test", "::1")],
                         mx_records=[("v6.test", "mx10.v6.test", 10), ("v6.test", "mx20.v6.test", 20),
                                     ("v6.test", "mx30.v6.test", 30)])
    with open(conf) as f:
        text = f.read().replace("bait_ips = %s" % BAIT, "bait_ips = ::1")
    with open(conf, "w") as f:
        f.write(text)
    r = ctl(conf, "dns-check", "v6.test")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "MX 30 mx30.v6.test -> ::1 (bait)" in lines, r.stdout
    assert "ok   bait ::1: PTR mx30.v6.test, forward-confirmed" in lines, r.stdout


@needs_dnsmasq
def test_dns_check_without_an_answering_server(dns_conf, workdir):
    conf, dns = dns_conf(**RIGHT)
    dns.stop()
    r = ctl(conf, "dns-check", "right.test")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "unknown: the MX lookup of right.test failed (DNS: 127.0.0.1:%d)" % dns.port in r.stdout


@needs_dnsmasq
def test_tier_list_roles_listening_rdns_and_absent_addresses(procs, workdir, backend):
    dns = Dnsmasq(workdir)
    procs.append(dns)
    dns.start(**WRONG_PTR)
    d = CommentedDaemon(workdir, backend.port, {"control_socket": os.path.join(workdir, "list.sock"),
                                                "dns_servers": "127.0.0.1:%d" % dns.port}, name="list")
    procs.append(d)
    d.start()
    out = ctl(d.conf_path, "tier", "list")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("mxtierd: running, tier port %d (control socket %s)\n"
                                 % (d.port, os.path.join(workdir, "list.sock"))), out.stdout
    rows = tier_rows(out.stdout)
    assert rows[PRIMARY] == ("lo", "primary", "yes", "mx10.ptr.test (forward-confirmed)"), out.stdout
    assert rows[SECONDARY] == ("lo", "secondary", "yes", "no PTR"), out.stdout
    assert rows[BAIT] == ("lo", "bait", "yes",
                          "elsewhere.ptr.test (NOT confirmed: its A/AAAA records do not hold this address)"), out.stdout
    assert rows["127.0.0.1"][:3] == ("lo", "none", "no"), out.stdout

    # Edited by hand, not reloaded: a tier address the machine lacks, a role the daemon does not know yet.
    text = read(d.conf_path).decode().replace("bait_ips  =  %s" % BAIT, "bait_ips  =  %s, %s" % (BAIT, ABSENT))
    text = text.replace("secondary_ips  =  %s" % SECONDARY, "secondary_ips  = ")
    text = text.replace("primary_ips  =  %s" % PRIMARY, "primary_ips  =  %s, %s" % (PRIMARY, SECONDARY))
    with open(d.conf_path, "w") as f:
        f.write(text)
    out = ctl(d.conf_path, "tier", "list")
    rows = tier_rows(out.stdout)
    assert rows[ABSENT][:3] == ("NOT-HERE", "bait", "no"), out.stdout
    assert rows[SECONDARY][1:3] == ("primary", "yes(secondary)"), out.stdout
    assert "warning: %s is in bait_ips but not an address of this machine: mxtierd cannot listen there" % ABSENT \
        in out.stdout

    # No daemon: the roles and the DNS still, listening unknown.
    d.stop()
    out = ctl(d.conf_path, "tier", "list")
    assert out.returncode == 0
    assert out.stdout.startswith("mxtierd: no answer (cannot reach mxtierd at %s" % os.path.join(workdir, "list.sock"))
    assert tier_rows(out.stdout)[PRIMARY][:3] == ("lo", "primary", "?")



def test_control_reload_answers_with_the_outcome(appliance):
    """The daemon's side of tier set: "reload" says what SIGHUP would only log, split or not."""
    d = appliance
    good = read(d.conf_path)
    assert control(d, "reload") == "ok\nreloaded %s\n" % d.conf_path
    with open(d.conf_path, "ab") as f:
        f.write(b"bait_ips = %s\n" % SECONDARY.encode())       # set twice
    lines = good.decode().count("\n")
    reply = control(d, "reload")
    assert reply == ("error: reload refused: %s:%d: bait_ips: set twice (first on line 5)\n"
                     % (d.conf_path, lines + 1)), reply
    assert "reload refused: %s:%d: bait_ips: set twice" % (d.conf_path, lines + 1) in d.stderr()
    # The running configuration stayed: the bait still answers as one, the secondary still listens.
    assert smtp_greeting(d, BAIT, "127.0.0.55")[0] == BAIT_GREETING
    assert port_accepts(SECONDARY, d.port)
    with open(d.conf_path, "wb") as f:
        f.write(good)
    # Two at once: each gets an answer, the outcome or "try again"; none is left hanging.
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(d.control_socket)
        socks.append(s)
    for s in socks:
        s.sendall(b"reload\n")
    replies = [read_reply(s) for s in socks]
    ok = "ok\nreloaded %s\n" % d.conf_path
    busy = "error: another reload is still waiting for its outcome; try again\n"
    assert ok in replies and all(r in (ok, busy) for r in replies), replies


# -- in a network namespace: the machine's own interfaces -------------------------

NS_ADDRS = {"primary": "192.0.2.10", "secondary": "192.0.2.11", "bait": "2001:db8::12"}


class NetnsDaemon:
    """NetnsDaemon - mxtierd run by `ip netns exec` (which execs it: Popen's PID is mxtierd's)."""

    def __init__(self, ns, conf, stderr_path):
        self.ns, self.conf, self.stderr_path, self.proc = ns, conf, stderr_path, None

    def start(self):
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, MXTIERD, "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr_path, "wb"), env=sanitizer_env())
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        check_sanitizer_report(open(self.stderr_path, errors="replace").read(), "mxtierd in %s" % self.ns)


class Netns:
    def __init__(self):
        self.name = "mxct%d" % os.getpid()

    def sh(self, *cmd):
        subprocess.run(["ip", "netns", "exec", self.name] + list(cmd), check=True, capture_output=True, timeout=10)

    def start(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.sh("ip", "link", "set", "lo", "up")
        # A veth pair (no dummy module on every kernel); its other end stays without addresses.
        self.sh("ip", "link", "add", "tier0", "type", "veth", "peer", "name", "tier0peer")
        self.sh("ip", "link", "set", "tier0", "up")
        self.sh("ip", "link", "set", "tier0peer", "up")
        self.sh("ip", "addr", "add", NS_ADDRS["primary"] + "/24", "dev", "tier0")
        self.sh("ip", "addr", "add", NS_ADDRS["secondary"] + "/24", "dev", "tier0")
        self.sh("ip", "addr", "add", NS_ADDRS["bait"] + "/64", "dev", "tier0", "nodad")
        return self

    def stop(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def ns_missing():
    if os.geteuid() != 0:
        return "needs root (a network namespace)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` does not work here"
    return None


@pytest.mark.skipif(ns_missing() is not None, reason=str(ns_missing()))
def test_tier_list_and_set_on_a_machine_with_its_own_interfaces(procs, workdir):
    ns = Netns()
    procs.append(ns)
    ns.start()
    conf = os.path.join(workdir, "ns.conf")
    sock = os.path.join(workdir, "ns.sock")
    with open(conf, "w") as f:
        f.write("# appliance in %s\nprimary_ips = %s\nsecondary_ips = %s\nbait_ips = %s\nlisten_port = 2525\n"
                "backend = 127.0.0.1:2526\ncontrol_socket = %s\ndns_servers = 127.0.0.1:53\ndns_timeout = 1s\n"
                % (ns.name, NS_ADDRS["primary"], NS_ADDRS["secondary"], NS_ADDRS["bait"], sock))
    d = NetnsDaemon(ns.name, conf, os.path.join(workdir, "ns.stderr"))
    procs.append(d)
    d.start()

    def nsctl(*args):
        r = subprocess.run(["ip", "netns", "exec", ns.name, MXTIERCTL, "-c", conf] + list(args),
                           capture_output=True, text=True, timeout=60, env=sanitizer_env())
        check_sanitizer_report(r.stderr, "mxtierctl %s" % " ".join(args))
        return r

    wait_until(lambda: nsctl("tier", "list").stdout.startswith("mxtierd: running"), 10, what="mxtierd in the namespace")
    out = nsctl("tier", "list").stdout
    rows = tier_rows(out)
    assert {a for a in rows if not a.startswith("fe80:")} == {"127.0.0.1", "::1"} | set(NS_ADDRS.values()), out
    for role, addr in NS_ADDRS.items():
        # Nothing answers DNS in the namespace: unknown, said as such.
        assert rows[addr] == ("tier0", role, "yes", "unknown (PTR lookup failed)"), out
    assert rows["127.0.0.1"] == ("lo", "none", "no", "-")

    # An address the interfaces do not have: the daemon cannot listen, nothing changes.
    before = read(conf)
    r = nsctl("tier", "set", "2001:db8::99", "bait")
    assert r.returncode == 1 and "cannot listen on 2001:db8::99 port 2525 (bait)" in r.stderr, r.stdout + r.stderr
    assert read(conf) == before
    # Once the interface has it, the same command works.
    ns.sh("ip", "addr", "add", "2001:db8::99/64", "dev", "tier0", "nodad")
    r = nsctl("tier", "set", "2001:db8::99", "bait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert tier_rows(nsctl("tier", "list").stdout)["2001:db8::99"][:3] == ("tier0", "bait", "yes")
    assert read(conf).decode() == before.decode().replace("bait_ips = 2001:db8::12",
                                                          "bait_ips = 2001:db8::12, 2001:db8::99")


def test_a_refusal_that_may_quote_the_database_stays_in_the_parent(procs, workdir, backend):
    """In the split the engine never holds the conninfo, not even quoted in a refusal."""
    if os.geteuid() != 0:
        pytest.skip("the privilege split needs root")
    d = CommentedDaemon(workdir, backend.port, {"control_socket": os.path.join(workdir, "db.sock")}, name="dbq")
    d.control_socket = d.config["control_socket"]
    procs.append(d)
    d.start()
    good = read(d.conf_path)
    with open(d.conf_path, "ab") as f:
        f.write(b"database postgresql://mxtier:s3cret@db.example/mxtier\n")     # '=' forgotten
    line = good.decode().count("\n") + 1
    reply = control(d, "reload")
    assert reply == "error: reload refused: %s:%d: see the log of the privileged process\n" % (d.conf_path, line)
    assert "s3cret" in d.stderr()       # the operator still finds it, in the root process's log
