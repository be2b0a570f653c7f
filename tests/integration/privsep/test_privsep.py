"""Privilege separation, as an operator would check it: started as root,
mxtierd is two processes; the SMTP engine (the started PID's child) runs as
`user` with no capabilities and no way back, holds every SMTP socket and no
database secret; the privileged parent holds no SMTP socket but still writes
the kernel sets and PostgreSQL rows the engine asks for; signals to the
started PID reach both; either one dying stops the other.

Needs root (the split only happens as root) and the system user `mxtier`
(packaging/install-deps creates it). The kernel and database cases reuse the
network-namespace topology and the PostgreSQL clusters of those suites.
"""

import os
import pwd
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "kernel"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "db"))

from harness import (BAIT, HOSTNAME, MXTIERD, PRIMARY, SECONDARY, SmtpClient, children,  # noqa: E402
                     wait_until)

USER = "mxtier"


def _why_not():
    if os.geteuid() != 0:
        return "privilege separation only happens when mxtierd starts as root"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return "system user %s missing (packaging/install-deps creates it)" % USER
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


# -- /proc helpers ---------------------------------------------------------------

def engine_of(daemon, timeout=5.0):
    """engine_of - the started PID's only child: the SMTP engine."""
    def find():
        kids = children(daemon.proc.pid)
        return kids[0] if len(kids) == 1 else None
    return wait_until(find, timeout, what="one child of mxtierd %d" % daemon.proc.pid)


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def alive(pid):
    """alive - running (a zombie no longer counts)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def socket_inodes(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def tcp_sockets_on_port(port):
    """tcp_sockets_on_port - {inode: state} of the TCP sockets whose local port is port."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and int(parts[9]):
                    out[int(parts[9])] = parts[3]
    return out


def netlink_inodes(pid):
    """netlink_inodes - inodes of the netlink sockets in pid's network namespace."""
    with open("/proc/%d/net/netlink" % pid) as f:
        lines = f.readlines()
    col = lines[0].split().index("Inode")
    return {int(line.split()[col]) for line in lines[1:]}


def memory_holds(pid, needle, limit=256 << 20):
    """memory_holds - the first readable mapping of pid that contains needle (bytes), or None."""
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if not parts[1].startswith("r") or end - start > limit or line.rstrip().endswith("[vvar]"):
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            if data and needle in data:
                return line.strip()
    return None


def sanitized():
    """sanitized - mxtierd is an ASan/UBSan build (make SANITIZE=1)."""
    with open(MXTIERD, "rb") as f:
        return b"__asan_init" in f.read()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def deliver(daemon, host=PRIMARY, source="127.0.0.2"):
    with SmtpClient(daemon.port, host=host, source=source) as c:
        assert c.greeting().code == 220
        assert c.ehlo().code == 250
        replies = c.send_mail("a@example.org", ["b@example.net"], b"Subject: privsep\r\n\r\nhello\r\n")
        assert [r.code for r in replies] == [250, 250, 354, 250], replies
        assert c.cmd("QUIT").code == 221
        return "%s:%d" % c.local[:2]


# -- the two processes --------------------------------------------------------------

def test_engine_runs_as_user_without_capabilities(start_daemon, backend):
    d = start_daemon(backend)
    engine = engine_of(d)
    uid = pwd.getpwnam(USER).pw_uid
    st = proc_status(engine)
    assert st["Uid"].split() == [str(uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(pwd.getpwnam(USER).pw_gid)] * 4, st["Gid"]
    assert st["Groups"] == "", st["Groups"]
    for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert int(st[cap], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == "1"
    assert st["Name"] == "mxtierd [smtp]"
    parent = proc_status(d.proc.pid)
    assert parent["Uid"].split()[0] == "0" and parent["Name"] == "mxtierd [priv]"
    assert "privsep: SMTP engine runs as %s" % USER in d.stderr()
    # and mail still flows
    deliver(d)
    wait_until(lambda: len(backend.messages()) == 1, 5, what="the message at the backend")


def test_only_the_engine_holds_smtp_sockets(start_daemon, backend):
    d = start_daemon(backend)
    engine = engine_of(d)
    c = SmtpClient(d.port, host=PRIMARY, source="127.0.0.2")
    try:
        assert c.greeting().code == 220
        smtp = tcp_sockets_on_port(d.port)
        listening = {i for i, state in smtp.items() if state == "0A"}
        accepted = {i for i, state in smtp.items() if state == "01"}
        assert len(listening) == 3 and accepted, smtp
        assert not (socket_inodes(d.proc.pid) & set(smtp)), "the privileged parent holds an SMTP socket"
        assert listening <= socket_inodes(engine) and accepted & socket_inodes(engine)
    finally:
        c.close()


def test_missing_user_is_a_clear_start_error(workdir, backend):
    from harness import Daemon
    d = Daemon(workdir, backend.port, {"user": "no-such-mxtier-user"})
    d.write_config()
    r = subprocess.run([MXTIERD, "-c", d.conf_path], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "user = no-such-mxtier-user: no such user" in r.stderr, r.stderr
    r = subprocess.run([MXTIERD, "-c", d.conf_path, "-t"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "user = no-such-mxtier-user: no such user" in r.stderr, (r.returncode, r.stderr)


def test_empty_user_means_one_process(start_daemon, backend):
    d = start_daemon(backend, user="")
    deliver(d)
    assert children(d.proc.pid) == []
    assert proc_status(d.proc.pid)["Uid"].split()[0] == "0"
    assert "privsep: off (user is empty)" in d.stderr()


# -- signals -------------------------------------------------------------------------

def test_sigterm_to_the_started_pid_stops_both(start_daemon, backend, workdir):
    ctl = os.path.join(workdir, "privsep.ctl")
    d = start_daemon(backend, control_socket=ctl)
    assert os.path.exists(ctl)
    engine = engine_of(d)
    c = SmtpClient(d.port, host=PRIMARY, source="127.0.0.2")
    assert c.greeting().code == 220
    d.signal(signal.SIGTERM)
    # the engine drains: the open session is still served
    assert c.ehlo().code == 250
    assert c.cmd("QUIT").code == 221
    c.close()
    assert d.proc.wait(10) == 0, d.stderr()[-2000:]
    wait_until(lambda: not alive(engine), 5, what="the engine %d to exit" % engine)
    assert "mxtierd stopped" in d.stderr()
    assert not os.path.exists(ctl), "the parent removes the control socket the engine could not"


def test_killed_engine_makes_the_parent_exit_nonzero(start_daemon, backend):
    d = start_daemon(backend)
    engine = engine_of(d)
    os.kill(engine, signal.SIGKILL)
    rc = d.proc.wait(10)
    assert rc != 0, d.stderr()[-2000:]
    assert "killed by signal 9" in d.stderr()


def test_parent_death_stops_the_engine(start_daemon, backend):
    d = start_daemon(backend, shutdown_grace="1s")
    engine = engine_of(d)
    d.proc.kill()
    d.proc.wait(5)
    # PR_SET_PDEATHSIG: the engine gets SIGTERM and drains within shutdown_grace
    wait_until(lambda: not alive(engine), 6, what="the engine %d to follow its parent" % engine)


def test_sigusr1_is_passed_to_the_engine(start_daemon, backend):
    d = start_daemon(backend)
    deliver(d)
    d.signal(signal.SIGUSR1)
    # the engine's counters (it served the session), and the parent's channel counters
    wait_until(lambda: "stats sessions=" in d.stderr() and "privsep: from the engine" in d.stderr(), 5,
               what="counters logged after SIGUSR1:\n%s" % d.stderr()[-2000:])
    line = [l for l in d.stderr().splitlines() if "stats sessions=" in l][-1]
    assert "relay=1" in line, line
    assert d.proc.poll() is None


def test_sighup_reload_moves_tier_roles(start_daemon, backend):
    d = start_daemon(backend)
    with SmtpClient(d.port, host=SECONDARY, source="127.0.0.3") as c:
        assert c.greeting().code == 220
    d.reload({"secondary_ips": None, "bait_ips": "%s %s" % (BAIT, SECONDARY)})

    def bait_now():
        with SmtpClient(d.port, host=SECONDARY, source="127.0.0.4") as c:
            return c.greeting().last.startswith("421 4.7.0 %s " % HOSTNAME)
    wait_until(bait_now, 5, interval=0.2, what="the secondary address to answer as a bait")
    assert "is now bait (was secondary)" in d.stderr()
    assert engine_of(d)


def test_sighup_to_the_engine_asks_the_parent(start_daemon, backend):
    """A SIGHUP sent to the engine itself reloads too: the parent reads the file."""
    d = start_daemon(backend)
    engine = engine_of(d)
    d.config.update({"primary_ips": "%s 127.0.0.13" % PRIMARY})
    d.write_config()
    os.kill(engine, signal.SIGHUP)
    wait_until(lambda: "listening on 127.0.0.13 port %d as primary" % d.port in d.stderr(), 5,
               what="the new primary address bound through the parent")
    with SmtpClient(d.port, host="127.0.0.13", source="127.0.0.2") as c:
        assert c.greeting().code == 220


def test_reload_refused_by_the_parent_keeps_the_engine_config(start_daemon, backend):
    d = start_daemon(backend)
    d.reload({"primary_ips": None, "bait_ips": "%s %s" % (BAIT, PRIMARY)}, extra_lines=["bogus_key = 1"])
    wait_until(lambda: "reload refused: %s:" % d.conf_path in d.stderr(), 5, what="reload refused")
    with SmtpClient(d.port, host=PRIMARY, source="127.0.0.2") as c:
        assert c.greeting().code == 220


# -- secrets -------------------------------------------------------------------------

SECRET = "Pr1vsepS3cretConninfo"
ENV_SECRET = "Pr1vsepS3cretFromEnv"


def test_engine_holds_no_database_secret(start_daemon, backend, monkeypatch):
    """The conninfo (here: a server nobody listens on) and PGPASSWORD stay in the
    parent: not in the engine's environ, cmdline or memory; the parent warns."""
    monkeypatch.setenv("PGPASSWORD", ENV_SECRET)
    d = start_daemon(backend, database="host=127.0.0.1 port=1 dbname=mxtier user=mxtier password=%s" % SECRET)
    engine = engine_of(d)
    deliver(d)
    assert "prefer passfile=" in d.stderr()
    for what in ("environ", "cmdline"):
        data = read_bytes("/proc/%d/%s" % (engine, what))
        assert SECRET.encode() not in data and ENV_SECRET.encode() not in data, what
    assert ENV_SECRET.encode() in read_bytes("/proc/%d/environ" % d.proc.pid)
    # The scan can see a secret: the parent, which needs it, has it.
    assert memory_holds(d.proc.pid, SECRET.encode())
    found = memory_holds(engine, SECRET.encode())
    assert found is None, "the conninfo's password is in the engine's memory: %s" % found
    if not sanitized():
        # (ASan's runtime keeps its own copy of the initial environment)
        found = memory_holds(engine, ENV_SECRET.encode())
        assert found is None, "PGPASSWORD is in the engine's memory: %s" % found
    assert SECRET not in d.stderr()


# -- the privileged work still happens ---------------------------------------------------------

def test_session_row_reaches_postgresql_through_the_parent(request, start_daemon, backend):
    import dblib
    import pgcluster
    why = pgcluster.available()
    if why:
        pytest.skip(why)
    cluster = pgcluster.Cluster().create().start()
    request.addfinalizer(cluster.destroy)
    workdir = os.path.dirname(backend.dir)
    world = dblib.DbWorld(cluster, workdir, start_daemon)
    # trust authentication ignores the password; the point is where it is kept
    d = world.start_daemon(backend, database=world.conninfo() + " password=" + SECRET)
    engine = engine_of(d)
    client = deliver(d)
    d.session_for(client)
    query = "SELECT host(client) AS client, appliance, verdict FROM sessions WHERE host(client) = '127.0.0.2'"
    world.wait_rows(1, query)
    assert world.rows(query) == [{"client": "127.0.0.2", "appliance": "A", "verdict": "relay"}]
    assert dblib.status(d)["privsep"] == "yes"
    assert dblib.status(d)["db_connected"] == "yes"
    assert memory_holds(engine, SECRET.encode()) is None
    assert memory_holds(engine, world.conninfo().encode()) is None


def test_bait_block_reaches_the_kernel_set_through_the_parent(request, kworkdir_privsep):
    import netns_topology as nt
    why = nt.missing_prerequisites()
    if why:
        pytest.skip("kernel-rules part skipped: " + why)
    nt.cleanup_stale()
    topo = nt.Topology().create()
    started = []

    def cleanup():
        nt.stop_all(started)
        errors = topo.destroy()
        assert not errors, errors
    request.addfinalizer(cleanup)
    backend = nt.NsBackend(topo, kworkdir_privsep)
    started.append(backend)
    backend.start()
    daemon = nt.NsDaemon(topo, kworkdir_privsep, {"block_ttl": "30s"})
    daemon.write_config()
    topo.load_ruleset(daemon.conf_path)
    topo.load_routing(daemon.conf_path)
    started.append(daemon)
    daemon.start()
    engine = engine_of(daemon)
    assert int(proc_status(engine)["CapEff"], 16) == 0
    bad = nt.CLIENTS4[1]
    outcome = topo.connect_outcome(bad, nt.BAIT4)
    assert outcome[0] == "banner" and outcome[1].startswith("421"), outcome
    elements = nt.wait_for(lambda: (topo.set_elements("block4") or {}).get(bad), 3,
                           what="%s in block4:\n%s" % (bad, topo.set_text("block4")))
    assert elements[0] == 30, elements
    # the set writer's netlink socket is the parent's; the engine has none
    netlink = netlink_inodes(engine)
    assert socket_inodes(daemon.proc.pid) & netlink, "the parent has no netlink socket"
    assert not (socket_inodes(engine) & netlink), "the engine holds a netlink socket"


@pytest.fixture
def kworkdir_privsep():
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="mxtier-privsep-")
    yield path
    shutil.rmtree(path, ignore_errors=True)
