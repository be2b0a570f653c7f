"""harness - processes and clients for the mxtierd integration tests.

The daemon, the recording backend and Postfix's smtp-sink each run as a child
process that is stopped by its own PID.  SmtpClient is a raw-socket SMTP
client, so tests can send exactly the bytes they mean (pipelining, bare LF,
over-long lines) and read every reply as it comes.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
MXTIERD = os.path.join(os.environ.get("MXTIER_BUILD") or os.path.join(TOP, "build"), "mxtierd")
RECORDING_BACKEND = os.path.join(HERE, "recording_backend.py")
PYTHON = "/usr/bin/python3"
SMTP_SINK = "/usr/sbin/smtp-sink"

PRIMARY = "127.0.0.10"
SECONDARY = "127.0.0.11"
BAIT = "127.0.0.12"
TIER_ADDRESSES = (PRIMARY, SECONDARY, BAIT)
HOSTNAME = "mx.mxtier.test"

# Short timeouts so that the suite stays fast; tests override what they test.
BASE_CONFIG = {
    "primary_ips": PRIMARY,
    "secondary_ips": SECONDARY,
    "bait_ips": BAIT,
    "hostname": HOSTNAME,
    "greet_wait": "0",
    "command_timeout": "10s",
    "data_timeout": "10s",
    "backend_connect_timeout": "2s",
    "backend_timeout": "3s",
    "backend_data_timeout": "3s",
    "backend_probe_interval": "5s",
    "shutdown_grace": "3s",
}


def free_port():
    """free_port - a TCP port that is free on every tier address and 127.0.0.1."""
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port < 20000:
            continue
        ok = True
        for addr in TIER_ADDRESSES:
            t = socket.socket()
            try:
                t.bind((addr, port))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise RuntimeError("no free port found")


def port_accepts(host, port, source="127.0.0.1"):
    try:
        s = socket.create_connection((host, port), timeout=0.5, source_address=(source, 0))
    except OSError:
        return False
    s.close()
    return True


def proc_stats():
    """proc_stats - (pid, fields after the command name) of every process in /proc/PID/stat."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold blanks and parentheses
        yield int(name), stat[stat.rfind(")") + 2:].split()


def children(pid):
    """children - the PIDs whose parent is pid (the SMTP engine of a split mxtierd)."""
    return [child for child, fields in proc_stats() if int(fields[1]) == pid]


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def stop_pid(proc, timeout=10.0, sig=signal.SIGTERM):
    """stop_pid - signal one child by its PID, kill it by PID if it stays."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(5)


# -- SMTP client ---------------------------------------------------------------

class Reply:
    """Reply - one (possibly multi-line) SMTP reply."""

    def __init__(self, raw):
        self.raw = raw
        self.lines = [l.decode("latin-1") for l in raw.split(b"\r\n") if l]
        self.code = int(self.lines[-1][:3]) if self.lines and self.lines[-1][:3].isdigit() else None
        self.text = "\n".join(self.lines)
        self.last = self.lines[-1] if self.lines else ""

    def __repr__(self):
        return "Reply(%r)" % self.raw


class SmtpClient:
    """SmtpClient - raw SMTP over a socket; reads replies line by line."""

    def __init__(self, port, host=PRIMARY, source="127.0.0.2", timeout=6.0):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.local = self.sock.getsockname()
        self.local_port = self.local[1]
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by peer (buffer %r)" % self.buf)
        self.buf += data

    def read_line(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise AssertionError("reply line without CRLF beyond 1 MiB")
            self._fill(timeout)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def read_reply(self, timeout=None):
        raw = b""
        while True:
            line = self.read_line(timeout)
            raw += line
            if len(line) < 4 or line[3:4] != b"-":
                return Reply(raw)

    def cmd(self, line, timeout=None):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.read_reply(timeout)

    def greeting(self, timeout=None):
        return self.read_reply(timeout)

    def ehlo(self, name="client.example.org"):
        return self.cmd("EHLO " + name)

    def is_closed(self, timeout=2.0):
        """is_closed - True when the peer closes within timeout (data is discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not data:
                return True
            self.buf += data
        return False

    def replies_until_close(self, timeout=5.0):
        """replies_until_close - every reply until the server closes: (replies, closed within timeout)."""
        replies = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                replies.append(self.read_reply(timeout=max(0.05, deadline - time.monotonic())))
            except (EOFError, ConnectionResetError):
                return replies, True
            except socket.timeout:
                break
        return replies, False

    def send_mail(self, mail_from, rcpts, data):
        """send_mail - one transaction; DATA bytes must be dot-stuffed and end in CRLF.

        Returns the replies (MAIL, each RCPT, DATA and, after a 354, end-of-data).
        """
        replies = [self.cmd("MAIL FROM:<%s>" % mail_from)]
        for r in rcpts:
            replies.append(self.cmd("RCPT TO:<%s>" % r))
        replies.append(self.cmd("DATA"))
        if replies[-1].code == 354:
            self.send(data + b".\r\n")
            replies.append(self.read_reply())
        return replies


# -- session log ---------------------------------------------------------------

LOG_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_session_line(line):
    """parse_session_line - `session id=... k=v ...` into a dict (or None)."""
    i = line.find("session id=")
    if i < 0:
        return None
    fields = {}
    for key, value in LOG_FIELD.findall(line[i + len("session "):]):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r'\\(["\\])', r"\1", value[1:-1])
        fields[key] = value
    fields["reason_list"] = [r for r in fields.get("reasons", "").split(",") if r and r != "-"]
    return fields


# -- child processes ------------------------------------------------------------

# A sanitized mxtierd (make check SANITIZE=1) reports to its stderr: leaks
# at exit make it exit 23, any ASan/UBSan error ends it at once.  The
# options only matter for a sanitized binary; a normal one ignores them.
# A leak stack that stops inside libevent: rerun the test with
# ASAN_OPTIONS=fast_unwind_on_malloc=0 (slower, full stacks; the user's wins).
SANITIZER_OPTIONS = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23:halt_on_error=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|: runtime error: ")


class SanitizerReport(AssertionError):
    """SanitizerReport - mxtierd's stderr holds an ASan, LSan or UBSan report."""


def sanitizer_env():
    """sanitizer_env - the environment for a child mxtierd/mxtierctl (user's own options win)."""
    env = dict(os.environ)
    for key, value in SANITIZER_OPTIONS.items():
        env.setdefault(key, value)
    return env


def check_sanitizer_report(text, what="mxtierd"):
    """check_sanitizer_report - raise SanitizerReport with the report if text holds one."""
    m = SANITIZER_REPORT.search(text)
    if m:
        start = text.rfind("\n", 0, max(0, m.start() - 200)) + 1
        raise SanitizerReport("%s: sanitizer report in stderr:\n%s" % (what, text[start:start + 8000]))


class Daemon:
    """Daemon - one mxtierd with its config file and captured stderr."""

    def __init__(self, workdir, backend_port, config=None, name="mxtierd"):
        self.workdir = workdir
        self.port = free_port()
        self.config = dict(BASE_CONFIG)
        self.config["listen_port"] = str(self.port)
        self.config["backend"] = "127.0.0.1:%d" % backend_port
        self.config.update({k: str(v) for k, v in (config or {}).items()})
        self.conf_path = os.path.join(workdir, name + ".conf")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        self.proc = None

    def write_config(self, config=None, extra_lines=()):
        config = self.config if config is None else config
        with open(self.conf_path, "w") as f:
            f.write("# written by tests/integration\n")
            for key, value in config.items():
                if value is not None:
                    f.write("%s = %s\n" % (key, value))
            for line in extra_lines:
                f.write(line + "\n")

    def start(self):
        if not os.access(MXTIERD, os.X_OK):
            raise AssertionError("%s is not built (run make)" % MXTIERD)
        self.write_config()
        self.proc = subprocess.Popen([MXTIERD, "-c", self.conf_path],
                                     stdout=open(self.stdout_path, "wb"),
                                     stderr=open(self.stderr_path, "wb"),
                                     stdin=subprocess.DEVNULL, env=sanitizer_env())
        addrs = [a for key in ("primary_ips", "secondary_ips", "bait_ips")
                 for a in self.config.get(key, "").replace(",", " ").split()]

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("mxtierd exited with %s during start:\n%s"
                                     % (self.proc.returncode, self.stderr()))
            return all(port_accepts(a, self.port) for a in addrs)
        wait_until(ready, 10, what="mxtierd listening on %s port %d" % (addrs, self.port))
        return self

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def sessions(self):
        return [s for s in map(parse_session_line, self.stderr().splitlines()) if s]

    def session_for(self, client, timeout=5.0):
        """session_for - the log line of the session of this client (SmtpClient or "addr:port")."""
        if isinstance(client, SmtpClient):
            client = "%s:%d" % client.local[:2]

        def find():
            for s in self.sessions():
                if s.get("client") == client:
                    return s
            return None
        return wait_until(find, timeout, what="session log line for client=%s\n%s" % (client, self.stderr()[-3000:]))

    def reload(self, changes=None, extra_lines=()):
        if changes:
            self.config.update({k: (None if v is None else str(v)) for k, v in changes.items()})
        self.write_config(extra_lines=extra_lines)
        os.kill(self.proc.pid, signal.SIGHUP)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self):
        """stop - stop by PID; a sanitizer report in its stderr fails the test here."""
        if self.proc is None:
            return None
        rc = stop_pid(self.proc)
        check_sanitizer_report(self.stderr(), "%s (exit %s)" % (self.conf_path, rc))
        return rc


class RecordingBackend:
    """RecordingBackend - recording_backend.py as a child process."""

    def __init__(self, workdir, args=(), name="backend"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.args = list(args)
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.proc = None
        self.port = None

    def start(self):
        self.proc = subprocess.Popen([PYTHON, RECORDING_BACKEND, "--dir", self.dir, "--verbose"] + self.args,
                                     stdout=subprocess.PIPE, stderr=open(self.stderr_path, "wb"),
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            self.stop()
            raise AssertionError("recording backend did not start: %r %s" % (line, open(self.stderr_path).read()))
        self.port = int(line.split()[1])
        return self

    def stop(self):
        if self.proc is None:
            return None
        rc = stop_pid(self.proc, timeout=5)
        self.proc.stdout.close()
        return rc

    def connections(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".json"):
                try:
                    with open(os.path.join(self.dir, name)) as f:
                        out.append(json.load(f))
                except (ValueError, FileNotFoundError):
                    pass    # being rewritten; callers poll
        return out

    def mail_connections(self):
        """mail_connections - connections that got at least a MAIL command."""
        return [c for c in self.connections()
                if any(cmd.upper().startswith("MAIL") for cmd in c["commands"])]

    def messages(self, complete=True):
        """messages - [(connection log, message entry, bytes)] in order."""
        out = []
        for c in self.connections():
            for m in c["messages"]:
                if complete is not None and m["complete"] != complete:
                    continue
                data = b""
                if m["file"]:
                    with open(os.path.join(self.dir, m["file"]), "rb") as f:
                        data = f.read()
                out.append((c, m, data))
        return out

    def raw_input(self, conn):
        with open(os.path.join(self.dir, "conn-%04d.in" % conn["id"]), "rb") as f:
            return f.read()


class SmtpSink:
    """SmtpSink - Postfix smtp-sink, dumping each message to a file."""

    def __init__(self, workdir, args=(), name="sink"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.args = list(args)
        self.port = free_port()
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.proc = None

    def start(self):
        cmd = [SMTP_SINK, "-u", "root", "-d", os.path.join(self.dir, "msg.")] + self.args + \
              ["127.0.0.1:%d" % self.port, "100"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.stderr_path, "wb"),
                                     stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("smtp-sink exited: %s" % open(self.stderr_path).read())
            return port_accepts("127.0.0.1", self.port)
        wait_until(ready, 5, what="smtp-sink")
        return self

    def stop(self):
        return stop_pid(self.proc, timeout=5) if self.proc else None

    def dumps(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            with open(os.path.join(self.dir, name), "rb") as f:
                out.append(f.read())
        return out


if __name__ == "__main__":
    sys.exit("harness.py is a module for the tests in this directory")
