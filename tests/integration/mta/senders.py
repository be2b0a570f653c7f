"""senders - the four real sending MTAs of the MTA matrix, behind one interface.

Postfix 3.7 is Debian's installed package (mta_harness.Postfix); Exim 4.96,
OpenSMTPD 6.8 and Sendmail 8.17 conflict with it as packages, so
tests/integration/mta/fetch-mtas unpacks them into a cache directory
(MXTIER_MTA_CACHE, default /var/cache/mxtier-test-mtas) and each class here
runs the binary from there with a private configuration and spool under the
test's temp dir, inside the test's network namespace (`ip netns exec`):

* Exim: `exim4 -C CONF -bdf -q5s` (foreground daemon, queue run every 5 s,
  retry rule `* * F,5m,5s`), messages submitted with `exim4 -C CONF -odi`
  (the first delivery attempt runs in the submitting process, as Exim's
  default background delivery would).  Exim gives up root for -C (it runs as
  Debian-exim then, which is all a remote delivery needs).  Log:
  DIR/log/mainlog.
* Sendmail: sendmail.cf built with m4 from sendmail-cf's files and a .mc of
  our own (queue, pid, aliases under DIR, client address, short timeouts,
  MinQueueAge 0); `sendmail -C CF -bD -q5s` in the foreground, messages
  submitted with `sendmail -C CF -odi`.  Sendmail logs only through
  syslog(3): in its own mount namespace (the one `ip netns exec` makes) a
  private directory is bound over /dev holding the usual device nodes (bind
  mounts) and `log`, a link to a datagram socket that a thread of the test
  process reads into DIR/maillog.  The host's /dev is not touched.
* OpenSMTPD: `smtpd -d -v -f CONF` (stderr is the log).  Its spool
  (/var/spool/smtpd) and control socket (/var/run/smtpd.sock) are compiled
  in: in its mount namespace a private spool is bound over /var/spool/smtpd
  (the empty mount point fetch-mtas makes) and a private directory over /run.
  smtpctl runs in the same namespaces through nsenter.  Messages are
  submitted by SMTP to its listener on 127.0.0.1:10027.  Its retry timer is
  compiled in (400 s, then n^2): kick() runs `smtpctl schedule all`.  lo gets
  127.0.0.2 too (its resolver's AI_ADDRCONFIG finds no A records when the
  only address is 127.0.0.1).
* Postfix: mta_harness.Postfix delivering with the MX lookup on port 25.

Common interface: start(), stop(), send(rcpt, sender) -> Message-ID,
outcomes(rcpt) -> [("sent"|"deferred"|"bounced", log line)] in log order,
queue_count(), kick() (force a queue run where timers are not compressible),
log_text(), debug_text().  Every process is stopped by its own PID: the
main one, then whatever of its descendants (seen before it was signalled)
is still there.
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time

from harness import proc_stats, stop_pid
from mta_harness import IP, Postfix, run

CACHE = os.environ.get("MXTIER_MTA_CACHE") or "/var/cache/mxtier-test-mtas"
# the senders' envelope domain: its MX is a recording backend (conftest start_bounce_sink),
# so every DSN a sender generates is seen there
BOUNCE_DOMAIN = "bounce.test"
BOUNCE_SINK = "127.0.0.30"
FETCH_MTAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fetch-mtas")
HELO_NAME = "sender.mta.test"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
M4 = shutil.which("m4") or "/usr/bin/m4"


def make_message(msgid, rcpt, sender, subject, body):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n\r\n%s"
            % (sender, rcpt, subject, msgid, body.replace("\n", "\r\n"))).encode()


_msg_counter = [0]


def new_msgid(kind):
    _msg_counter[0] += 1
    return "<mxt-%s-%d-%d-%d@mta.test>" % (kind, os.getpid(), _msg_counter[0], int(time.time() * 1000))


def descendants(pid):
    """descendants - every process below pid (by parent links), deepest last."""
    parent = {}
    for child, fields in proc_stats():
        try:
            parent[child] = int(fields[1])
        except (IndexError, ValueError):
            pass
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out.extend(kids)
        frontier.extend(kids)
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def stop_tree(proc, timeout=10.0):
    """stop_tree - SIGTERM proc (by PID), then its former descendants still alive (by PID);
    orphans come to us (PR_SET_CHILD_SUBREAPER in conftest) and are reaped here."""
    if proc is None:
        return None
    below = descendants(proc.pid)
    rc = stop_pid(proc, timeout=timeout)
    deadline = time.monotonic() + 5
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in below:
            if alive(pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        while time.monotonic() < deadline and any(alive(p) for p in below):
            time.sleep(0.05)
        deadline = time.monotonic() + 2
    for pid in below:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return rc


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def count_files(top, match=lambda name: True):
    n = 0
    for dirpath, _dirs, files in os.walk(top):
        n += sum(1 for f in files if match(f))
    return n


class Sender:
    """Sender - what the matrix tests need of a sending MTA."""

    kind = None
    label = None
    submission_port = None

    def __init__(self, workdir, netns, client_addr, name):
        self.netns = netns
        self.client_addr = client_addr
        self.base = os.path.join(workdir, name)
        os.makedirs(self.base, exist_ok=True)
        os.chmod(self.base, 0o755)
        self.proc = None
        self.submitters = []

    @classmethod
    def why_unavailable(cls):
        return None

    def kick(self):
        """kick - make the MTA retry its queue now (only where retry timers cannot be compressed)."""

    def outcomes(self, rcpt):
        raise NotImplementedError

    def queue_count(self):
        raise NotImplementedError

    def log_text(self):
        raise NotImplementedError

    def debug_text(self):
        return self.log_text()[-6000:]

    def _submit(self, argv, data):
        """_submit - run a submission command (it may go on with the first delivery attempt)."""
        p = subprocess.Popen(self.netns.exec_prefix() + argv, stdin=subprocess.PIPE,
                             stdout=open(os.path.join(self.base, "submit.out"), "ab"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.submitters.append(p)
        p.stdin.write(data)
        p.stdin.close()
        return p

    def _stop_submitters(self):
        for p in self.submitters:
            stop_tree(p, timeout=5)
        self.submitters = []


def cached(*parts):
    return os.path.join(CACHE, *parts)


def cache_missing(path, what):
    if os.access(path, os.X_OK):
        return None
    return "%s is not unpacked (%s missing): run %s as root" % (what, path, FETCH_MTAS)


def user_missing(*names):
    import pwd
    for n in names:
        try:
            pwd.getpwnam(n)
        except KeyError:
            return "user %s missing: run %s as root" % (n, FETCH_MTAS)
    return None


def lib_missing(binary):
    try:
        out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=10).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return None
    missing = [l.split()[0] for l in out.splitlines() if "not found" in l]
    if missing:
        return "%s needs %s (packaging/install-deps installs them)" % (binary, ", ".join(missing))
    return None


# -- Postfix -------------------------------------------------------------------

class PostfixSender(Postfix, Sender):
    """PostfixSender - mta_harness.Postfix (the installed package) on port 25."""

    kind = "postfix"
    label = "Postfix 3.7"

    def __init__(self, workdir, netns, client_addr, name):
        Sender.__init__(self, workdir, netns, client_addr, name)
        Postfix.__init__(self, workdir, netns, client_addr, name=name, tier_port=25)

    def send(self, rcpt, sender, subject="mxtier MTA matrix", body="hello\n"):
        msgid = new_msgid(self.kind)
        p = subprocess.run(self.netns.exec_prefix() + ["/usr/sbin/sendmail", "-C", self.config_dir,
                                                      "-f", sender, "-i", rcpt],
                           input=make_message(msgid, rcpt, sender, subject, body),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        if p.returncode != 0:
            raise AssertionError("postfix sendmail exited %d: %s" % (p.returncode, p.stdout.decode(errors="replace")))
        return msgid

    RX = re.compile(r"/smtp\[\d+\]: \w+: to=<(?P<to>[^>]*)>,.*status=(?P<status>\w+) ")

    def outcomes(self, rcpt):
        out = []
        for line in self.log_lines():
            m = self.RX.search(line)
            if m and m.group("to") == rcpt and m.group("status") in ("sent", "deferred", "bounced"):
                out.append((m.group("status"), line))
        return out

    def queue_count(self):
        return sum(count_files(os.path.join(self.queue_dir, d))
                   for d in ("maildrop", "incoming", "active", "deferred", "hold"))

    def debug_text(self):
        return self.log_text()[-6000:]


# -- Exim ------------------------------------------------------------------------

EXIM = cached("exim", "usr", "sbin", "exim4")

EXIM_CONF = """\
# private Exim of tests/integration/mta (senders.Exim)
exim_path = {exim}
keep_environment =
primary_hostname = {helo}
qualify_domain = mta.test
spool_directory = {base}/spool
log_file_path = {base}/log/%slog
pid_file_path = {base}/exim.pid
exim_user = Debian-exim
exim_group = Debian-exim
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
disable_ipv6 = true
tls_advertise_hosts =
log_selector = +smtp_connection +outgoing_port +outgoing_interface +deliver_time \\
  +queue_time +delivery_size +smtp_protocol_error +smtp_syntax_error +pipelining
acl_smtp_rcpt = acl_rcpt
timeout_frozen_after = 1h
ignore_bounce_errors_after = 1h
queue_run_max = 2

begin acl
acl_rcpt:
  accept

begin routers
dnslookup:
  driver = dnslookup
  transport = remote_smtp
  no_more

begin transports
remote_smtp:
  driver = smtp
  interface = {client}
  helo_data = {helo}
  connect_timeout = 2s
  command_timeout = 10s
  data_timeout = 10s
  final_timeout = 10s

begin retry
*   *   F,5m,5s

begin rewrite
"""


class Exim(Sender):
    """Exim - Debian's exim4-daemon-light from the cache, private config and spool."""

    kind = "exim"
    label = "Exim 4.96"
    submission_port = 10025

    @classmethod
    def why_unavailable(cls):
        return cache_missing(EXIM, "Exim") or user_missing("Debian-exim") or lib_missing(EXIM)

    def __init__(self, workdir, netns, client_addr, name="exim"):
        super().__init__(workdir, netns, client_addr, name)
        self.conf = os.path.join(self.base, "exim.conf")
        self.mainlog = os.path.join(self.base, "log", "mainlog")
        self.stderr_path = os.path.join(self.base, "daemon.stderr")

    def start(self):
        import pwd
        pw = pwd.getpwnam("Debian-exim")
        for d in ("spool", "log"):
            path = os.path.join(self.base, d)
            os.makedirs(path, exist_ok=True)
            os.chown(path, pw.pw_uid, pw.pw_gid)
            os.chmod(path, 0o750)
        with open(self.conf, "w") as f:
            f.write(EXIM_CONF.format(exim=EXIM, helo=HELO_NAME, base=self.base, client=self.client_addr,
                                     port=self.submission_port))
        out = run([EXIM, "-C", self.conf, "-bV"], check=False)
        if "Configuration file is" not in out and "Exim version" not in out:
            raise AssertionError("exim -bV:\n" + out)
        self.proc = subprocess.Popen(self.netns.exec_prefix() + [EXIM, "-C", self.conf, "-bdf", "-q5s"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr_path, "wb"), start_new_session=True)
        deadline = time.monotonic() + 10
        while "daemon started" not in self.log_text() and "Start queue run" not in self.log_text():
            if self.proc.poll() is not None:
                raise AssertionError("exim daemon exited %s:\n%s\n%s" % (self.proc.returncode,
                                                                        read(self.stderr_path), self.log_text()))
            if time.monotonic() > deadline:
                raise AssertionError("exim daemon did not start:\n%s" % self.log_text())
            time.sleep(0.05)
        return self

    def stop(self):
        self._stop_submitters()
        rc = stop_tree(self.proc)
        self.proc = None
        return rc

    def send(self, rcpt, sender, subject="mxtier MTA matrix", body="hello\n"):
        msgid = new_msgid(self.kind)
        self._submit([EXIM, "-C", self.conf, "-odi", "-f", sender, "--", rcpt],
                     make_message(msgid, rcpt, sender, subject, body))
        # accepted once the reception is logged (the same process then delivers)
        received = re.compile(r" <= .* id=%s(\s|$)" % re.escape(msgid.strip("<>")), re.M)
        deadline = time.monotonic() + 10
        while not received.search(self.log_text()):
            if time.monotonic() > deadline:
                raise AssertionError("exim did not log the reception of %s:\n%s\n%s"
                                     % (msgid, self.log_text()[-3000:], read(os.path.join(self.base, "submit.out"))))
            time.sleep(0.02)
        return msgid

    RX = re.compile(r"^\S+ \S+ \S+ (?P<flag>=>|==|\*\*) (?P<to>\S+) ")

    def outcomes(self, rcpt):
        """outcomes - delivery attempts: =>, == and ** lines (a queue run that skips the message
        because no host's retry time has come logs `retry time not reached`: no attempt)."""
        kinds = {"=>": "sent", "==": "deferred", "**": "bounced"}
        out = []
        for line in self.log_text().splitlines():
            m = self.RX.match(line)
            if m and m.group("to").strip("<>") == rcpt and "retry time not reached" not in line:
                out.append((kinds[m.group("flag")], line))
        return out

    def queue_count(self):
        return count_files(os.path.join(self.base, "spool", "input"), lambda f: f.endswith("-H"))

    def log_text(self):
        return read(self.mainlog)

    def debug_text(self):
        return "%s\n---- paniclog ----\n%s\n---- submit ----\n%s" % (
            self.log_text()[-6000:], read(os.path.join(self.base, "log", "paniclog"))[-1000:],
            read(os.path.join(self.base, "submit.out"))[-1000:])


# -- Sendmail --------------------------------------------------------------------

SENDMAIL_ROOT = cached("sendmail")
SENDMAIL = cached("sendmail", "usr", "libexec", "sendmail", "sendmail")
SENDMAIL_CF_DIR = cached("sendmail", "usr", "share", "sendmail", "cf")

SENDMAIL_MC = """\
divert(-1)
# private Sendmail of tests/integration/mta (senders.Sendmail)
divert(0)dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{helo}')dnl
define(`QUEUE_DIR', `{base}/mqueue')dnl
define(`confPID_FILE', `{base}/sendmail.pid')dnl
define(`STATUS_FILE', `{base}/statistics')dnl
define(`ALIAS_FILE', `{base}/aliases')dnl
define(`HELP_FILE', `{root}/etc/mail/helpfile')dnl
define(`confCW_FILE', `-o {base}/local-host-names')dnl
define(`confCT_FILE', `-o {base}/trusted-users')dnl
define(`confCR_FILE', `-o {base}/relay-domains')dnl
define(`confDEAD_LETTER_DROP', `{base}/dead.letter')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confMIN_QUEUE_AGE', `0')dnl
define(`confTO_ICONNECT', `2s')dnl
define(`confTO_CONNECT', `2s')dnl
define(`confTO_INITIAL', `10s')dnl
define(`confTO_HELO', `10s')dnl
define(`confTO_MAIL', `10s')dnl
define(`confTO_RCPT', `10s')dnl
define(`confTO_DATAINIT', `10s')dnl
define(`confTO_DATABLOCK', `10s')dnl
define(`confTO_DATAFINAL', `10s')dnl
define(`confTO_COMMAND', `10s')dnl
define(`confTO_QUIT', `5s')dnl
define(`confTO_QUEUEWARN', `1d')dnl
define(`confTO_QUEUERETURN', `5d')dnl
define(`confLOG_LEVEL', `14')dnl
define(`LOCAL_MAILER_PATH', `/bin/false')dnl
CLIENT_OPTIONS(`Family=inet, Addr={client}')dnl
FEATURE(`nocanonify')dnl
DAEMON_OPTIONS(`Family=inet, Name=MTA, Addr=127.0.0.1, Port={port}')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""

# run in the mount namespace that `ip netns exec` made: a private /dev with a
# /dev/log of our own (the host's /dev stays as it is)
PRIVATE_DEV_SH = """\
set -e
d=$1; shift
mkdir -p "$d/dev"
for n in null zero full random urandom tty; do
	[ -e "$d/dev/$n" ] || : >"$d/dev/$n"
	mount --bind "/dev/$n" "$d/dev/$n"
done
ln -sfn /proc/self/fd "$d/dev/fd"
ln -sfn "$d/log.sock" "$d/dev/log"
mount --rbind "$d/dev" /dev
exec "$@"
"""


class SyslogSink:
    """SyslogSink - a datagram socket read by a thread of the test process into a file."""

    def __init__(self, sock_path, out_path):
        self.sock_path = sock_path
        self.out_path = out_path
        self.sock = None
        self.thread = None
        self.stopping = threading.Event()

    def start(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        os.chmod(self.sock_path, 0o666)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._loop, name="syslog-sink", daemon=True)
        self.thread.start()
        return self

    def _loop(self):
        with open(self.out_path, "ab", buffering=0) as f:
            while not self.stopping.is_set():
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                f.write(data.rstrip(b"\0\n") + b"\n")

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(5)
        if self.sock:
            self.sock.close()


class Sendmail(Sender):
    """Sendmail - Debian's sendmail-bin + sendmail-cf from the cache, own .mc, queue and syslog."""

    kind = "sendmail"
    label = "Sendmail 8.17"
    submission_port = 10026

    @classmethod
    def why_unavailable(cls):
        return (cache_missing(SENDMAIL, "Sendmail") or lib_missing(SENDMAIL) or
                (None if os.access(M4, os.X_OK) else "m4 is not installed (packaging/install-deps)") or
                (None if os.path.isdir(SENDMAIL_CF_DIR) else "sendmail-cf is not unpacked: run " + FETCH_MTAS))

    def __init__(self, workdir, netns, client_addr, name="sendmail"):
        super().__init__(workdir, netns, client_addr, name)
        self.cf = os.path.join(self.base, "sendmail.cf")
        self.maillog = os.path.join(self.base, "maillog")
        self.stderr_path = os.path.join(self.base, "daemon.stderr")
        self.wrapper = os.path.join(self.base, "private-dev.sh")
        self.syslog = None

    def prefix(self):
        return self.netns.exec_prefix() + ["/bin/sh", self.wrapper, self.base]

    def start(self):
        queue = os.path.join(self.base, "mqueue")
        os.makedirs(queue, exist_ok=True)
        os.chmod(queue, 0o700)
        for f in ("aliases", "local-host-names", "trusted-users", "relay-domains", "statistics"):
            open(os.path.join(self.base, f), "a").close()
        mc = os.path.join(self.base, "sendmail.mc")
        with open(mc, "w") as f:
            f.write(SENDMAIL_MC.format(helo=HELO_NAME, base=self.base, root=SENDMAIL_ROOT,
                                       client=self.client_addr, port=self.submission_port))
        with open(self.cf, "wb") as out:
            p = subprocess.run([M4, "-D_CF_DIR_=%s/" % SENDMAIL_CF_DIR, os.path.join(SENDMAIL_CF_DIR, "m4", "cf.m4"), mc],
                               stdout=out, stderr=subprocess.PIPE, timeout=30)
        if p.returncode != 0 or p.stderr.strip():
            raise AssertionError("m4 sendmail.mc: %s" % p.stderr.decode(errors="replace"))
        with open(self.wrapper, "w") as f:
            f.write(PRIVATE_DEV_SH)
        self.syslog = SyslogSink(os.path.join(self.base, "log.sock"), self.maillog).start()
        self.proc = subprocess.Popen(self.prefix() + [SENDMAIL, "-C", self.cf, "-bD", "-q5s"],
                                     stdin=subprocess.DEVNULL, stdout=open(self.stderr_path, "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while "starting daemon" not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("sendmail daemon did not start (exit %s):\n%s\n%s"
                                     % (self.proc.poll(), read(self.stderr_path), self.log_text()))
            time.sleep(0.05)
        return self

    def stop(self):
        self._stop_submitters()
        rc = stop_tree(self.proc)
        self.proc = None
        if self.syslog:
            self.syslog.stop()
        return rc

    def send(self, rcpt, sender, subject="mxtier MTA matrix", body="hello\n"):
        msgid = new_msgid(self.kind)
        # _submit adds `ip netns exec NS`; the wrapper gives it the private /dev/log too
        self._submit(["/bin/sh", self.wrapper, self.base, SENDMAIL, "-C", self.cf, "-odi",
                      "-f", sender, "-i", rcpt],
                     make_message(msgid, rcpt, sender, subject, body))
        deadline = time.monotonic() + 10
        while ("msgid=%s" % msgid) not in self.log_text():
            if time.monotonic() > deadline:
                raise AssertionError("sendmail did not log the reception of %s:\n%s\n%s"
                                     % (msgid, self.log_text()[-3000:], read(os.path.join(self.base, "submit.out"))))
            time.sleep(0.02)
        return msgid

    RX = re.compile(r"sendmail\[\d+\]: \w+: to=<?(?P<to>[^,>]+)>?,.* stat=(?P<stat>\S+)")

    def outcomes(self, rcpt):
        out = []
        for line in self.log_text().splitlines():
            m = self.RX.search(line)
            if not m or m.group("to") != rcpt:
                continue
            dsn = re.search(r"dsn=(\d)", line)
            if m.group("stat").startswith("Sent"):
                out.append(("sent", line))
            elif dsn and dsn.group(1) == "5":
                out.append(("bounced", line))
            else:
                out.append(("deferred", line))
        return out

    def queue_count(self):
        return count_files(os.path.join(self.base, "mqueue"), lambda f: f.startswith("qf"))

    def log_text(self):
        return read(self.maillog)

    def debug_text(self):
        return "%s\n---- stderr ----\n%s\n---- submit ----\n%s" % (
            self.log_text()[-6000:], read(self.stderr_path)[-1000:],
            read(os.path.join(self.base, "submit.out"))[-1000:])


# -- OpenSMTPD -------------------------------------------------------------------

SMTPD = cached("opensmtpd", "usr", "sbin", "smtpd")
SMTPCTL = cached("opensmtpd", "usr", "sbin", "smtpctl")

SMTPD_CONF = """\
# private OpenSMTPD of tests/integration/mta (senders.OpenSmtpd)
table sources {{ {client} }}
listen on 127.0.0.1 port {port}
action "out" relay src <sources> helo {helo}
match from any for any action "out"
"""

# run in the mount namespace that `ip netns exec` made
PRIVATE_SPOOL_SH = """\
set -e
mount --bind "$1" /var/spool/smtpd
mount --bind "$2" /run
shift 2
exec "$@"
"""


class OpenSmtpd(Sender):
    """OpenSmtpd - Debian's opensmtpd from the cache; private spool and /run in its mount namespace."""

    kind = "opensmtpd"
    label = "OpenSMTPD 6.8"
    submission_port = 10027

    @classmethod
    def why_unavailable(cls):
        if not os.path.isdir("/var/spool/smtpd") or not os.path.isdir("/var/lib/opensmtpd/empty"):
            return "/var/spool/smtpd or /var/lib/opensmtpd/empty missing: run %s as root" % FETCH_MTAS
        if not os.access(NSENTER, os.X_OK):
            return "nsenter (util-linux) missing"
        why = cache_missing(SMTPD, "OpenSMTPD") or user_missing("opensmtpd", "opensmtpq") or lib_missing(SMTPD)
        if why is None and not os.stat(SMTPCTL).st_mode & 0o2000:
            why = "%s is not setgid opensmtpq: run %s as root" % (SMTPCTL, FETCH_MTAS)
        return why

    def __init__(self, workdir, netns, client_addr, name="opensmtpd"):
        super().__init__(workdir, netns, client_addr, name)
        self.conf = os.path.join(self.base, "smtpd.conf")
        self.spool = os.path.join(self.base, "spool")
        self.rundir = os.path.join(self.base, "run")
        self.log_path = os.path.join(self.base, "smtpd.log")
        self.wrapper = os.path.join(self.base, "private-spool.sh")

    def start(self):
        # its resolver asks with AI_ADDRCONFIG: without an address besides 127.0.0.1
        # it finds no A records for the MX hosts
        run(self.netns.exec_prefix() + [IP, "addr", "replace", "127.0.0.2/8", "dev", "lo"])
        os.makedirs(self.spool, exist_ok=True)
        os.chmod(self.spool, 0o711)
        os.makedirs(self.rundir, exist_ok=True)
        os.chmod(self.rundir, 0o755)
        with open(self.conf, "w") as f:
            f.write(SMTPD_CONF.format(client=self.client_addr, port=self.submission_port, helo=HELO_NAME))
        os.chmod(self.conf, 0o644)
        with open(self.wrapper, "w") as f:
            f.write(PRIVATE_SPOOL_SH)
        out = run([SMTPD, "-n", "-f", self.conf], check=False)
        if "configuration OK" not in out:
            raise AssertionError("smtpd -n: %s" % out)
        self.proc = subprocess.Popen(self.netns.exec_prefix() + ["/bin/sh", self.wrapper, self.spool, self.rundir,
                                                                SMTPD, "-d", "-v", "-f", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=open(self.log_path, "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while "offline scanning done" not in self.log_text() or \
                not os.path.exists(os.path.join(self.rundir, "smtpd.sock")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("smtpd did not start (exit %s):\n%s" % (self.proc.poll(), self.log_text()[-3000:]))
            time.sleep(0.05)
        return self

    def stop(self):
        rc = stop_tree(self.proc)
        self.proc = None
        return rc

    def smtpctl(self, *args):
        """smtpctl - in smtpd's own network and mount namespaces (its socket is in the private /run)."""
        return run([NSENTER, "-t", str(self.proc.pid), "-m", "-n", SMTPCTL] + list(args), check=False)

    def routes_suspended(self):
        """routes_suspended - routes (source <-> MX address) that smtpd disabled after an error
        and has not enabled again (it keeps them off for 15 s, also across a schedule)."""
        state = {}
        for m in re.finditer(r"smtp-out: (Disabling|Enabling) route (\S+ <-> \S+)", self.log_text()):
            state[m.group(2)] = m.group(1) == "Disabling"
        return sorted(r for r, off in state.items() if off)

    def kick(self):
        """kick - the next queue run: once smtpd has enabled the routes it suspended after the
        last attempt's errors (a schedule before that ends at once in `No valid route`),
        `smtpctl schedule all`."""
        deadline = time.monotonic() + 25
        while self.routes_suspended() and time.monotonic() < deadline:
            time.sleep(0.1)
        out = self.smtpctl("schedule", "all")
        with open(os.path.join(self.base, "smtpctl.out"), "a") as f:
            f.write("%.3f schedule all: %s\n" % (time.time(), out.strip()))
        if "smtpctl:" in out:
            raise AssertionError("smtpctl schedule all: %s" % out)
        return out

    def send(self, rcpt, sender, subject="mxtier MTA matrix", body="hello\n"):
        msgid = new_msgid(self.kind)
        # the test thread is in the namespace: this connects to smtpd's listener there
        with smtplib.SMTP("127.0.0.1", self.submission_port, timeout=10) as s:
            s.sendmail(sender, [rcpt], make_message(msgid, rcpt, sender, subject, body))
        return msgid

    RX = re.compile(r"mta delivery .*to=<(?P<to>[^>]*)>.*result=\"(?P<result>\w+)\"")

    def outcomes(self, rcpt):
        kinds = {"Ok": "sent", "TempFail": "deferred", "PermFail": "bounced", "Loop": "bounced"}
        out = []
        for line in self.log_text().splitlines():
            m = self.RX.search(line)
            if m and m.group("to") == rcpt:
                out.append((kinds.get(m.group("result"), m.group("result")), line))
        return out

    def queue_count(self):
        """queue_count - envelopes in the fs queue: queue/BUCKET/MSGID/ holds `message` and
        one file per envelope (named by its evpid)."""
        top = os.path.join(self.spool, "queue")
        n = 0
        for dirpath, _dirs, files in os.walk(top):
            if os.path.relpath(dirpath, top).count(os.sep) == 1:
                n += sum(1 for f in files if f != "message")
        return n

    def log_text(self):
        return read(self.log_path)

    def debug_text(self):
        lines = [l for l in self.log_text().splitlines()
                 if not l.startswith(("debug: init", "debug: using", "setup_", "mta: debug: last connection",
                                      "mta: timeout for session hangon"))]
        return "\n".join(lines)[-6000:] + "\n---- smtpctl ----\n" + read(os.path.join(self.base, "smtpctl.out"))


SENDERS = {cls.kind: cls for cls in (PostfixSender, Exim, OpenSmtpd, Sendmail)}
