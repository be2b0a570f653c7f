"""Migrations: `mxtierctl db migrate` on an empty database, idempotence,
the roles' privileges, and a daemon started on an unmigrated database."""

import glob
import os
import re

from dblib import WRITER, ctl, status
from harness import PRIMARY, TOP, wait_until

TABLES = ("sessions", "reputation", "contacts", "listings", "appliances", "mxtier_schema_migrations")
VIEWS = ("verdicts_per_tier_hourly", "top_offending_prefixes", "retry_conversion")
MIGRATIONS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(TOP, "db", "migrations", "[0-9]*_*.sql")))


def test_migrate_empty_database(dbw):
    assert MIGRATIONS, "no db/migrations/NNNN_*.sql"
    r = dbw.migrate()
    out = r.stdout + r.stderr
    for m in MIGRATIONS:        # it says what it did
        assert m[:4] in out or m[:-4] in out, "migrate output does not name %s:\n%s" % (m, out)

    tables = {t["table_name"] for t in dbw.rows(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    for t in TABLES + VIEWS:
        assert t in tables, "%s missing after migrate (have %s)" % (t, sorted(tables))
    kinds = {r["relname"]: r["relkind"] for r in dbw.rows(
        "SELECT relname, relkind FROM pg_class WHERE relname IN (%s)" % ",".join("'%s'" % v for v in VIEWS))}
    assert kinds == {v: "v" for v in VIEWS}
    assert dbw.value("SELECT relkind FROM pg_class WHERE relname = 'sessions'") == "p"   # partitioned

    roles = {r["rolname"] for r in dbw.rows("SELECT rolname FROM pg_roles WHERE rolname LIKE 'mxtier_%'")}
    assert {"mxtier_writer", "mxtier_reader"} <= roles

    applied = dbw.rows("SELECT version, name, applied_at FROM mxtier_schema_migrations ORDER BY version")
    assert [int(a["version"]) for a in applied] == [int(m[:4]) for m in MIGRATIONS], applied
    assert all(a["applied_at"] for a in applied)

    # idempotent: a second run applies nothing and changes nothing
    r2 = ctl(dbw.admin_conf(), "db", "migrate")
    again = dbw.rows("SELECT version, name, applied_at FROM mxtier_schema_migrations ORDER BY version")
    assert again == applied, (again, applied, r2.stdout)
    for m in MIGRATIONS:
        assert not re.search(r"(?i)appl(y|ied|ying)\S*\s+%s" % re.escape(m[:4]), r2.stdout), \
            "second migrate claims to apply %s again:\n%s" % (m, r2.stdout)


def test_roles_least_privilege(dbw):
    dbw.migrate()
    reader = dbw.pg.create_login(dbw.db, "mxtier_r", "mxtier_reader")
    for view in VIEWS + ("sessions", "reputation", "listings"):
        dbw.pg.sql(dbw.db, "SELECT count(*) FROM %s" % view, user=reader)
    for stmt in ("INSERT INTO listings (network, kind) VALUES ('192.0.2.1', 'block')",
                 "INSERT INTO reputation (kind, key) VALUES ('address', '192.0.2.1')",
                 "SELECT mxtier_record_session('x', 'A', now(), now(), 'primary', '192.0.2.1', '192.0.2.0/24', "
                 "NULL, false, 'h', 'a@b', 1, 'c@d', 1, 'relay', '{}', 0, 1, 1, '250', NULL)",
                 # SECURITY DEFINER functions run as the owner: EXECUTE must not be PUBLIC's
                 "SELECT mxtier_session_retention(-1)",
                 "SELECT mxtier_contact('a:192.0.2.9', NULL, NULL, NULL, NULL, false, NULL, "
                 "now() + interval '1 day', 'x')",
                 # the batch writer's functions (0003) too
                 "SELECT mxtier_record_sessions('{x}', '{A}', ARRAY[now()::text], ARRAY[now()::text], '{primary}', "
                 "'{192.0.2.1}', '{192.0.2.0/24}', '{NULL}', '{false}', '{h}', '{a@b}', '{1}', '{c@d}', '{1}', "
                 "'{relay}', '{\"{}\"}', '{0}', '{1}', '{1}', '{250}', '{NULL}')",
                 "SELECT mxtier_contacts('{a:192.0.2.9}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{false}', "
                 "'{NULL}', '{NULL}', '{NULL}')",
                 "DELETE FROM sessions"):
        r = dbw.pg.run_sql(dbw.db, stmt, user=reader)
        assert r.returncode != 0 and b"permission denied" in r.stderr, (stmt, r.stderr)
    # the writer may record, but not delete history or change the schema
    dbw.pg.sql(dbw.db, "SELECT mxtier_record_session('x', 'A', now(), now(), 'primary', '192.0.2.1', "
                       "'192.0.2.0/24', NULL, false, 'h', 'a@b', 1, 'c@d', 1, 'relay', '{}', 0, 1, 1, '250', NULL)",
               user=WRITER)
    dbw.pg.sql(dbw.db, "SELECT mxtier_record_sessions('{y}', '{A}', ARRAY[now()::text], ARRAY[now()::text], "
                       "'{bait}', '{192.0.2.2}', '{192.0.2.0/24}', '{NULL}', '{false}', '{h}', '{NULL}', '{0}', "
                       "'{NULL}', '{0}', '{tempfail}', '{\"{bait}\"}', '{0}', '{0}', '{1}', '{NULL}', '{NULL}')",
               user=WRITER)
    for stmt in ("DELETE FROM sessions", "DROP TABLE reputation", "TRUNCATE sessions"):
        r = dbw.pg.run_sql(dbw.db, stmt, user=WRITER)
        assert r.returncode != 0, stmt
    assert dbw.count("sessions") == 2
    # a resend of the same row changes nothing, reputation included
    before = dbw.value("SELECT sessions FROM reputation WHERE kind = 'prefix' AND key = '192.0.2.0/24'")
    dbw.pg.sql(dbw.db, "SELECT mxtier_record_sessions(ARRAY[session_id], ARRAY[appliance], ARRAY[started_at::text], "
                       "ARRAY[ended_at::text], '{bait}', '{192.0.2.2}', '{192.0.2.0/24}', '{NULL}', '{false}', '{h}', "
                       "'{NULL}', '{0}', '{NULL}', '{0}', '{tempfail}', '{\"{bait}\"}', '{0}', '{0}', '{1}', "
                       "'{NULL}', '{NULL}') FROM sessions WHERE session_id = 'y'", user=WRITER)
    assert dbw.count("sessions") == 2
    assert dbw.value("SELECT sessions FROM reputation WHERE kind = 'prefix' AND key = '192.0.2.0/24'") == before


def test_migration_below_the_highest_still_applies(dbw, backend):
    """Migrations are recorded one by one: with a lower number missing (a
    branch's 0002 merged after 0003 was applied), mxtierd says which is
    missing and `db migrate` applies it although a higher one is there."""
    dbw.migrate()
    assert len(MIGRATIONS) >= 2
    first = MIGRATIONS[0][:-4]
    dbw.sql("DELETE FROM mxtier_schema_migrations WHERE version = %d" % int(first[:4]))
    d = dbw.start_daemon(backend)
    wait_until(lambda: "schema lacks migration %s" % first in d.stderr(), 5,
               what="the missing migration named:\n%s" % d.stderr())
    r = ctl(dbw.admin_conf(), "db", "migrate")
    assert "applied %s" % first in r.stdout, r.stdout
    applied = [int(a["version"]) for a in dbw.rows("SELECT version FROM mxtier_schema_migrations ORDER BY version")]
    assert applied == [int(m[:4]) for m in MIGRATIONS], applied


def test_daemon_on_unmigrated_database(dbw, backend, connect):
    """Schema behind: mxtierd says how to migrate and relays without the database."""
    d = dbw.start_daemon(backend, migrate=False, user="postgres")
    hint = "mxtierctl -c %s db migrate" % d.conf_path
    wait_until(lambda: hint in d.stderr(), 5, what="%r in mxtierd stderr:\n%s" % (hint, d.stderr()))
    c = connect(d)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    replies = c.send_mail("a@example.org", ["b@example.net"], b"Subject: t\r\n\r\nhello\r\n")
    assert [r.code for r in replies] == [250, 250, 354, 250]
    assert c.cmd("QUIT").code == 221
    wait_until(lambda: len(backend.messages()) == 1, 5, what="message at the backend")
    d.session_for(c)
    # nothing was created behind the operator's back
    assert dbw.value("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    from dblib import status
    assert status(d).get("db_connected") == "no"


def test_daemon_as_writer_role(dbw, backend, connect):
    """mxtierd logged in as a member of mxtier_writer only: the whole write
    path (sessions, reputation, contacts, appliances, listings) works."""
    d = dbw.start_daemon(backend, user=WRITER, appliance="W")
    wait_until(lambda: status(d).get("db_connected") == "yes", 5,
               what="db_connected yes as %s:\n%s" % (WRITER, d.stderr()[-2000:]))
    for i in range(3):
        c = connect(d, source="127.0.2.%d" % (i + 1))
        assert c.greeting().code == 220
        assert c.ehlo("mail%d.writer.test" % i).code == 250
        replies = c.send_mail("a@writer.test", ["b@dest.test"], b"Subject: w\r\n\r\nhi\r\n")
        assert [r.code for r in replies] == [250, 250, 354, 250]
        c.cmd("QUIT")
        d.session_for(c)
    ctl(d.conf_path, "block", "add", "127.0.2.99", "1h")
    dbw.wait_rows(3)
    wait_until(lambda: dbw.count("listings") == 1, 5, what="listing row")
    assert dbw.count("SELECT * FROM reputation WHERE kind = 'address' AND key LIKE '127.0.2.%'") == 3
    assert dbw.count("SELECT * FROM appliances WHERE name = 'W'") == 1
    assert dbw.count("contacts") >= 3
    s = status(d)
    assert s["db_errors"] == "0" and "permission denied" not in d.stderr(), d.stderr()[-3000:]
