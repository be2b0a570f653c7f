"""docs/operator.md, run: every command of its `sh` blocks, in the guide's
order, against a real appliance in a network namespace this test creates
(the guide's addresses 192.0.2.10-12 and a sender 198.51.100.7 on its
loopback, dnsmasq serving example.org, a recording backend, PostgreSQL,
kernel sets), each checked for what an operator would look at. Commands
that need systemd run in the appliance image (tests/image/run-image-test);
here each has the local step it stands for (a restart is a restart)."""

import os
import shlex
import subprocess
import sys

import pytest

from harness import MXTIERD, PYTHON, RECORDING_BACKEND, TOP, sanitizer_env, stop_pid, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "db"))
import pgcluster  # noqa: E402

GUIDE = os.path.join(TOP, "docs", "operator.md")
IMAGE_TEST = os.path.join(TOP, "tests", "image", "run-image-test")
PACKAGED_CONF = os.path.join(TOP, "packaging", "conf", "mxtier.conf")
NETSETUP = os.path.join(TOP, "packaging", "systemd", "mxtier-netsetup")
MXTIERCTL = os.path.join(os.path.dirname(MXTIERD), "mxtierctl")
NS = "mxguide%d" % os.getpid()
TIERS = {"192.0.2.10": "mx1", "192.0.2.11": "mx2", "192.0.2.12": "mx3"}
SENDER = "198.51.100.7"
# commands only systemd runs: the image test runs them in the VM
SYSTEMD_WORDS = ("apt", "systemctl", "journalctl")


def guide_commands():
    """guide_commands - the command lines of the guide's ```sh blocks, in order."""
    out, inside = [], False
    for line in open(GUIDE):
        line = line.rstrip("\n")
        if line.startswith("```"):
            inside = line == "```sh"
            continue
        if inside and line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


def needs_systemd(cmd):
    return cmd.split()[0] in SYSTEMD_WORDS or cmd == "mxtierctl db setup"


def test_the_guide_has_commands_and_the_image_test_runs_the_systemd_ones():
    cmds = guide_commands()
    assert len(cmds) >= 15, cmds
    image = open(IMAGE_TEST).read()
    missing = [c for c in cmds if needs_systemd(c) and c.replace("./mxtier_0.11.0_amd64.deb", "") not in image]
    assert not missing, "guide commands the image test does not run: %r" % missing


def ns(*argv, **kw):
    return subprocess.run(["ip", "netns", "exec", NS] + list(argv), capture_output=True, text=True,
                          timeout=kw.pop("timeout", 30), **kw)


def smtp_from(source, host="192.0.2.10"):
    """smtp_from - one session from source to host:25 inside the namespace: the reply codes."""
    script = "\n".join([
        "import smtplib",
        "s = smtplib.SMTP(timeout=15, source_address=(%r, 0))" % source,
        "code, _ = s.connect(%r, 25)" % host,
        "codes = [code]",
        "if code == 220:",
        "    codes.append(s.ehlo('mail.partner.test')[0])",
        "    codes.append(s.mail('a@partner.test')[0])",
        "    if codes[-1] == 250:",
        "        codes.append(s.rcpt('user@example.org')[0])",
        "        codes.append(s.docmd('DATA')[0])",
        "        if codes[-1] == 354:",
        "            s.send(b'Subject: guide\\r\\n\\r\\nhello\\r\\n.\\r\\n')",
        "            codes.append(s.getreply()[0])",
        "print(' '.join(map(str, codes)))",
    ])
    r = ns(PYTHON, "-c", script)
    return [int(x) for x in r.stdout.split()] if r.returncode == 0 else ["error", r.stderr[-600:] + r.stdout[-300:]]


class Appliance:
    """Appliance - the namespace and everything in it; start/stop the daemon as a restart would."""

    def __init__(self, workdir, cluster):
        self.workdir, self.cluster = workdir, cluster
        self.conf = os.path.join(workdir, "mxtier.conf")
        self.procs, self.daemon = [], None

    def setup(self):
        subprocess.run(["ip", "netns", "add", NS], check=True)
        ns("ip", "link", "set", "lo", "up")
        for addr in list(TIERS) + [SENDER]:
            ns("ip", "addr", "add", addr + "/32", "dev", "lo")
        dns = ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--port=53",
               "--listen-address=127.0.0.1", "--bind-interfaces", "--local=/org/", "--local=/test/",
               "--local=/in-addr.arpa/", "--pid-file=" + os.path.join(self.workdir, "dnsmasq.pid")]
        for addr, name in sorted(TIERS.items()):
            dns += ["--host-record=%s.example.org,%s" % (name, addr),
                    "--mx-host=example.org,%s.example.org,%d" % (name, 10 * int(name[2]))]
        self.spawn(dns, "dnsmasq")
        self.spawn([PYTHON, RECORDING_BACKEND, "--host", "127.0.0.1", "--port", "10025",
                    "--dir", os.path.join(self.workdir, "backend")], "backend")
        dns_log = os.path.join(self.workdir, "dnsmasq.out")
        wait_until(lambda: "started" in open(dns_log).read(), 10, what="dnsmasq in the namespace")
        # the packaged configuration, as an operator gets it, and what this machine needs
        # (its control socket under /run/mxtier is the package's: this one is the test's)
        packaged = [l for l in open(PACKAGED_CONF).read().splitlines() if not l.startswith("control_socket =")]
        with open(self.conf, "w") as f:
            f.write("\n".join(packaged))
            f.write("\n# the test's own\n"
                    "listen_port = 25\nbackend = 127.0.0.1:10025\nhostname = mx1.example.org\n"
                    "dns_servers = 127.0.0.1:53\ngreet_wait = 1s\n"
                    "control_socket = %s\ndatabase = %s\n"
                    % (os.path.join(self.workdir, "control.sock"), self.cluster.conninfo("mxtier")))

    def spawn(self, argv, name):
        p = subprocess.Popen(["ip", "netns", "exec", NS] + argv, stdin=subprocess.DEVNULL,
                             stdout=open(os.path.join(self.workdir, name + ".out"), "wb"), stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def start_daemon(self):
        """start_daemon - what mxtier.service does: the table first (ExecStartPre=+), then mxtierd."""
        log = os.path.join(self.workdir, "mxtierd.log")
        r = ns(NETSETUP, "start", env=dict(os.environ, MXTIER_CONF=self.conf, MXTIERCTL=MXTIERCTL))
        assert r.returncode == 0, r.stderr
        self.daemon = subprocess.Popen(["ip", "netns", "exec", NS, MXTIERD, "-c", self.conf], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=sanitizer_env())

        def ready():
            if self.daemon.poll() is not None:
                raise AssertionError("mxtierd exited: %s" % open(log).read()[-2000:])
            return "mxtierd started:" in open(log).read() and self.ctl("status").returncode == 0
        wait_until(ready, 15, what="mxtierd in the namespace")

    def stop_daemon(self):
        if self.daemon is not None:
            stop_pid(self.daemon, timeout=40)
            self.daemon = None

    def ctl(self, *args):
        return ns(MXTIERCTL, "-c", self.conf, *args)

    def teardown(self):
        self.stop_daemon()
        for p in self.procs:
            stop_pid(p, timeout=5)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)

    def log(self):
        return open(os.path.join(self.workdir, "mxtierd.log")).read()

    def backend_messages(self):
        d = os.path.join(self.workdir, "backend")
        return sorted(n for n in os.listdir(d) if n.endswith(".eml")) if os.path.isdir(d) else []


@pytest.fixture
def appliance(workdir):
    why = pgcluster.available()
    if why:
        pytest.skip(why)
    cluster = pgcluster.Cluster()
    cluster.create()
    cluster.start()
    cluster.create_database("mxtier")
    a = Appliance(workdir, cluster)
    try:
        a.setup()
        yield a
    finally:
        a.teardown()
        cluster.stop()
        cluster.destroy()


def test_every_command_of_the_guide_on_a_real_appliance(appliance, workdir):
    a = appliance
    backups = os.path.join(workdir, "backups")
    os.makedirs(backups)
    pg_env = dict(os.environ, PGHOST=a.cluster.host, PGPORT=str(a.cluster.port), PGUSER=pgcluster.PG_USER)
    state = {}

    def local_step(cmd):
        """What a systemd command stands for here (the image test runs the command itself)."""
        if cmd == "mxtierctl db setup":
            r = a.ctl("db", "migrate")      # the schema; the role work is db setup's own test
            assert r.returncode == 0, r.stderr
        elif cmd.startswith("systemctl restart"):
            a.stop_daemon()
            a.start_daemon()

    def run(cmd):
        argv = shlex.split(cmd.replace("/var/backups", backups))
        if argv[0] == "mxtierctl":
            return a.ctl(*argv[1:])
        return ns(*argv, env=pg_env, timeout=60)

    # after each command, what an operator would check
    def tier_set(cmd, r):
        addr, role = cmd.split()[-2:]
        assert r.returncode == 0, r.stdout + r.stderr
        assert addr in open(a.conf).read()

    def tier_list(cmd, r):
        assert r.returncode == 0, r.stderr
        rows = {l.split()[0]: l.split() for l in r.stdout.splitlines() if l.split() and l.split()[0] in TIERS}
        assert [rows[x][2] for x in sorted(TIERS)] == ["primary", "secondary", "bait"], r.stdout

    def dns_check(cmd, r):
        assert r.returncode == 0 and "no mistakes found" in r.stdout, r.stdout + r.stderr

    def status(cmd, r):
        assert r.returncode == 0 and "sessions" in r.stdout, r.stdout + r.stderr

    def before_dump():
        # something to back up: a sender without a PTR, deferred at the primary, its row stored
        assert smtp_from(SENDER)[0] // 100 == 4
        wait_until(lambda: a.cluster.count("mxtier", "sessions") >= 1, 10, what="the session row")
        state["rows"] = a.cluster.count("mxtier", "sessions")

    def dumped(cmd, r):
        assert r.returncode == 0, r.stderr
        assert os.path.getsize(os.path.join(backups, "mxtier.dump")) > 0
        a.stop_daemon()                                     # "stop the service first"

    def dropped(cmd, r):
        assert r.returncode == 0, r.stderr
        assert a.cluster.value("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'mxtier'") == "0"

    def restored(cmd, r):
        assert r.returncode == 0, r.stderr
        assert a.cluster.count("mxtier", "sessions") == state["rows"]
        a.start_daemon()                                    # "and start it afterwards"

    def why(cmd, r):
        assert r.returncode == 0, r.stderr
        assert "tempfail" in r.stdout and "no-rdns" in r.stdout, r.stdout

    def allow_add(cmd, r):
        assert r.returncode == 0, r.stdout + r.stderr
        before = len(a.backend_messages())
        codes = smtp_from(SENDER)
        assert codes == [220, 250, 250, 250, 354, 250], "\n".join(map(str, codes))
        wait_until(lambda: len(a.backend_messages()) == before + 1, 5, what="the allowed sender's message")

    def allow_list(cmd, r):
        assert r.returncode == 0 and SENDER in r.stdout, r.stdout

    def block_add(cmd, r):
        assert r.returncode == 0, r.stdout + r.stderr
        try:
            wait_until(lambda: "203.0.113.9" in ns("nft", "list", "set", "inet", "mxtier", "block4").stdout, 5,
                       what="the block in the kernel set")
        except AssertionError:
            raise AssertionError(ns("nft", "list", "ruleset").stdout[:3000] + a.log()[-2000:])

    def block_list(cmd, r):
        assert r.returncode == 0 and "203.0.113.9" in r.stdout, r.stdout

    def block_del(cmd, r):
        assert r.returncode == 0, r.stderr
        assert "203.0.113.9" not in a.ctl("block", "list").stdout

    def allow_del(cmd, r):
        assert r.returncode == 0, r.stderr
        assert SENDER not in a.ctl("allow", "list").stdout

    checks = [("mxtierctl tier set", tier_set), ("mxtierctl tier list", tier_list),
              ("mxtierctl dns-check", dns_check), ("mxtierctl status", status), ("pg_dump", dumped),
              ("dropdb", dropped), ("pg_restore", restored), ("mxtierctl why", why), ("mxtierctl allow add", allow_add),
              ("mxtierctl allow list", allow_list), ("mxtierctl block add", block_add),
              ("mxtierctl block list", block_list), ("mxtierctl block del", block_del),
              ("mxtierctl allow del", allow_del)]
    ran = []
    for cmd in guide_commands():
        if needs_systemd(cmd):
            local_step(cmd)
            continue
        check = [f for prefix, f in checks if cmd.startswith(prefix)]
        assert check, "the guide's command %r has no check here: add one" % cmd
        if cmd.startswith("pg_dump"):
            before_dump()
        r = run(cmd)
        check[0](cmd, r)
        ran.append(cmd)
    assert len(ran) >= 12, ran
