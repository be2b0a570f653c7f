"""Fixtures for the dashboard tests: a PostgreSQL cluster with test rows, and
helpers to fill a migrated database the way the daemon's writer does.

    def test_x(dash_db):
        dash_db.fill()                      # sessions of two appliances, listings, appliances
        dash_db.reader_rows("SELECT ...")   # as a login role in mxtier_reader

The cluster and its fixtures come from tests/integration/db/dblib.py (`pg`,
`dbw`); rows are written through mxtier_record_session(), the function the
daemon's writer calls, so the views see what they will see on an appliance.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "db"))
sys.path.insert(0, os.path.dirname(HERE))

from dblib import dbw, pg, ctl  # noqa: E402,F401 (fixtures)

READER = "mxtier_r_dash"      # login role in mxtier_reader

# (appliance, minutes ago, tier, client, rdns, helo, mail_from, verdict, reasons)
TEST_SESSIONS = [
    ("A", 5, "primary", "192.0.2.7", "mail.example.org", "mail.example.org", "a@example.org", "relay", []),
    ("A", 6, "primary", "192.0.2.8", None, "x", "b@spam.test", "tempfail", ["no-rdns"]),
    ("A", 4, "secondary", "192.0.2.8", None, "x", "b@spam.test", "relay", ["retried"]),
    ("A", 70, "bait", "198.51.100.9", "host-9.dyn.isp.test", "y", "c@spam.test", "tempfail",
     ["bait", "bait-first-contact"]),
    ("B", 80, "primary", "198.51.100.10", "host-10.dyn.isp.test", "y", "c@spam.test", "reject", ["dnsbl"]),
    ("B", 26 * 60, "primary", "203.0.113.5", None, "z", "d@spam.test", "tempfail", ["helo-invalid"]),
    ("B", 26 * 60 + 5, "secondary", "203.0.113.5", None, "z", "d@spam.test", "tempfail", ["skipped-primary"]),
]


def _lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "ARRAY[%s]::text[]" % ",".join(_lit(x) for x in v) if v else "'{}'::text[]"
    return "'%s'" % str(v).replace("'", "''")


def record_session_sql(n, appliance, minutes_ago, tier, client, rdns, helo, mail_from, verdict, reasons):
    """record_session_sql - one mxtier_record_session() call, as the writer makes it."""
    started = "now() - interval '%d minutes'" % minutes_ago
    prefix = "network(set_masklen(%s::inet, 24))" % _lit(client)
    domain = None
    if rdns:
        domain = ".".join(rdns.split(".")[-2:])
    return ("SELECT mxtier_record_session(%s, %s, %s, %s + interval '1 second', %s, %s::inet, %s, %s, %s, %s, %s, 1, "
            "'user@demo.test', %d, %s, %s, 0, 100, 12, %s, %s)" % (
                _lit("t%04d" % n), _lit(appliance), started, started, _lit(tier), _lit(client), prefix, _lit(rdns),
                _lit(bool(rdns)), _lit(helo), _lit(mail_from), 1 if verdict == "relay" else 0, _lit(verdict),
                _lit(reasons), _lit("250 ok" if verdict == "relay" else None), _lit(domain)))


class DashDb:
    def __init__(self, dbw):
        self.dbw = dbw
        self.pg = dbw.pg
        self.db = dbw.db

    def migrate(self):
        self.dbw.migrate()
        self.pg.create_login(self.db, READER, "mxtier_reader")
        return self

    def fill(self, sessions=TEST_SESSIONS):
        stmts = [record_session_sql(i, *s) for i, s in enumerate(sessions)]
        stmts.append("INSERT INTO appliances (name, version, tier_map, heartbeat) VALUES "
                     "('A', 'test', '{\"192.0.2.10\": \"primary\"}', now()), "
                     "('B', 'test', '{\"192.0.2.20\": \"secondary\"}', now() - interval '5 minutes')")
        stmts.append("INSERT INTO listings (network, kind, reason, expires_at) VALUES "
                     "('198.51.100.0/24', 'block', 'manual', now() + interval '1 hour'), "
                     "('192.0.2.7/32', 'allow', 'manual', NULL)")
        self.pg.sql(self.db, ";\n".join(stmts))
        return self

    def reader_run(self, sql):
        """reader_run - psql as the mxtier_reader login: the CompletedProcess (does not raise)."""
        return self.pg.run_sql(self.db, sql, user=READER)

    def reader_rows(self, query):
        return self.pg.rows(self.db, query, user=READER)


@pytest.fixture
def dash_db(dbw):
    return DashDb(dbw).migrate()
