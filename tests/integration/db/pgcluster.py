"""pgcluster - throw-away PostgreSQL clusters for the database tests and bench.

    c = Cluster().create().start()          # initdb + postmaster on a unix socket
    db = c.create_database()                # a fresh database, its name
    c.sql(db, "SELECT 1")                   # psql -At, output text
    c.rows(db, "SELECT * FROM sessions")    # [dict], through json_agg
    c.stop(); c.start()                     # fast shutdown / start again
    c.destroy()                             # stop (by PID) and remove the dir

The cluster runs as the `postgres` user (initdb refuses root) in a temp dir
owned by it, with trust authentication on a unix socket only
(listen_addresses = ''), on a free port.  Python has no PostgreSQL driver
here, so every query goes through psql; values are read back as JSON so
that hostile strings come back exactly.
"""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
PSQL = os.path.join(PG_BIN, "psql") if os.path.exists(os.path.join(PG_BIN, "psql")) else "/usr/bin/psql"
PG_USER = "postgres"


def available():
    """available - '' when clusters can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root (initdb runs as the postgres user via runuser)"
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not os.access(os.path.join(PG_BIN, tool), os.X_OK):
            return "PostgreSQL binaries missing (%s/%s)" % (PG_BIN, tool)
    if not os.access(PSQL, os.X_OK):
        return "psql missing"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return "no %s user" % PG_USER
    return ""


def _free_port():
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port >= 20000:
            return port
    raise RuntimeError("no free port")


class Cluster:
    def __init__(self, prefix="mxtier-pg-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        pw = pwd.getpwnam(PG_USER)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = _free_port()
        self.host = self.dir          # the unix socket directory
        self.pid = None
        self._dbs = 0

    def _as_postgres(self, argv, **kw):
        return subprocess.run(["runuser", "-u", PG_USER, "--"] + argv, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)

    def create(self):
        r = self._as_postgres([os.path.join(PG_BIN, "initdb"), "-D", self.data, "--auth=trust",
                               "-U", PG_USER, "--no-sync", "-E", "UTF8", "--locale=C"])
        if r.returncode != 0:
            raise RuntimeError("initdb failed: %s" % r.stdout.decode(errors="replace"))
        return self

    def start(self, timeout=30):
        opts = "-p %d -k %s -c listen_addresses='' -c fsync=off -c max_connections=100" % (self.port, self.dir)
        r = self._as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", opts, "-l", self.log,
                               "-w", "-t", str(timeout), "start"])
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed: %s\n%s" % (r.stdout.decode(errors="replace"), self.log_text()))
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())
        return self

    def running(self):
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, mode="fast", timeout=20):
        """stop - SIGINT (fast: disconnect clients) or SIGQUIT (immediate) to the postmaster's PID."""
        if not self.running():
            self.pid = None
            return
        os.kill(self.pid, signal.SIGQUIT if mode == "immediate" else signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.2)
        self.pid = None

    def destroy(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- connections ------------------------------------------------------

    def conninfo(self, db, user=PG_USER, **extra):
        parts = ["host=%s" % self.host, "port=%d" % self.port, "dbname=%s" % db, "user=%s" % user]
        parts += ["%s=%s" % kv for kv in extra.items()]
        return " ".join(parts)

    def psql_argv(self, db, user=PG_USER):
        return [PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port),
                "-U", user, "-d", db]

    def run_sql(self, db, sql, user=PG_USER, timeout=30):
        """run_sql - the CompletedProcess of psql -c SQL (does not raise)."""
        return subprocess.run(self.psql_argv(db, user) + ["-c", sql], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)

    def sql(self, db, sql, user=PG_USER, timeout=30):
        r = self.run_sql(db, sql, user, timeout)
        if r.returncode != 0:
            raise RuntimeError("psql failed (%d): %s\n%s" % (r.returncode, sql, r.stderr.decode(errors="replace")))
        return r.stdout.decode()

    def value(self, db, sql, **kw):
        return self.sql(db, sql, **kw).strip()

    def rows(self, db, query, **kw):
        """rows - the result of a SELECT as a list of dicts (exact strings, via JSON)."""
        out = self.sql(db, "SELECT coalesce(json_agg(t), '[]'::json) FROM (%s) t" % query, **kw)
        return json.loads(out)

    def count(self, db, table_or_query):
        q = table_or_query if " " in table_or_query else "SELECT * FROM %s" % table_or_query
        return int(self.value(db, "SELECT count(*) FROM (%s) t" % q))

    def create_database(self, name=None):
        self._dbs += 1
        name = name or "mxtier_t%d" % self._dbs
        self.sql("postgres", "CREATE DATABASE %s" % name)
        return name

    def create_login(self, db, name, role):
        """create_login - a login role that is a member of role (e.g. mxtier_writer)."""
        self.sql(db, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                     "CREATE ROLE %s LOGIN IN ROLE %s; END IF; END $$" % (name, name, role))
        return name

    def hold_lock(self, db, table, seconds, mode="ACCESS EXCLUSIVE"):
        """hold_lock - another psql that holds LOCK TABLE for `seconds`; returns (Popen, granted())."""
        sql = "BEGIN; LOCK TABLE %s IN %s MODE; SELECT pg_sleep(%s); COMMIT;" % (table, mode, seconds)
        proc = subprocess.Popen(self.psql_argv(db) + ["-c", sql], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def granted():
            return self.value(db, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                  "WHERE c.relname = '%s' AND l.mode = 'AccessExclusiveLock' AND l.granted"
                              % table) != "0"
        return proc, granted
