"""hostile_lib - helpers shared by the hostile-input tests.

What a user would check, as functions: the bytes a backend got hold no
bare CR, bare LF or NUL; mxtierd's stderr is one well-formed line per
event (no line injected by a client's bytes); the daemon's resident set
size; a client that writes without ever reading.
"""

import os
import re
import resource
import socket
import subprocess
import time

from harness import Daemon, children, wait_until

# A bare LF (no CR before it), a bare CR (no LF after it) or a NUL.
BARE = re.compile(rb"(?<!\r)\n|\r(?!\n)|\x00")

# Every line mxtierd writes to stderr starts like this (proxy/base/log.c).
LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z mxtierd\[\w+\]: [\x20-\x7e]*$")


def bare_bytes(data):
    """bare_bytes - the offsets of bare CR, bare LF and NUL in data (empty: clean)."""
    return [m.start() for m in BARE.finditer(data)]


def stderr_bytes(daemon):
    with open(daemon.stderr_path, "rb") as f:
        return f.read()


def malformed_log_lines(daemon):
    """malformed_log_lines - stderr lines that are not one printable mxtierd line."""
    raw = stderr_bytes(daemon)
    if raw and not raw.endswith(b"\n"):
        raw = raw[:raw.rfind(b"\n") + 1]        # a line being written right now
    return [l for l in raw.split(b"\n")[:-1] if not LOG_LINE.match(l)]


def engine_pid(pid):
    """engine_pid - the process that runs the SMTP engine: with privilege separation
    (mxtierd started as root with `user` set) the forked "mxtierd [smtp]" child,
    else mxtierd itself."""
    for child in children(pid):
        try:
            with open("/proc/%d/comm" % child) as f:
                if f.read().startswith("mxtierd [smtp]"):
                    return child
        except OSError:
            pass
    return pid


def _rss_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def rss_kib(pid):
    """rss_kib - VmRSS of mxtierd (PID) and its children together, in KiB."""
    total = _rss_of(pid)
    for child in children(pid):
        try:
            total += _rss_of(child)
        except (OSError, AssertionError):
            pass
    return total


def sanitized(pid):
    """sanitized - mxtierd PID runs with AddressSanitizer (make SANITIZE=1).  Its
    quarantine keeps freed memory resident (up to 256 MB by default), so an RSS
    bound says nothing there; the tests assert RSS only for a normal build."""
    with open("/proc/%d/maps" % engine_pid(pid)) as f:
        return "libasan" in f.read()


def assert_rss_bounded(pid, before, peak, limit_kib, what):
    """assert_rss_bounded - peak RSS within limit_kib of before (normal builds)."""
    print("%s: rss %d KiB -> peak %d KiB%s" % (what, before, peak, " (ASan: not bounded)" if sanitized(pid) else ""))
    if not sanitized(pid):
        assert peak - before < limit_kib, "%s: RSS grew from %d to %d KiB" % (what, before, peak)


def open_fds(pid):
    """open_fds - descriptors open in the SMTP engine of mxtierd PID."""
    return len(os.listdir("/proc/%d/fd" % engine_pid(pid)))


def alive(daemon):
    """alive - mxtierd runs, and with privilege separation so does its SMTP engine."""
    if daemon.proc is None or daemon.proc.poll() is not None:
        return False
    try:
        with open("/proc/%d/comm" % daemon.proc.pid) as f:
            comm = f.read()
    except OSError:
        return False
    if comm.startswith("mxtierd [priv]"):
        return engine_pid(daemon.proc.pid) != daemon.proc.pid
    return True


def backend_conn_for(backend, client, timeout=3.0):
    """backend_conn_for - the recording backend's connection that XCLIENT named for this client."""
    addr, port = client.local[0], str(client.local[1])

    def find():
        for conn in backend.connections():
            for attrs in conn["xclient_attrs"]:
                if attrs.get("ADDR") == [addr] and attrs.get("PORT") == [port]:
                    return conn
        return None
    return wait_until(find, timeout, what="backend connection of %s:%s" % (addr, port))


def backend_conns_for(backend, client):
    """backend_conns_for - every backend connection XCLIENT named for this client (maybe none)."""
    addr, port = client.local[0], str(client.local[1])
    return [c for c in backend.connections()
            if any(a.get("ADDR") == [addr] and a.get("PORT") == [port] for a in c["xclient_attrs"])]


class LimitedDaemon(Daemon):
    """LimitedDaemon - mxtierd started with RLIMIT_NOFILE set low (a small `ulimit -n`).

    Daemon.start does the rest (config, environment, readiness); only its
    Popen gets a preexec_fn that lowers the limit in the child before exec.
    """

    def __init__(self, workdir, backend_port, nofile, config=None, name="mxtierd-lim"):
        super().__init__(workdir, backend_port, config, name=name)
        self.nofile = nofile

    def start(self):
        limit = self.nofile
        popen = subprocess.Popen

        def lower():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        def limited_popen(*args, **kwargs):
            kwargs["preexec_fn"] = lower
            return popen(*args, **kwargs)
        subprocess.Popen = limited_popen
        try:
            return super().start()
        finally:
            subprocess.Popen = popen


def raw_connect(host, port, source, timeout=3.0):
    return socket.create_connection((host, port), timeout=timeout, source_address=(source, 0))


def read_until(sock, pattern, timeout):
    """read_until - bytes until pattern is in them (or EOF/timeout); returns them."""
    buf = b""
    deadline = time.monotonic() + timeout
    while pattern not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionError:
            break
        if not data:
            break
        buf += data
    return buf


def write_without_reading(sock, chunk, total, stall, deadline):
    """write_without_reading - send chunk repeatedly (never reading) until total
    bytes are out, or the peer has taken nothing for `stall` seconds, or the
    deadline; returns (bytes sent, monotonic time of the last byte taken)."""
    sock.setblocking(False)
    sent = 0
    last_progress = time.monotonic()
    view = memoryview(chunk)
    offset = 0
    while sent < total and time.monotonic() < deadline:
        try:
            n = sock.send(view[offset:])
        except BlockingIOError:
            if time.monotonic() - last_progress > stall:
                break
            time.sleep(0.02)
            continue
        except ConnectionError:
            break
        sent += n
        offset = (offset + n) % len(chunk)
        last_progress = time.monotonic()
    return sent, last_progress
