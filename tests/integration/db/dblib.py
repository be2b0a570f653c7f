"""Fixtures for the database tests: PostgreSQL clusters and mxtierd with `database` set.

    def test_x(dbw, start_backend):
        d = dbw.start_daemon(start_backend(), appliance="A")   # migrated db, writer role
        ...
        dbw.wait_rows(3)
        rows = dbw.rows("SELECT * FROM sessions")

One cluster serves the whole directory (`pg`, session scope) and every test
gets its own database in it (`dbw`); a test that stops the server gets a
cluster of its own (`own_cluster`).  Clusters are stopped by the
postmaster's PID and their directories removed.  Skipped unless root (initdb
runs as postgres via runuser) with the PostgreSQL 15 binaries installed.

Migrations run as the superuser through `mxtierctl -c FILE db migrate`.
mxtierd connects as the superuser too unless a test passes user=WRITER (a
login role in mxtier_writer, the least-privilege setup the migration
intends; test_migrations.py::test_daemon_as_writer_role runs the whole
write path with it), so that a privilege bug fails one test, not all.
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tiers"))

import pgcluster  # noqa: E402
from harness import TOP, check_sanitizer_report, sanitizer_env, wait_until  # noqa: E402

MXTIERCTL = os.path.join(os.environ.get("MXTIER_BUILD") or os.path.join(TOP, "build"), "mxtierctl")
WRITER = "mxtierd_w"          # login role in mxtier_writer


def ctl(conf, *args, timeout=30, check=True):
    """ctl - run mxtierctl -c conf args...; returns the CompletedProcess (text)."""
    r = subprocess.run([MXTIERCTL, "-c", conf] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=sanitizer_env())
    r.stdout = r.stdout.decode(errors="replace")
    r.stderr = r.stderr.decode(errors="replace")
    check_sanitizer_report(r.stderr, "mxtierctl %s" % " ".join(args))
    if check and r.returncode != 0:
        raise AssertionError("mxtierctl %s failed (%d):\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def status(daemon):
    """status - `mxtierctl status` of a daemon as {key: value}."""
    out = ctl(daemon.conf_path, "status").stdout
    fields = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            fields[parts[0]] = parts[1].strip()
    return fields


def db_counters(daemon):
    s = status(daemon)
    missing = [k for k in ("db_connected", "db_written", "db_dropped", "db_sessions_dropped", "db_errors",
                           "db_queue") if k not in s]
    assert not missing, "mxtierctl status lacks %s:\n%s" % (missing, s)
    # "dropped" counts session rows lost (the contract: every session is a row or a counted drop);
    # "events_dropped" also counts the contact news that went with them.
    return {"connected": s["db_connected"], "written": int(s["db_written"]),
            "dropped": int(s["db_sessions_dropped"]), "events_dropped": int(s["db_dropped"]),
            "errors": int(s["db_errors"]), "queue": int(s["db_queue"])}


@pytest.fixture(scope="session")
def pg():
    why = pgcluster.available()
    if why:
        pytest.skip(why)
    if not os.access(MXTIERCTL, os.X_OK):
        pytest.skip("mxtierctl not built")
    c = pgcluster.Cluster().create().start()
    yield c
    c.destroy()


@pytest.fixture
def own_cluster():
    """own_cluster - a cluster for one test (it may stop and start it)."""
    why = pgcluster.available()
    if why:
        pytest.skip(why)
    c = pgcluster.Cluster().create().start()
    yield c
    c.destroy()


class DbWorld:
    """DbWorld - one database, the migration, and daemons writing into it."""

    def __init__(self, cluster, workdir, start_daemon):
        self.pg = cluster
        self.workdir = workdir
        self._start_daemon = start_daemon
        self.db = cluster.create_database()
        self.migrated = False
        self.daemons = []

    def conninfo(self, user=pgcluster.PG_USER):
        return self.pg.conninfo(self.db, user=user, connect_timeout=2)

    def admin_conf(self):
        """admin_conf - a config file whose database is the superuser's (for migrate)."""
        path = os.path.join(self.workdir, "admin.conf")
        with open(path, "w") as f:
            f.write("primary_ips = 127.0.0.10\ndatabase = %s\n" % self.conninfo())
        return path

    def migrate(self):
        r = ctl(self.admin_conf(), "db", "migrate")
        self.pg.create_login(self.db, WRITER, "mxtier_writer")
        self.migrated = True
        return r

    def config(self, appliance="A", user=pgcluster.PG_USER, **extra):
        name = "%s-%d" % (appliance, len(self.daemons) + 1)
        cfg = {"database": self.conninfo(user), "appliance_name": appliance,
               "control_socket": os.path.join(self.workdir, name + ".ctl"),
               "db_flush_interval": "50ms"}
        cfg.update(extra)
        return cfg

    def start_daemon(self, backend, appliance="A", migrate=True, user=pgcluster.PG_USER, **config):
        if migrate and not self.migrated:
            self.migrate()
        d = self._start_daemon(backend, **self.config(appliance, user, **config))
        self.daemons.append(d)
        return d

    # -- queries ------------------------------------------------------------

    def sql(self, q, **kw):
        return self.pg.sql(self.db, q, **kw)

    def value(self, q, **kw):
        return self.pg.value(self.db, q, **kw)

    def rows(self, q, **kw):
        return self.pg.rows(self.db, q, **kw)

    def count(self, q):
        return self.pg.count(self.db, q)

    def wait_rows(self, n, query="SELECT * FROM sessions", timeout=10.0):
        """wait_rows - until the query has at least n rows; returns the count."""
        return wait_until(lambda: self.count(query) >= n and self.count(query), timeout,
                          interval=0.1, what="%d rows of %s (have %d)" % (n, query, self.count(query)))


@pytest.fixture
def dbw(pg, workdir, start_daemon):
    return DbWorld(pg, workdir, start_daemon)


@pytest.fixture
def dns():
    from tier_dns import TierDns
    server = TierDns().start()
    yield server
    server.stop()
