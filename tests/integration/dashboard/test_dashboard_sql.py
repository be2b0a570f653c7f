"""The views of 0002_dashboard_views.sql and every SQL query of the Grafana
boards (dashboards/grafana/*.json), with Grafana's macros substituted, run as
a login role in mxtier_reader against a migrated database holding test rows,
and return rows of the expected shape."""

import glob
import json
import os
import re
import subprocess

from dashlib import HERE

TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
GRAFANA = os.path.join(TOP, "dashboards", "grafana")
VIEWS = {
    # the five of docs/http-api.md (GET /api/history)
    "dash_sessions_hourly": ["appliance", "hour", "tier", "verdict", "sessions"],
    "dash_sessions_daily": ["appliance", "day", "tier", "verdict", "sessions"],
    "dash_stopped_before_backend": ["appliance", "day", "sessions", "stopped", "share"],
    "dash_retried_relayed": ["appliance", "day", "deferred", "retried_relayed"],
    "dash_top_blocked": ["kind", "key", "sessions", "last_seen"],
    # Grafana's and the pages'
    "dash_stopped_hourly": ["appliance", "hour", "sessions", "stopped", "deferred", "retried_relayed"],
    "dash_reasons_hourly": ["appliance", "hour", "tier", "verdict", "reason", "sessions"],
    "dash_blocked_daily": ["appliance", "day", "kind", "key", "sessions", "last_seen"],
    "dash_contacts": ["started_at", "ended_at", "appliance", "tier", "client", "client_prefix", "rdns", "fcrdns",
                      "rdns_domain", "helo", "mail_from", "sender_domain", "rcpt_count", "messages", "verdict",
                      "reasons", "dnsbl_score", "duration_ms", "backend_reply"],
    "dash_listings_active": ["id", "network", "kind", "reason", "expires_at", "set_by", "created_at",
                             "expires_in_s"],
    "dash_appliances": ["name", "version", "tier_map", "started_at", "heartbeat", "heartbeat_age_s", "shedding",
                        "backend_down", "healthy"],
}

SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(interval):
    m = re.fullmatch(r"'?(\d+)([smhd])'?", interval.strip())
    assert m, "interval %r" % interval
    return int(m.group(1)) * SECONDS[m.group(2)]


def substitute(sql, interval="1h", appliances=("A", "B")):
    """substitute - Grafana's PostgreSQL macros and the board's variables, as Grafana expands them."""
    frm, to = "now() - interval '7 days'", "now()"
    sql = sql.replace("$__interval", interval).replace("$__rate_interval", interval)

    def group(m, alias):
        col, iv = [p.strip() for p in m.group(1).split(",", 1)]
        s = _seconds(iv)
        return "floor(extract(epoch from %s)/%d)*%d%s" % (col, s, s, ' AS "time"' if alias else "")
    sql = re.sub(r"\$__timeGroupAlias\(([^()]*)\)", lambda m: group(m, True), sql)
    sql = re.sub(r"\$__timeGroup\(([^()]*)\)", lambda m: group(m, False), sql)
    sql = re.sub(r"\$__timeFilter\(([^()]*)\)", lambda m: "%s BETWEEN %s AND %s" % (m.group(1), frm, to), sql)
    sql = sql.replace("$__timeFrom()", frm).replace("$__timeTo()", to)
    sql = sql.replace("$appliance", ",".join("'%s'" % a for a in appliances))
    assert "$" not in sql, "unsubstituted macro or variable left in %s" % sql
    return sql


def board_queries():
    """board_queries - (board file, panel title, format, SQL) of every PostgreSQL query, variables too."""
    out = []
    files = sorted(glob.glob(os.path.join(GRAFANA, "*.json")))
    assert files, "no Grafana boards in %s" % GRAFANA
    for path in files:
        with open(path) as f:
            board = json.load(f)
        name = os.path.basename(path)
        for var in board.get("templating", {}).get("list", []):
            if var.get("datasource", {}).get("uid") == "${DS_POSTGRES}":
                out.append((name, "variable " + var["name"], "table", var["query"]))
        for panel in board["panels"]:
            for t in panel.get("targets", []):
                if "rawSql" in t:
                    out.append((name, panel["title"], t.get("format", "time_series"), t["rawSql"]))
    return out


def test_boards_are_generated_from_make_boards():
    r = subprocess.run([os.path.join(GRAFANA, "make-boards"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_views_have_their_columns_and_the_reader_may_read_them(dash_db):
    dash_db.fill()
    for view, cols in VIEWS.items():
        got = [r["column_name"] for r in dash_db.reader_rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = '%s' "
            "ORDER BY ordinal_position" % view)]
        assert got == cols, (view, got)
        assert dash_db.reader_rows("SELECT * FROM %s" % view), "%s has no rows" % view
    # read-only: the reader writes nothing
    r = dash_db.reader_run("INSERT INTO listings (network, kind) VALUES ('192.0.2.1', 'block')")
    assert r.returncode != 0 and b"permission denied" in r.stderr


def test_view_figures(dash_db):
    dash_db.fill()
    rows = dash_db.reader_rows("SELECT appliance, sum(sessions)::int AS n FROM dash_sessions_daily "
                               "GROUP BY 1 ORDER BY 1")
    assert rows == [{"appliance": "A", "n": 4}, {"appliance": "B", "n": 3}]
    r = dash_db.reader_rows("SELECT sum(deferred)::int AS d, sum(retried_relayed)::int AS r FROM dash_retried_relayed "
                            "WHERE appliance = 'A'")
    assert r == [{"d": 1, "r": 1}]
    assert dash_db.reader_rows("SELECT sum(deferred)::int AS d, sum(retried_relayed)::int AS r "
                               "FROM dash_stopped_hourly WHERE appliance = 'A'") == r
    # blocked: the reject (dnsbl) and the bait-first-contact block, both from 198.51.100.0/24
    top = dash_db.reader_rows("SELECT kind, key, sessions::int FROM dash_top_blocked ORDER BY kind, key")
    assert top == [{"kind": "address", "key": "198.51.100.10", "sessions": 1},
                   {"kind": "address", "key": "198.51.100.9", "sessions": 1},
                   {"kind": "prefix", "key": "198.51.100.0/24", "sessions": 2},
                   {"kind": "rdns_domain", "key": "isp.test", "sessions": 2}], top
    stopped = dash_db.reader_rows("SELECT sum(stopped)::int AS s, sum(sessions)::int AS n, "
                                  "round((sum(stopped)::float / sum(sessions))::numeric, 3)::float AS share "
                                  "FROM dash_stopped_before_backend")
    assert stopped == [{"s": 5, "n": 7, "share": 0.714}]
    ages = {r["name"]: r for r in dash_db.reader_rows("SELECT * FROM dash_appliances")}
    assert ages["A"]["healthy"] is True and ages["B"]["healthy"] is False
    assert 290 <= ages["B"]["heartbeat_age_s"] <= 400


def test_every_grafana_query_runs_as_the_reader(dash_db):
    dash_db.fill()
    queries = board_queries()
    assert len(queries) >= 10
    for board, title, fmt, raw in queries:
        sql = substitute(raw)
        r = dash_db.reader_run("SELECT coalesce(json_agg(t), '[]'::json) FROM (%s) t" % sql)
        assert r.returncode == 0, "%s / %s: %s\n%s" % (board, title, r.stderr.decode(), sql)
        rows = json.loads(r.stdout)
        assert rows, "%s / %s returned no rows:\n%s" % (board, title, sql)
        cols = list(rows[0])
        if fmt == "time_series":
            assert cols[0] == "time" and isinstance(rows[0]["time"], (int, float)), (title, rows[0])
            values = [c for c in cols[1:] if c != "metric"]
            assert values and all(isinstance(row[c], (int, float)) or row[c] is None
                                  for row in rows for c in values), (title, rows[:3])
            times = [row["time"] for row in rows]
            assert times == sorted(times), "%s: not ordered by time" % title
        else:
            assert len(cols) >= 1, title


def test_macros_substitute_like_grafana():
    s = substitute("SELECT $__timeGroupAlias(bucket, $__interval), x FROM t WHERE $__timeFilter(bucket)", "5m")
    assert s == ("SELECT floor(extract(epoch from bucket)/300)*300 AS \"time\", x FROM t WHERE bucket BETWEEN "
                 "now() - interval '7 days' AND now()")
