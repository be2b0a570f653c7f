"""mta_harness - a real sending MTA (a private Postfix instance) against mxtierd.

Everything runs inside one network namespace that the test creates:

* Netns: `ip netns add mxt-mta-<pid>-<n>`, lo up, /etc/netns/NS/resolv.conf
  with `nameserver 127.0.0.1`.  The test process itself enters the namespace
  (setns on its own thread) for the duration of the test, so the children it
  starts (DNS server, recording backend) and the sockets it opens are inside;
  Postfix and mxtierd are started through `ip netns exec NS` so that they also
  see the namespace's resolv.conf.  Leaving restores the original namespace.
* Dns: dns_server.py (python3-dnslib) on 127.0.0.1:53 serving a zone held as
  a python dict; change it with the helpers and `commit()`.
* Postfix: its own config, queue and data directory under the test's temp
  dir, master(8) run in the foreground (`-d`) by PID, no chroot, logging to
  DIR/maillog through postlogd; mail for tiers.test goes to
  `smtp:tiers.test:2525` (MX lookup kept, port 2525), from a chosen
  smtp_bind_address.
* NetnsDaemon: harness.Daemon (mxtierd) on the fixed tier port 2525, started
  in the namespace.

Every process is stopped by its own PID; nothing here signals by name.
"""

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.dirname(HERE)
if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)

from harness import MXTIERD, PYTHON, Daemon, proc_stats, sanitizer_env, stop_pid, wait_until  # noqa: E402

IP = shutil.which("ip") or "/usr/sbin/ip"
POSTFIX_DAEMON_DIR = "/usr/lib/postfix/sbin"
POSTFIX = "/usr/sbin/postfix"
SENDMAIL = "/usr/sbin/sendmail"
DNS_SERVER = os.path.join(HERE, "dns_server.py")

NETNS_PREFIX = "mxt-mta-"
TIER_PORT = 2525
DOMAIN = "tiers.test"

PRIMARY, SECONDARY, BAIT = "127.0.0.10", "127.0.0.11", "127.0.0.12"
GOOD_CLIENT = "127.0.0.20"          # good.sender.test, forward-confirmed rDNS
NO_RDNS_CLIENT = "127.0.0.21"       # no PTR; listed in bl.test
GOOD_CLIENT_NAME = "good.sender.test"

STANDARD_MX = {
    "mx10.tiers.test": (10, PRIMARY),
    "mx20.tiers.test": (20, SECONDARY),
    "mx30.tiers.test": (30, BAIT),
}


def default_zone(dns):
    """default_zone - tiers.test's three MX, the client addresses' rDNS, a DNSBL entry."""
    dns.mx(DOMAIN, STANDARD_MX)
    dns.host(GOOD_CLIENT_NAME, GOOD_CLIENT)                  # A + PTR: forward-confirmed
    dns.add("sender.mta.test", "A", GOOD_CLIENT)             # Postfix's myhostname
    dns.dnsbl("bl.test", NO_RDNS_CLIENT, "127.0.0.2", txt="listed for the mxtier tests")
    return dns

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: %s" % os.strerror(err))


PR_SET_CHILD_SUBREAPER = 36


def set_subreaper(on):
    """set_subreaper - orphaned descendants (Postfix's daemons when master exits first)
    become our children, so that we can reap them instead of leaving zombies to PID 1."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0)


def process_group_members(pgid):
    """process_group_members - PIDs whose process group is pgid (from /proc/PID/stat)."""
    return [pid for pid, fields in proc_stats() if len(fields) > 2 and int(fields[2]) == pgid]


def reap(pids, timeout=5.0):
    """reap - wait for these (orphaned, re-parented to us) PIDs to exit and reap them."""
    deadline = time.monotonic() + timeout
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:       # not our child (or already reaped): just wait for it
                done = pid if not os.path.exists("/proc/%d" % pid) else 0
            if done:
                pending.discard(pid)
        if pending:
            time.sleep(0.05)
    return sorted(pending)


def listening(addr, port):
    """listening - a TCP listener on addr:port in this thread's network namespace (no connect,
    so no session and no contact history in mxtierd)."""
    want = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(addr.split("."))), port)
    try:
        with open("/proc/thread-self/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def run(cmd, timeout=30, check=True):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s" % (" ".join(cmd), p.returncode,
                                                     p.stdout.decode(errors="replace")))
    return p.stdout.decode(errors="replace")


def why_unavailable():
    """why_unavailable - None when the MTA tests can run here, else the reason to skip."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, Postfix, DNS on port 53)"
    if not os.path.exists(IP):
        return "no ip(8) (iproute2)"
    for path in (POSTFIX, SENDMAIL, os.path.join(POSTFIX_DAEMON_DIR, "master"),
                 os.path.join(POSTFIX_DAEMON_DIR, "postlogd")):
        if not os.access(path, os.X_OK):
            return "Debian's postfix package is not installed (%s missing)" % path
    try:
        subprocess.run([PYTHON, "-c", "import dnslib"], check=True, timeout=20,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired):
        return "python3-dnslib is not installed for %s" % PYTHON
    # can we make (and delete) a namespace at all?  (containers often cannot)
    name = "%sprobe-%d" % (NETNS_PREFIX, os.getpid())
    p = subprocess.run([IP, "netns", "add", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        return "`ip netns add` is unavailable: %s" % p.stdout.decode(errors="replace").strip()
    subprocess.run([IP, "netns", "del", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return None


def remove_stale_namespaces():
    """remove_stale_namespaces - mxt-mta-<pid>-* left by a test run that no longer exists."""
    try:
        names = [l.split()[0] for l in run([IP, "netns", "list"], check=False).splitlines() if l.strip()]
    except Exception:
        return
    for name in names:
        m = re.match(re.escape(NETNS_PREFIX) + r"(\d+)-", name)
        if not m or int(m.group(1)) == os.getpid() or os.path.exists("/proc/%s" % m.group(1)):
            continue
        subprocess.run([IP, "netns", "del", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree("/etc/netns/" + name, ignore_errors=True)


class Netns:
    """Netns - a network namespace with only lo, and its /etc/netns/NAME files."""

    count = 0

    def __init__(self):
        Netns.count += 1
        self.name = "%s%d-%d" % (NETNS_PREFIX, os.getpid(), Netns.count)
        self.etc = "/etc/netns/" + self.name
        self.created = False
        self.home_fd = None

    def create(self):
        run([IP, "netns", "add", self.name])
        self.created = True
        run([IP, "-n", self.name, "link", "set", "lo", "up"])
        os.makedirs(self.etc, exist_ok=True)
        with open(os.path.join(self.etc, "resolv.conf"), "w") as f:
            f.write("# mxtier MTA test namespace %s\nnameserver 127.0.0.1\noptions timeout:1 attempts:2\n"
                    % self.name)
        with open(os.path.join(self.etc, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
        return self

    def enter(self):
        """enter - move this (test) thread into the namespace; children inherit it."""
        self.home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)

    def leave(self):
        if self.home_fd is None:
            return
        try:
            _setns(self.home_fd)
        finally:
            os.close(self.home_fd)
            self.home_fd = None

    def exec_prefix(self):
        return [IP, "netns", "exec", self.name]

    def destroy(self):
        try:
            self.leave()
        except OSError as e:        # still delete the namespace and its files
            print("leaving netns %s: %s" % (self.name, e))
        if self.created:
            subprocess.run([IP, "netns", "del", self.name], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.created = False
        shutil.rmtree(self.etc, ignore_errors=True)
        try:
            os.rmdir("/etc/netns")      # only when empty: other namespaces keep theirs
        except OSError:
            pass


# -- DNS -------------------------------------------------------------------------

def ptr_name(addr):
    return ".".join(reversed(addr.split("."))) + ".in-addr.arpa"


class Dns:
    """Dns - dns_server.py on 127.0.0.1:53 in the namespace; zone = dict name -> {type: [values]}."""

    def __init__(self, workdir):
        self.zone_path = os.path.join(workdir, "zone.json")
        self.log_path = os.path.join(workdir, "dns.log")
        self.stderr_path = os.path.join(workdir, "dns.stderr")
        self.zone = {}
        self.proc = None

    # zone helpers; call commit() (or start()) to publish
    def add(self, name, rtype, value):
        self.zone.setdefault(name.lower().rstrip("."), {}).setdefault(rtype.upper(), []).append(value)
        return self

    def remove(self, name, rtype=None):
        name = name.lower().rstrip(".")
        if rtype is None:
            self.zone.pop(name, None)
        else:
            self.zone.get(name, {}).pop(rtype.upper(), None)
        return self

    def host(self, name, addr, ptr=True):
        """host - A record, and (ptr=True) the matching PTR: forward-confirmed rDNS."""
        self.add(name, "A", addr)
        if ptr:
            self.add(ptr_name(addr), "PTR", name)
        return self

    def ptr(self, addr, name):
        return self.add(ptr_name(addr), "PTR", name)

    def mx(self, domain, mx_map):
        """mx(domain, {"mx10.tiers.test": (10, "127.0.0.10"), ...}) - replace the MX set and hosts' A records."""
        self.remove(domain, "MX")
        for host, (pref, addr) in mx_map.items():
            self.add(domain, "MX", [pref, host])
            self.remove(host, "A")
            self.add(host, "A", addr)
        return self

    def dnsbl(self, zone, addr, answer="127.0.0.2", txt=None):
        name = ".".join(reversed(addr.split("."))) + "." + zone
        self.add(name, "A", answer)
        if txt:
            self.add(name, "TXT", txt)
        return self

    def commit(self):
        tmp = self.zone_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.zone, f, indent=1, sort_keys=True)
        os.replace(tmp, self.zone_path)
        return self

    def start(self):
        self.commit()
        self.proc = subprocess.Popen([PYTHON, DNS_SERVER, "--zone", self.zone_path, "--log", self.log_path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=open(self.stderr_path, "wb"))
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY"):
            self.stop()
            raise AssertionError("DNS server did not start: %r %s" % (line, self.stderr()))
        return self

    def stop(self):
        if self.proc is None:
            return None
        rc = stop_pid(self.proc, timeout=5)
        self.proc.stdout.close()
        return rc

    def stderr(self):
        try:
            return open(self.stderr_path, errors="replace").read()
        except FileNotFoundError:
            return ""

    def queries(self):
        try:
            return open(self.log_path, errors="replace").read().splitlines()
        except FileNotFoundError:
            return []


# -- mxtierd in the namespace --------------------------------------------------

class NetnsDaemon(Daemon):
    """NetnsDaemon - harness.Daemon on port 2525, started with `ip netns exec NS`."""

    def __init__(self, workdir, backend_port, netns, config=None, name="mxtierd"):
        config = dict(config or {})
        config.setdefault("listen_port", str(TIER_PORT))
        super().__init__(workdir, backend_port, config, name=name)
        self.port = int(self.config["listen_port"])
        self.netns = netns

    def start(self):
        if not os.access(MXTIERD, os.X_OK):
            raise AssertionError("%s is not built (run make)" % MXTIERD)
        self.write_config()
        self.proc = subprocess.Popen(self.netns.exec_prefix() + [MXTIERD, "-c", self.conf_path],
                                     stdout=open(self.stdout_path, "wb"),
                                     stderr=open(self.stderr_path, "wb"),
                                     stdin=subprocess.DEVNULL, env=sanitizer_env())
        addrs = [a for key in ("primary_ips", "secondary_ips", "bait_ips")
                 for a in self.config.get(key, "").replace(",", " ").split()]

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("mxtierd exited with %s during start:\n%s"
                                     % (self.proc.returncode, self.stderr()))
            return all(listening(a, self.port) for a in addrs)
        wait_until(ready, 10, what="mxtierd listening on %s port %d" % (addrs, self.port))
        return self

    def mail_sessions(self):
        """mail_sessions - session lines of real clients (not the readiness probes from 127.0.0.1)."""
        return [s for s in self.sessions() if not s.get("client", "").startswith("127.0.0.1:")]

    def wait_session(self, predicate, timeout=10.0, what="session"):
        """wait_session - the first session log line (dict) for which predicate(s) is true."""
        def find():
            for s in self.mail_sessions():
                if predicate(s):
                    return s
            return None
        try:
            return wait_until(find, timeout, interval=0.1, what=what)
        except AssertionError as e:
            raise AssertionError("%s\n---- mxtierd stderr ----\n%s" % (e, self.stderr()[-4000:]))


def mxtierd_settings(extra=None):
    """mxtierd_settings - `mxtierd -n` output as a dict (for feature probes), {} if it fails."""
    import tempfile
    d = tempfile.mkdtemp(prefix="mxtier-probe-")
    try:
        conf = os.path.join(d, "probe.conf")
        with open(conf, "w") as f:
            f.write("primary_ips = 127.0.0.10\nlisten_port = %d\n" % TIER_PORT)
            for k, v in (extra or {}).items():
                f.write("%s = %s\n" % (k, v))
        try:
            p = subprocess.run([MXTIERD, "-c", conf, "-n"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=10, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        if p.returncode != 0:
            return {}
        out = {}
        for line in p.stdout.decode(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip()
        return out
    finally:
        shutil.rmtree(d, ignore_errors=True)


# -- Postfix -------------------------------------------------------------------

MASTER_CF = """\
# private test instance: no chroot, no inet listener
pickup    unix  n       -       n       1       1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

POSTFIX_LOG_LINE = re.compile(r"postfix-mxt\S*/(?P<prog>[\w/-]+)\[\d+\]: (?P<text>.*)$")


class Postfix:
    """Postfix - a private Postfix instance in the namespace, sending from client_addr."""

    def __init__(self, workdir, netns, client_addr, name="postfix", settings=None, tier_port=TIER_PORT):
        self.netns = netns
        self.tier_port = tier_port
        self.client_addr = client_addr
        self.base = os.path.join(workdir, name)
        self.config_dir = os.path.join(self.base, "etc")
        self.queue_dir = os.path.join(self.base, "spool")
        self.data_dir = os.path.join(self.base, "data")
        self.maillog = os.path.join(self.base, "maillog")
        self.stderr_path = os.path.join(self.base, "master.stderr")
        self.settings = dict(settings or {})
        self.proc = None
        self.sent = 0

    def main_cf(self):
        cf = {
            "compatibility_level": "3.6",
            "config_directory": self.config_dir,
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": "postfix-mxt",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.base,
            "myhostname": "sender.mta.test",
            "mydomain": "mta.test",
            "myorigin": "mta.test",
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "relayhost": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "smtp_bind_address": self.client_addr,
            "smtp_helo_name": "$myhostname",
            "smtp_host_lookup": "dns",
            "smtp_dns_support_level": "enabled",
            "default_transport": "smtp",
            "transport_maps": "texthash:%s/transport" % self.config_dir,
            "smtp_tls_security_level": "none",
            "smtp_connect_timeout": "2s",
            "smtp_helo_timeout": "15s",
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "10s",
            "queue_run_delay": "5s",
            "bounce_queue_lifetime": "0",
            "maximal_queue_lifetime": "1h",
            "delay_warning_time": "0",
            "notify_classes": "",
            "biff": "no",
            "smtputf8_enable": "no",
            "alias_maps": "",
            "alias_database": "",
            "shlib_directory": "/usr/lib/postfix",
            "meta_directory": "/etc/postfix",
            "daemon_directory": POSTFIX_DAEMON_DIR,
            "command_directory": "/usr/sbin",
            "default_database_type": "hash",
            "authorized_submit_users": "static:anyone",
        }
        cf.update(self.settings)
        return cf

    def write_config(self):
        for d in (self.base, self.config_dir, self.data_dir, self.queue_dir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write("# private Postfix instance of tests/integration/mta\n")
            for k, v in self.main_cf().items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(MASTER_CF)
        with open(os.path.join(self.config_dir, "transport"), "w") as f:
            # smtp:DOMAIN:PORT keeps the MX lookup ([host] would skip it)
            f.write("%s smtp:%s:%d\n" % (DOMAIN, DOMAIN, self.tier_port))
        import pwd
        pw = pwd.getpwnam("postfix")
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)

    # queue directories as Debian's /etc/postfix/postfix-files lays them out
    # (what `postfix check` creates through post-install, which takes seconds)
    QUEUE_DIRS = (
        ("active", "postfix", None, 0o700), ("bounce", "postfix", None, 0o700),
        ("corrupt", "postfix", None, 0o700), ("defer", "postfix", None, 0o700),
        ("deferred", "postfix", None, 0o700), ("flush", "postfix", None, 0o700),
        ("hold", "postfix", None, 0o700), ("incoming", "postfix", None, 0o700),
        ("private", "postfix", None, 0o700), ("saved", "postfix", None, 0o700),
        ("trace", "postfix", None, 0o700), ("maildrop", "postfix", "postdrop", 0o730),
        ("public", "postfix", "postdrop", 0o710), ("pid", "root", None, 0o755),
    )

    def create_queue(self):
        import grp
        import pwd
        for sub, user, group, mode in self.QUEUE_DIRS:
            path = os.path.join(self.queue_dir, sub)
            os.makedirs(path, exist_ok=True)
            pw = pwd.getpwnam(user)
            gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
            os.chown(path, pw.pw_uid, gid)
            os.chmod(path, mode)

    def postfix_cmd(self, *args, check=True, timeout=30):
        return run(self.netns.exec_prefix() + [POSTFIX, "-c", self.config_dir] + list(args),
                   check=check, timeout=timeout)

    def start(self):
        self.write_config()
        self.create_queue()
        self.proc = subprocess.Popen(self.netns.exec_prefix() + [os.path.join(POSTFIX_DAEMON_DIR, "master"),
                                                                  "-c", self.config_dir, "-d"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr_path, "wb"),
                                     # -d keeps master in the foreground (our PID) but then it
                                     # does not make its own process group, which it needs to
                                     # pass SIGTERM on to its children
                                     start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("postfix master exited with %s:\n%s\n%s"
                                     % (self.proc.returncode, self.read_stderr(), self.log_text()[-3000:]))
            return os.path.exists(os.path.join(self.queue_dir, "public", "pickup")) and \
                "daemon started" in self.log_text()
        wait_until(ready, 15, interval=0.1, what="postfix master started")
        return self

    def stop(self):
        if self.proc is None:
            return None
        # master passes SIGTERM on to its process group and exits ("postfix abort");
        # its children, re-parented to us (set_subreaper), are reaped by PID
        children = [p for p in process_group_members(self.proc.pid) if p != self.proc.pid]
        rc = stop_pid(self.proc, timeout=10)
        left = reap(children)
        if left:
            raise AssertionError("Postfix processes still running after master exited: %s" % left)
        return rc

    def read_stderr(self):
        try:
            return open(self.stderr_path, errors="replace").read()
        except FileNotFoundError:
            return ""

    def log_text(self):
        try:
            return open(self.maillog, errors="replace").read()
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def send(self, rcpt="user@%s" % DOMAIN, sender="sender@x.test", subject=None, body="hello\n"):
        """send - inject one message with sendmail(1); returns the Message-ID."""
        self.sent += 1
        msgid = "<mxt-%d-%d-%d@mta.test>" % (os.getpid(), self.sent, int(time.time() * 1000))
        subject = subject or "mxtier MTA test %d" % self.sent
        msg = ("From: %s\nTo: %s\nSubject: %s\nMessage-ID: %s\n\n%s"
               % (sender, rcpt, subject, msgid, body)).encode()
        p = subprocess.run(self.netns.exec_prefix() + [SENDMAIL, "-C", self.config_dir, "-f", sender, "-i", rcpt],
                           input=msg, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        if p.returncode != 0:
            raise AssertionError("sendmail exited %d: %s" % (p.returncode, p.stdout.decode(errors="replace")))
        return msgid

    def queue_id(self, msgid, timeout=10.0):
        """queue_id - the Postfix queue ID that cleanup logged for this Message-ID."""
        pat = re.compile(r"(?P<qid>[0-9A-Za-z]+): message-id=%s" % re.escape(msgid))

        def find():
            m = pat.search(self.log_text())
            return m.group("qid") if m else None
        return wait_until(find, timeout, interval=0.1, what="cleanup log line for %s\n%s"
                          % (msgid, self.log_text()[-3000:]))

    def wait_log(self, pattern, timeout=20.0, what=None):
        """wait_log - the first maillog line matching the regex; its match object."""
        rx = re.compile(pattern)

        def find():
            for line in self.log_lines():
                m = rx.search(line)
                if m:
                    return m
            return None
        return wait_until(find, timeout, interval=0.1, what="%s\n---- maillog ----\n%s"
                          % (what or "postfix log line /%s/" % pattern, self.log_text()[-4000:]))

    def deliveries(self, qid):
        """deliveries - the smtp(8) delivery lines of one queue ID as dicts (relay, status, text)."""
        out = []
        rx = re.compile(r"/smtp\[\d+\]: %s: to=<(?P<to>[^>]*)>, relay=(?P<relay>\S+?),"
                        r".*status=(?P<status>\w+) \((?P<text>.*)\)$" % re.escape(qid))
        for line in self.log_lines():
            m = rx.search(line)
            if m:
                out.append(m.groupdict())
        return out

    def wait_delivery(self, qid, status="sent", timeout=20.0):
        def find():
            for d in self.deliveries(qid):
                if d["status"] == status:
                    return d
            return None
        return wait_until(find, timeout, interval=0.1, what="status=%s for %s\n---- maillog ----\n%s"
                          % (status, qid, self.log_text()[-4000:]))

    def smtp_lines(self, qid):
        """smtp_lines - every smtp(8) log line about this queue ID, text only."""
        return [l for l in self.log_lines() if "/smtp[" in l and (": %s: " % qid) in l]
