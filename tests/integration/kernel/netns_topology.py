"""netns_topology - three network namespaces for the kernel-rules tests and the SYN-flood bench.

    client ns      c0 -- ac     appliance ns     ab -- b0      backend ns
    10.99.1.2-9/24              10.99.1.1/24     10.99.2.1/24  10.99.2.2/24
    fd00:99:1::2-9/64           fd00:99:100::1   fd00:99:2::1  fd00:99:2::2
    fd00:99:1:1::2/64           ip_forward on
    link fd00:99:100::2         mxtierd (transparent, kernel sets)

The tier addresses (10.99.9.10/.11/.12, fd00:99:9::10/::12) are assigned to
no interface: the client ns routes them (by its default routes) to the
appliance, whose nftables table (`mxtierctl rules`, loaded with `nft -f`)
hands them to mxtierd by TPROXY; the policy routing comes from
`mxtierctl rules --routing`.  The client's IPv6 addresses live in /64s that
hold none of the appliance's own addresses (the appliance's side of the
client link is fd00:99:100::/64): mxtierd never lists a /64 that holds one
of its own addresses (proxy/privsep/kernel_parent.c), so blocking fd00:99:1::3 must not
be refused for that reason.

Namespace names carry the PID of the process that made them; `cleanup_stale`
removes only such namespaces whose process is gone (a run that was killed).
Processes are started inside a namespace with `ip netns exec`, which execs
the program, so the PID Popen returns is the program's own and it is
stopped by that PID.  Sockets are made inside a namespace with setns(2) on
this thread, then used from the original namespace as they are.
"""

import contextlib
import ctypes
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))   # tests/integration: harness.py

import harness  # noqa: E402

TOP = harness.TOP
MXTIERCTL = os.path.join(os.environ.get("MXTIER_BUILD") or os.path.join(TOP, "build"), "mxtierctl")
MXTIERD = harness.MXTIERD
NS_PREFIX = "mxk"
CLONE_NEWNET = 0x40000000

# Addresses (all inside the namespaces made here).
APPLIANCE_CLIENT_SIDE4 = "10.99.1.1"
APPLIANCE_CLIENT_SIDE6 = "fd00:99:100::1"
CLIENT_LINK6 = "fd00:99:100::2"
APPLIANCE_BACKEND_SIDE4 = "10.99.2.1"
APPLIANCE_BACKEND_SIDE6 = "fd00:99:2::1"
BACKEND4 = "10.99.2.2"
BACKEND6 = "fd00:99:2::2"
CLIENTS4 = ["10.99.1.%d" % i for i in range(2, 10)]
CLIENTS6 = ["fd00:99:1::%d" % i for i in range(2, 10)]
CLIENT6_OTHER64 = "fd00:99:1:1::2"
PRIMARY4, SECONDARY4, BAIT4 = "10.99.9.10", "10.99.9.11", "10.99.9.12"
PRIMARY6, BAIT6 = "fd00:99:9::10", "fd00:99:9::12"
SMTP_PORT = 25
TABLE = "mxtier"


def missing_prerequisites():
    """missing_prerequisites - why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables, TPROXY)"
    for tool in ("ip", "nft"):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")):
            return "`%s` is not installed" % tool
    for binary in (MXTIERD, MXTIERCTL):
        if not os.access(binary, os.X_OK):
            return "%s is not built (run make)" % binary
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if r.returncode != 0:
        return "`ip netns` does not work here: %s" % r.stderr.strip()
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


@contextlib.contextmanager
def in_netns(name):
    """in_netns - run the block (socket creation) in network namespace `name` on this thread."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/" + name, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def run(cmd, check=True, timeout=20, input=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def cleanup_stale():
    """cleanup_stale - delete namespaces of this kind whose creating process is gone."""
    r = run(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s(\d+)-[0-9a-f]+-(cli|app|bk)$" % NS_PREFIX, name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            run(["ip", "netns", "del", name], check=False)


class Topology:
    """Topology - the client, appliance and backend namespaces and their links."""

    def __init__(self):
        tag = "%s%d-%s" % (NS_PREFIX, os.getpid(), os.urandom(3).hex())
        self.cli, self.app, self.bk = tag + "-cli", tag + "-app", tag + "-bk"
        self.made = []

    # -- life cycle ---------------------------------------------------------------

    def create(self):
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise
        return self

    def _create(self):
        for ns in (self.cli, self.app, self.bk):
            run(["ip", "netns", "add", ns])
            self.made.append(ns)
            self.ip(ns, "link", "set", "lo", "up")
        run(["ip", "link", "add", "name", "ac", "netns", self.app, "type", "veth",
             "peer", "name", "c0", "netns", self.cli])
        run(["ip", "link", "add", "name", "ab", "netns", self.app, "type", "veth",
             "peer", "name", "b0", "netns", self.bk])
        a, c, b = self.app, self.cli, self.bk
        self.ip(a, "addr", "add", APPLIANCE_CLIENT_SIDE4 + "/24", "dev", "ac")
        self.ip(a, "addr", "add", APPLIANCE_CLIENT_SIDE6 + "/64", "dev", "ac", "nodad")
        self.ip(a, "addr", "add", APPLIANCE_BACKEND_SIDE4 + "/24", "dev", "ab")
        self.ip(a, "addr", "add", APPLIANCE_BACKEND_SIDE6 + "/64", "dev", "ab", "nodad")
        self.ip(c, "addr", "add", CLIENT_LINK6 + "/64", "dev", "c0", "nodad")
        for addr in CLIENTS4:
            self.ip(c, "addr", "add", addr + "/24", "dev", "c0")
        for addr in CLIENTS6 + [CLIENT6_OTHER64]:
            self.ip(c, "addr", "add", addr + "/64", "dev", "c0", "nodad")
        self.ip(b, "addr", "add", BACKEND4 + "/24", "dev", "b0")
        self.ip(b, "addr", "add", BACKEND6 + "/64", "dev", "b0", "nodad")
        for ns, dev in ((a, "ac"), (a, "ab"), (c, "c0"), (b, "b0")):
            self.ip(ns, "link", "set", dev, "up")
        # The client and the backend reach everything through the appliance.
        self.ip(c, "route", "add", "default", "via", APPLIANCE_CLIENT_SIDE4)
        self.ip(c, "-6", "route", "add", "default", "via", APPLIANCE_CLIENT_SIDE6)
        self.ip(b, "route", "add", "default", "via", APPLIANCE_BACKEND_SIDE4)
        self.ip(b, "-6", "route", "add", "default", "via", APPLIANCE_BACKEND_SIDE6)
        self.ip(a, "-6", "route", "add", "fd00:99:1::/48", "via", CLIENT_LINK6)
        self.exec(a, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

    def destroy(self):
        """destroy - delete the namespaces (callers stop their processes first)."""
        errors = []
        for ns in reversed(self.made):
            r = run(["ip", "netns", "del", ns], check=False)
            if r.returncode != 0:
                errors.append("%s: %s" % (ns, r.stderr.strip()))
        self.made = []
        return errors

    # -- commands -----------------------------------------------------------------

    def ip(self, ns, *args, check=True):
        return run(["ip", "-n", ns] + list(args), check=check)

    def exec(self, ns, *cmd, check=True, timeout=20, input=None):
        return run(["ip", "netns", "exec", ns] + list(cmd), check=check, timeout=timeout, input=input)

    def nft(self, *args, check=True, input=None):
        return self.exec(self.app, "nft", *args, check=check, input=input)

    def load_ruleset(self, conf_path):
        """load_ruleset - `mxtierctl -c CONF rules` into the appliance with `nft -f`; returns the text."""
        text = run([MXTIERCTL, "-c", conf_path, "rules"]).stdout
        self.nft("-f", "-", input=text)
        return text

    def load_routing(self, conf_path):
        """load_routing - run each line of `mxtierctl rules --routing` in the appliance ns."""
        text = run([MXTIERCTL, "-c", conf_path, "rules", "--routing"]).stdout
        for line in text.splitlines():
            words = shlex.split(line)
            if not words or words[0].startswith("#"):
                continue
            if words[0] != "ip":
                raise AssertionError("unexpected routing line %r" % line)
            self.ip(self.app, *words[1:])
        return text

    def set_elements(self, name, table=TABLE):
        """set_elements - {element: (timeout s, expires s)} of `nft -j list set inet TABLE NAME`."""
        r = self.nft("-j", "list", "set", "inet", table, name, check=False)
        if r.returncode != 0:
            return None
        out = {}
        for item in json.loads(r.stdout)["nftables"]:
            for e in item.get("set", {}).get("elem", []):
                e = e["elem"] if isinstance(e, dict) and "elem" in e else e
                if isinstance(e, dict):
                    out[e["val"]] = (e.get("timeout"), e.get("expires"))
                else:
                    out[e] = (None, None)
        return out

    def set_text(self, name, table=TABLE):
        return self.nft("list", "set", "inet", table, name, check=False).stdout

    # -- clients ------------------------------------------------------------------

    def socket(self, family=socket.AF_INET, kind=socket.SOCK_STREAM, proto=0):
        with in_netns(self.cli):
            return socket.socket(family, kind, proto)

    def smtp(self, source, host=PRIMARY4, timeout=3.0, port=SMTP_PORT):
        """smtp - a harness.SmtpClient from `source` in the client ns (raises socket.timeout)."""
        with in_netns(self.cli):
            return harness.SmtpClient(port, host=host, source=source, timeout=timeout)

    def connect_outcome(self, source, host=PRIMARY4, timeout=1.5, port=SMTP_PORT):
        """connect_outcome - ("banner", text) | ("timeout", None) | ("error", errno text)."""
        try:
            c = self.smtp(source, host, timeout, port)
        except socket.timeout:
            return ("timeout", None)
        except OSError as e:
            return ("error", "%s" % e)
        try:
            return ("banner", c.greeting(timeout=3).text)
        except (socket.timeout, EOFError, OSError) as e:
            return ("error", "no greeting: %s" % e)
        finally:
            c.close()


class NsDaemon(harness.Daemon):
    """NsDaemon - mxtierd inside the appliance namespace on the routed tier addresses."""

    def __init__(self, topo, workdir, config=None, name="mxtierd"):
        super().__init__(workdir, SMTP_PORT, config=None, name=name)
        self.topo = topo
        self.port = SMTP_PORT
        self.config = dict(harness.BASE_CONFIG)
        self.config.update({
            "primary_ips": "%s, %s" % (PRIMARY4, PRIMARY6),
            "secondary_ips": SECONDARY4,
            "bait_ips": "%s, %s" % (BAIT4, BAIT6),
            "listen_port": str(SMTP_PORT),
            "backend": "%s:%d" % (BACKEND4, SMTP_PORT),
            "transparent": "yes",
            "kernel_sets": "yes",
            "nft_table": TABLE,
            "block_ttl": "4s",
            "control_socket": os.path.join(workdir, name + ".ctl"),
        })
        self.config.update({k: str(v) for k, v in (config or {}).items()})

    def start(self):
        self.write_config()
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.topo.app, MXTIERD, "-c", self.conf_path],
                                     stdout=open(self.stdout_path, "wb"), stderr=open(self.stderr_path, "wb"),
                                     stdin=subprocess.DEVNULL, env=harness.sanitizer_env())

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("mxtierd exited with %s during start:\n%s" % (self.proc.returncode, self.stderr()))
            return "mxtierd started:" in self.stderr() and self.ctl_ok("status")
        harness.wait_until(ready, 10, what="mxtierd started in %s" % self.topo.app)
        return self

    def ctl(self, *args, check=True):
        """ctl - `mxtierctl -c CONF ARGS...`; its stdout (check=False: stdout + stderr, errors included)."""
        r = run([MXTIERCTL, "-c", self.conf_path] + list(args), check=False)
        if not check:
            return r.stdout + r.stderr
        if r.returncode != 0 or not r.stdout.startswith("ok"):
            raise AssertionError("mxtierctl %s: rc=%d %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r.stdout

    def ctl_ok(self, *args):
        r = run([MXTIERCTL, "-c", self.conf_path] + list(args), check=False)
        return r.returncode == 0 and r.stdout.startswith("ok")

    def sessions_from(self, addr):
        """sessions_from - session log lines whose client is addr (any port)."""
        out = []
        for s in self.sessions():
            client = s.get("client", "")
            host = client.rsplit(":", 1)[0] if ":" in client else client
            if host == addr:
                out.append(s)
        return out

    def cpu_ticks(self):
        """cpu_ticks - utime + stime of the daemon from /proc/PID/stat (clock ticks): the started
        PID and, when mxtierd split into a privileged parent and an SMTP engine, its children."""
        total = 0
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % name) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(name) == self.proc.pid or int(fields[1]) == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total


class NsBackend(harness.RecordingBackend):
    """NsBackend - recording_backend.py inside the backend namespace on BACKEND4:25 (and [BACKEND6]:25 unused)."""

    def __init__(self, topo, workdir, args=(), name="backend"):
        super().__init__(workdir, args, name=name)
        self.topo = topo

    def start(self):
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.topo.bk, harness.PYTHON, harness.RECORDING_BACKEND,
                                      "--dir", self.dir, "--verbose", "--host", BACKEND4, "--port", str(SMTP_PORT)]
                                     + self.args,
                                     stdout=subprocess.PIPE, stderr=open(self.stderr_path, "wb"),
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            self.stop()
            raise AssertionError("recording backend did not start: %r %s" % (line, open(self.stderr_path).read()))
        self.port = int(line.split()[1])
        return self

    def peers(self):
        return [c.get("peer", "") for c in self.connections()]


def stop_all(procs):
    """stop_all - stop each started child by its PID, newest first; raises
    only a sanitizer report, and only once every child is stopped."""
    reports = []
    for p in reversed(procs):
        try:
            p.stop()
        except harness.SanitizerReport as e:
            reports.append(e)
        except Exception as e:      # keep stopping the others
            print("stopping %r: %s" % (p, e), file=sys.stderr)
    del procs[:]
    if reports:
        raise reports[0]


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    return harness.wait_until(predicate, timeout, interval, what)


__all__ = ["Topology", "NsDaemon", "NsBackend", "in_netns", "missing_prerequisites", "cleanup_stale",
           "stop_all", "wait_for", "signal", "time"]


@contextlib.contextmanager
def topology(skip):
    """topology - a Topology made for a block and destroyed after it; skip(why) when it cannot be made."""
    why = missing_prerequisites()
    if why:
        skip(why)
    cleanup_stale()
    t = Topology().create()
    try:
        yield t
    finally:
        errors = t.destroy()
        assert not errors, "could not delete namespaces: %s" % errors
