"""What systemd sees of mxtierd (mxtier.service is Type=notify, logs to the
journal): the sd_notify states on a notify socket of our own, and the
"<N>" syslog priority prefixes when stderr is the journal's stream (the
JOURNAL_STREAM variable names stderr's device and inode)."""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import harness

PRIORITY = {"debug": 7, "info": 6, "warn": 4, "fatal": 3}


def config_text(port, **extra):
    cfg = dict(harness.BASE_CONFIG)
    cfg.update({"listen_port": str(port), "backend": "127.0.0.1:%d" % harness.free_port()})
    cfg.update(extra)
    return "".join("%s = %s\n" % kv for kv in cfg.items())


class Notify:
    """Notify - a datagram socket where sd_notify(3) sends, readable by the engine's user too."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mxtier-notify-")
        os.chmod(self.dir, 0o755)
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.seen = []

    def wait_for(self, state, timeout=10):
        """wait_for - every state line up to and including `state`; fail after timeout."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            for line in data.splitlines():
                got.append(line)
                if line == state:
                    self.seen += got
                    return got
        raise AssertionError("no %s within %ss (got %r)" % (state, timeout, got))

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def stream_env(stderr_file):
    st = os.fstat(stderr_file.fileno())
    env = dict(os.environ)
    env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    return env


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


def test_notify_states_and_journal_priorities(mxtierd, workdir):
    try:
        pwd.getpwnam("mxtier")
    except KeyError:
        pytest.skip("no system user mxtier (packaging/install-deps creates it)")
    if os.geteuid() != 0:
        pytest.skip("the privilege split needs root")
    port = harness.free_port()
    conf = workdir / "mxtier.conf"
    conf.write_text(config_text(port))
    notify = Notify()
    err = open(workdir / "stderr", "wb")
    env = stream_env(err)
    env["NOTIFY_SOCKET"] = notify.path
    proc = subprocess.Popen([mxtierd, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=err, env=env)
    try:
        notify.wait_for("READY=1")
        # Ready means listening: every tier answers now, not later.
        for addr in harness.TIER_ADDRESSES:
            assert harness.port_accepts(addr, port), addr

        # A refused reload: RELOADING=1, then READY=1 again (the running config stays), and a warning.
        conf.write_text(config_text(port) + "no_such_key = 1\n")
        proc.send_signal(signal.SIGHUP)
        assert notify.wait_for("READY=1")[0] == "RELOADING=1"
        # A good one: the engine applies it and says READY=1.
        conf.write_text(config_text(port, max_errors="7"))
        proc.send_signal(signal.SIGHUP)
        assert notify.wait_for("READY=1")[0] == "RELOADING=1"
        harness.wait_until(lambda: "reloaded" in (workdir / "stderr").read_text(), 5, what="reloaded")

        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
        notify.close()

    lines = (workdir / "stderr").read_text().splitlines()
    assert lines, "no log lines"
    levels = set()
    for line in lines:
        m = re.match(r"<(\d)>(debug|info|warn|fatal): ", line)
        assert m, "line without its priority prefix: %r" % line
        assert int(m.group(1)) == PRIORITY[m.group(2)], line
        levels.add(m.group(2))
        # The journal stamps lines itself: no timestamp of our own.
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", line), line
    assert {"info", "warn"} <= levels
    assert any(l.startswith("<4>warn: priv: reload refused:") for l in lines), lines
    assert any(l.startswith("<6>info: mxtierd started") for l in lines), lines


def test_start_error_is_an_error_priority(mxtierd, workdir):
    conf = workdir / "mxtier.conf"
    conf.write_text("listen_port = 2525\n")     # no tier address: refused
    with open(workdir / "stderr", "wb") as err:
        r = subprocess.run([mxtierd, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=err, env=stream_env(err), timeout=10)
    assert r.returncode == 1
    assert (workdir / "stderr").read_text().startswith("<3>mxtierd: %s: no tier addresses" % conf)


def test_no_prefix_when_stderr_is_not_the_journal(mxtierd, workdir):
    """JOURNAL_STREAM inherited with stderr redirected elsewhere: plain lines, as on a terminal."""
    conf = workdir / "mxtier.conf"
    conf.write_text("listen_port = 2525\n")
    other = open(workdir / "other", "wb")
    env = stream_env(other)
    r = subprocess.run([mxtierd, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=env, timeout=10, text=True)
    other.close()
    assert r.returncode == 1
    assert r.stderr.startswith("mxtierd: %s: no tier addresses" % conf)
