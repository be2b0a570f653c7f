"""The demo (`make demo`, tests/demo/run-demo) does what it says.

The test starts run-demo on its loopback tier addresses (on free ports,
through DEMO_LISTEN_PORT, DEMO_BACKEND_PORT, DEMO_DNS_PORT and DEMO_HTTP_PORT, so it never
collides with a demo or another test), reads the text the demo prints, runs
the swaks commands it suggests, in its order, exactly as printed, and checks
each outcome the text announces: the reply swaks gets, the verdict and
reasons of mxtierd's session line, and for a relayed message the file where
the demo says it lands.  run-demo is stopped by its PID (it stops its own
children by theirs); any child left over is killed by its PID and fails
the test.
"""

import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from harness import (BAIT, MXTIERD, PRIMARY, SECONDARY, TOP, check_sanitizer_report, free_port,
                     parse_session_line, proc_stats, sanitizer_env, wait_until)

RUN_DEMO = os.path.join(TOP, "tests", "demo", "run-demo")
DEMO_HOSTNAME = "mx.demo.test"
STRANGER = "127.0.1.3"      # outside 127.0.0.0/24, the demo's first-contact address


def free_udp_port():
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port >= 20000:
            return port
    raise RuntimeError("no free UDP port found")


def descendants(pid):
    """descendants - every process below pid (run-demo's children and the SMTP engine)."""
    parent_of = {child: int(fields[1]) for child, fields in proc_stats()}
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent_of.items() if pp == p]
        found += kids
        todo += kids
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


class Demo:
    """Demo - tests/demo/run-demo as a child, its output in a file."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.out_path = os.path.join(workdir, "demo.out")
        self.demo_dir = os.path.join(workdir, "demo")
        self.port = free_port()
        self.backend_port = free_port()
        while self.backend_port == self.port:
            self.backend_port = free_port()
        self.dns_port = free_udp_port()
        self.http_port = free_port()
        while self.http_port in (self.port, self.backend_port):
            self.http_port = free_port()
        self.proc = None
        self.pids = []

    def start(self):
        env = sanitizer_env()
        env.update(MXTIERD=MXTIERD, DEMO_DIR=self.demo_dir, DEMO_LISTEN_PORT=str(self.port),
                   DEMO_BACKEND_PORT=str(self.backend_port), DEMO_DNS_PORT=str(self.dns_port),
                   DEMO_HTTP_PORT=str(self.http_port))
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen([RUN_DEMO], stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        try:
            wait_until(lambda: self.proc.poll() is not None or "mxtierd started" in self.output(),
                       20, what="the demo's mxtierd to start")
        finally:
            self.pids = descendants(self.proc.pid)
        if self.proc.poll() is not None:
            text = self.output()
            if "already in use" in text:
                pytest.skip("demo ports in use: %s" % text.strip().splitlines()[-1])
            raise AssertionError("run-demo exited with %s:\n%s" % (self.proc.returncode, text))
        return self

    def output(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def banner(self):
        """banner - the text between the two ==== rulers."""
        parts = re.split(r"^={20,}$", self.output(), flags=re.M)
        assert len(parts) >= 3, "no demo banner in:\n%s" % self.output()
        return parts[1]

    def sessions(self):
        return [s for s in map(parse_session_line, self.output().splitlines()) if s]

    def stop(self):
        """stop - SIGTERM to run-demo's PID; it stops mxtierd, the backend and dnsmasq by theirs."""
        if self.proc is None:
            return []
        self.pids = sorted(set(self.pids) | set(descendants(self.proc.pid)))
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # run-demo waits for each child it started; the SMTP engine follows its parent.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(p) for p in self.pids):
            time.sleep(0.05)
        left = [p for p in self.pids if alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


@pytest.fixture
def demo(workdir):
    for tool in ("swaks", "dnsmasq", "perl", "ss"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            pytest.skip("%s is not installed (packaging/install-deps installs it)" % tool)
    d = Demo(workdir)
    try:
        yield d.start()
    finally:
        left = d.stop()
        text = d.output()
    assert not left, "processes of the demo still running after run-demo stopped: %s" % left
    assert "run-demo: stopped; messages and logs are in" in text, text[-3000:]
    check_sanitizer_report(text, "demo mxtierd")


def suggestions(banner):
    """suggestions - [(swaks command, the text that explains it)] in the banner's order."""
    out = []
    for line in banner.splitlines():
        if line.strip().startswith("swaks "):
            out.append([line.strip(), ""])
        elif out and line.startswith("       ") and line.strip():
            out[-1][1] += " " + line.strip()
        elif out and not line.strip():
            out[-1][1] += "\n"
    return [(cmd, " ".join(text.split())) for cmd, text in out]


def key(cmd):
    """key - (tier address, source address or None, --helo or None) of a swaks command."""
    args = shlex.split(cmd)
    opt = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--")}
    host, _, port = opt["--server"].rpartition(":")
    return host, int(port), opt.get("--local-interface"), opt.get("--helo")


def swaks(cmd):
    r = subprocess.run(shlex.split(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    return r.stdout.decode("latin-1")


def test_demo_suggestions_do_what_the_demo_says(demo):
    banner = demo.banner()
    port = demo.port
    cmds = suggestions(banner)
    keys = [key(c)[:1] + key(c)[2:] for c, _ in cmds]
    assert [key(c)[1] for c, _ in cmds] == [port] * len(cmds), cmds
    # The demo's own list, in its order: the test checks each one below.
    assert keys == [
        (PRIMARY, None, None),
        (BAIT, None, None),
        (PRIMARY, "127.0.0.2", None),
        (SECONDARY, "127.0.0.2", None),
        (BAIT, STRANGER, None),
        (PRIMARY, STRANGER, None),
        (PRIMARY, None, DEMO_HOSTNAME),
    ], banner

    m = re.search(r"The delivered message lands in\s+(\S+)", banner)
    assert m, banner
    mail_glob = re.sub(r"\b(NNNN|K|YYYYMMDD|HHMMSS\.x+)\b", "*", m.group(1))
    assert mail_glob.startswith(demo.demo_dir) and "*" in mail_glob, mail_glob

    seen = [0]

    def run(cmd):
        """run - swaks output and the session line that its connection produced."""
        before = len(demo.sessions())
        out = swaks(cmd)
        host, _, source, _ = key(cmd)
        session = wait_until(
            lambda: next((s for s in demo.sessions()[before:]
                          if s["client"].startswith((source or "127.0.0.1") + ":")), None),
            10, what="the session line of %s" % cmd)
        assert session["tier"] == {PRIMARY: "primary", SECONDARY: "secondary", BAIT: "bait"}[host]
        return out, session

    def relayed(cmd, out, session, *reasons):
        assert re.search(r"^<-  250 2\.0\.0 Ok: queued as ", out, re.M), out
        assert session["verdict"] == "relay", session
        assert set(reasons) <= set(session["reason_list"]), session
        msgs = sorted(glob.glob(mail_glob))
        assert len(msgs) == seen[0] + 1, (mail_glob, msgs)
        seen[0] += 1
        with open(msgs[-1], "rb") as f:
            body = f.read()
        assert b"From: you@example.org" in body and b"To: user@demo.test" in body, body[:500]

    def not_relayed(out, session, reply, verdict, *reasons):
        assert re.search("^<\\*\\* " + re.escape(reply), out, re.M), out
        assert session["verdict"] == verdict, session
        assert set(reasons) <= set(session["reason_list"]), session
        assert len(glob.glob(mail_glob)) == seen[0], "a refused session reached the backend"

    lower_mx = "421 4.7.0 %s Service not available, try a lower MX" % DEMO_HOSTNAME
    deferred = "421 4.7.0 %s Service temporarily unavailable, try again later" % DEMO_HOSTNAME

    # 1. the primary, from 127.0.0.1 (sender.demo.test), with swaks's own EHLO
    cmd, _ = cmds[0]
    helo = re.search(r'"EHLO ([^"]*)"', banner).group(1)
    out, s = run(cmd)
    assert s["helo"] == helo, (s, helo)
    if "It is relayed at once" in banner:
        first = banner.split(cmd, 1)[1].split("The delivered message")[0]
        assert "451" not in first and "deferred" not in first, first
        if "." not in helo.rstrip("."):
            assert "dotless" in first and "not helo-invalid" in first, first
        relayed(cmd, out, s)
        assert s["reason_list"] == [], s
    else:
        # this host's name fails helo-invalid: the demo announces a deferral, then `retried`
        assert "helo-invalid" in banner and "451 4.7.1" in banner, banner
        not_relayed(out, s, "451 4.7.1", "tempfail", "helo-invalid")
        out, s = run(cmd)
        relayed(cmd, out, s, "retried")

    # 2. the bait, after the primary: 421, no block
    cmd, text = cmds[1]
    assert "421" in text and "bait" in text, text
    out, s = run(cmd)
    not_relayed(out, s, lower_mx, "tempfail", "bait")
    assert "bait-first-contact" not in s["reason_list"], s

    # 3. no reverse DNS at the primary: deferred, reason no-rdns
    cmd, text = cmds[2]
    assert "421" in text and "no-rdns" in text, text
    primary_no_rdns = cmd
    out, s = run(cmd)
    not_relayed(out, s, deferred, "tempfail", "no-rdns")

    # 4. ...the secondary relays it (retried), and from then on it passes at the primary
    cmd, text = cmds[3]
    assert "relays (reason retried)" in text and "(reason passed)" in text, text
    out, s = run(cmd)
    relayed(cmd, out, s, "retried")
    out, s = run(primary_no_rdns)
    relayed(primary_no_rdns, out, s, "passed")

    # 5. a first contact at the bait: 421 and a block ...
    cmd, text = cmds[4]
    assert "bait-first-contact" in text and "blocked at every tier" in text, text
    out, s = run(cmd)
    not_relayed(out, s, lower_mx, "tempfail", "bait", "bait-first-contact")

    # 6. ... that the primary answers with a 4xx
    cmd, text = cmds[5]
    blocked = "421 4.7.1 %s Client [%s] temporarily blocked" % (DEMO_HOSTNAME, STRANGER)
    assert "421 4.7.1" in text and "temporarily blocked" in text, text
    out, s = run(cmd)
    not_relayed(out, s, blocked, "tempfail", "bait-first-contact")

    # 7. a HELO with the appliance's own name: 451 4.7.1 at RCPT, then retried
    cmd, text = cmds[6]
    assert "451 4.7.1" in text and "helo-invalid" in text and "retried" in text, text
    out, s = run(cmd)
    assert re.search(r"^<-  250 2\.1\.0", out, re.M), out      # MAIL accepted, RCPT deferred
    not_relayed(out, s, "451 4.7.1", "tempfail", "helo-invalid")
    out, s = run(cmd)
    relayed(cmd, out, s, "retried")


def test_demo_serves_the_dashboard_and_prints_its_url(demo):
    """The banner names the dashboard's URL beside the swaks commands; its Live page and API answer there,
    and a message sent the way the banner says is counted on it."""
    banner = demo.banner()
    if "this mxtierd has no HTTP server" in banner:
        pytest.skip("this mxtierd has no dashboard (dashboard_dir unknown to mxtierd -n)")
    url = "http://127.0.0.1:%d/" % demo.http_port
    assert "dashboard " + url in banner and "Live page" in banner, banner
    assert banner.index(url) < banner.index("swaks --server"), banner

    def get(path):
        with urllib.request.urlopen(url + path, timeout=5) as r:
            return r.status, r.read().decode()

    def up():
        try:
            return get("healthz")[0] == 200
        except OSError:     # the HTTP process is not listening yet
            return False
    wait_until(up, 10, what="the demo's dashboard on %s" % url)
    status, page = get("")
    assert status == 200 and "<title>mxtier · Live</title>" in page, page[:300]
    before = json.loads(get("api/live")[1])["sessions"]
    cmd = suggestions(banner)[0][0]
    swaks(cmd)     # relayed, or deferred for helo-invalid on a host whose name fails it: counted either way
    wait_until(lambda: json.loads(get("api/live")[1])["sessions"] > before, 5, what="the session on /api/live")
