/*
 * http_db.c - the dashboard's reads from PostgreSQL, as the read-only
 * role of dashboard_database (mxtier_reader): history from the views of
 * docs/http-api.md, a sender's contacts, listings and reputation (what
 * `mxtierctl why` prints), the appliances. One connection, opened when
 * first needed and again after a failure; every query is bounded by a
 * server-side statement_timeout and a LIMIT, and its parameters are
 * passed as parameters. The HTTP process's loop waits for the answer:
 * nothing else runs there, so the SMTP engine never does.
 */
#include "http_internal.h"

#include <event2/buffer.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DB_STATEMENT_TIMEOUT_MS	3000
#define DB_CONNECT_TIMEOUT_S	3

/* Type OIDs (pg_type.h is the server's): what is written unquoted or converted. */
#define OID_BOOL	16
#define OID_INT8	20
#define OID_INT2	21
#define OID_INT4	23
#define OID_FLOAT4	700
#define OID_FLOAT8	701
#define OID_NUMERIC	1700
#define OID_TIMESTAMPTZ	1184
#define OID_TEXTARRAY	1009
#define OID_JSON	114
#define OID_JSONB	3802

struct http_db {
	char	*conninfo;
	PGconn	*pg;
	bool	 views;		/* the dash_ views exist (checked at each connect) */
};

struct http_db *
http_db_new(const char *conninfo)
{
	struct http_db *db = calloc(1, sizeof(*db));

	if (db == NULL || (db->conninfo = strdup(conninfo)) == NULL) {
		free(db);
		return NULL;
	}
	return db;
}

void
http_db_free(struct http_db *db)
{
	if (db == NULL)
		return;
	if (db->pg)
		PQfinish(db->pg);
	explicit_bzero(db->conninfo, strlen(db->conninfo));
	free(db->conninfo);
	free(db);
}

bool
http_db_configured(const struct http_db *db)
{
	return db && db->conninfo[0] != '\0';
}

/* db_connect - the connection, made now if there is none or it broke; NULL with err set. */
static PGconn *
db_connect(struct http_db *db, char *err, size_t errlen)
{
	const char *keys[] = { "dbname", "connect_timeout", "options", "application_name", NULL };
	char timeout[16], options[96];
	const char *values[] = { db->conninfo, timeout, options, "mxtier-dashboard", NULL };
	PGresult *res;

	if (db->pg && PQstatus(db->pg) == CONNECTION_OK)
		return db->pg;
	if (db->pg)
		PQfinish(db->pg);
	snprintf(timeout, sizeof(timeout), "%d", DB_CONNECT_TIMEOUT_S);
	/* Read-only whatever the role may do, UTC ISO timestamps, a bound on every statement. */
	snprintf(options, sizeof(options), "-c statement_timeout=%d -c default_transaction_read_only=on -c TimeZone=UTC",
	    DB_STATEMENT_TIMEOUT_MS);
	db->pg = PQconnectdbParams(keys, values, 1);	/* expand_dbname: dashboard_database is a whole conninfo */
	if (PQstatus(db->pg) != CONNECTION_OK) {
		snprintf(err, errlen, "database: %s", PQerrorMessage(db->pg));
		err[strcspn(err, "\n")] = '\0';
		PQfinish(db->pg);
		db->pg = NULL;
		return NULL;
	}
	res = PQexec(db->pg, "SELECT to_regclass('dash_sessions_hourly') IS NOT NULL");
	db->views = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return db->pg;
}

/* write_value - one field as JSON by its type. */
static void
write_value(struct evbuffer *out, const PGresult *res, int r, int f)
{
	const char *v = PQgetvalue(res, r, f);
	Oid type = PQftype(res, f);

	if (PQgetisnull(res, r, f)) {
		evbuffer_add_printf(out, "null");
	} else if (type == OID_BOOL) {
		evbuffer_add_printf(out, "%s", v[0] == 't' ? "true" : "false");
	} else if (type == OID_INT8 || type == OID_INT2 || type == OID_INT4 || type == OID_FLOAT4 || type == OID_FLOAT8 ||
	    type == OID_NUMERIC) {
		evbuffer_add_printf(out, "%s", strspn(v, "0123456789.-e+") == strlen(v) ? v : "null");
	} else if (type == OID_TIMESTAMPTZ) {
		/* "2026-12-08 00:00:00.123+00" (TimeZone UTC) as ISO 8601. */
		char iso[64];
		size_t n = strlen(v);

		snprintf(iso, sizeof(iso), "%s", v);
		if (n > 3 && n < sizeof(iso) && strcmp(iso + n - 3, "+00") == 0)
			snprintf(iso + n - 3, sizeof(iso) - (n - 3), "Z");
		if (strlen(iso) > 10 && iso[10] == ' ')
			iso[10] = 'T';
		json_string(out, iso);
	} else if (type == OID_JSON || type == OID_JSONB) {
		evbuffer_add_printf(out, "%s", v);	/* the server's own JSON output: valid as it is */
	} else if (type == OID_TEXTARRAY) {
		/* Reason codes: plain words, so the array literal is "{a,b}". */
		char *copy = strdup(v), *save = NULL;
		bool first = true;

		evbuffer_add_printf(out, "[");
		if (copy && copy[0] == '{') {
			copy[strcspn(copy, "}")] = '\0';
			for (char *w = strtok_r(copy + 1, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
				evbuffer_add_printf(out, "%s", first ? "" : ",");
				json_string(out, w);
				first = false;
			}
		}
		free(copy);
		evbuffer_add_printf(out, "]");
	} else {
		json_string(out, v);
	}
}

/* query_rows - "NAME":[{col:value,...},...] for one query; -1 with err set. */
static int
query_rows(struct http_db *db, struct evbuffer *out, const char *name, const char *sql, int n, const char *const *values,
    char *err, size_t errlen)
{
	PGconn *pg = db_connect(db, err, errlen);
	PGresult *res;

	if (pg == NULL)
		return -1;
	res = PQexecParams(pg, sql, n, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "database: %s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		return -1;
	}
	evbuffer_add_printf(out, "\"%s\":[", name);
	for (int r = 0; r < PQntuples(res); r++) {
		evbuffer_add_printf(out, "%s{", r ? "," : "");
		for (int f = 0; f < PQnfields(res); f++) {
			evbuffer_add_printf(out, "%s", f ? "," : "");
			json_string(out, PQfname(res, f));
			evbuffer_add_printf(out, ":");
			write_value(out, res, r, f);
		}
		evbuffer_add_printf(out, "}");
	}
	evbuffer_add_printf(out, "]");
	PQclear(res);
	return 0;
}

/*
 * The history queries: the views dashui's migration defines, or the same
 * columns from the base table before it exists.
 */
static const struct {
	const char	*name;
	const char	*view;	/* $1 = days */
	const char	*base;
} history_queries[] = {
	{ "hourly",
	  "SELECT appliance, hour, tier, verdict, sessions FROM dash_sessions_hourly "
	  "WHERE hour > now() - interval '1 day' ORDER BY hour, appliance, tier, verdict LIMIT 20000",
	  "SELECT appliance, date_trunc('hour', started_at) AS hour, tier, verdict, count(*) AS sessions FROM sessions "
	  "WHERE started_at > now() - interval '1 day' GROUP BY 1, 2, 3, 4 ORDER BY 2, 1, 3, 4 LIMIT 20000" },
	{ "daily",
	  "SELECT appliance, day, tier, verdict, sessions FROM dash_sessions_daily "
	  "WHERE day > (now() - make_interval(days => $1::integer))::date ORDER BY day, appliance, tier, verdict LIMIT 20000",
	  "SELECT appliance, started_at::date AS day, tier, verdict, count(*) AS sessions FROM sessions "
	  "WHERE started_at > now() - make_interval(days => $1::integer) GROUP BY 1, 2, 3, 4 ORDER BY 2, 1, 3, 4 LIMIT 20000" },
	{ "stopped_before_backend",
	  "SELECT appliance, day, sessions, stopped, share FROM dash_stopped_before_backend "
	  "WHERE day > (now() - make_interval(days => $1::integer))::date ORDER BY day, appliance LIMIT 5000",
	  "SELECT appliance, started_at::date AS day, count(*) AS sessions, count(*) FILTER (WHERE verdict <> 'relay') AS stopped, "
	  "(count(*) FILTER (WHERE verdict <> 'relay'))::float8 / count(*) AS share FROM sessions "
	  "WHERE started_at > now() - make_interval(days => $1::integer) GROUP BY 1, 2 ORDER BY 2, 1 LIMIT 5000" },
	{ "retried_relayed",
	  "SELECT appliance, day, deferred, retried_relayed FROM dash_retried_relayed "
	  "WHERE day > (now() - make_interval(days => $1::integer))::date ORDER BY day, appliance LIMIT 5000",
	  "SELECT appliance, started_at::date AS day, count(*) FILTER (WHERE tier = 'primary' AND verdict = 'tempfail') AS deferred, "
	  "count(*) FILTER (WHERE verdict = 'relay' AND 'retried' = ANY (reasons)) AS retried_relayed FROM sessions "
	  "WHERE started_at > now() - make_interval(days => $1::integer) GROUP BY 1, 2 ORDER BY 2, 1 LIMIT 5000" },
	{ "top_blocked",
	  "SELECT kind, key, sessions, last_seen FROM (SELECT *, row_number() OVER (PARTITION BY kind ORDER BY sessions DESC, key) AS n "
	  "FROM dash_top_blocked) t WHERE n <= 20 ORDER BY kind, sessions DESC, key",
	  /* Blocked as the view counts it: a reject, or a behaviour block (answered 4xx) by its reason. */
	  "WITH b AS (SELECT client, client_prefix, rdns, fcrdns, started_at FROM sessions WHERE started_at > now() - interval '7 days' "
	  "AND (verdict = 'reject' OR reasons && ARRAY['blocklist', 'bait-first-contact', 'hit-and-run', 'manual', 'reputation-bad'])) "
	  "SELECT kind, key, sessions, last_seen FROM (SELECT kind, key, count(*) AS sessions, max(started_at) AS last_seen, "
	  "row_number() OVER (PARTITION BY kind ORDER BY count(*) DESC, key) AS n FROM ("
	  "SELECT 'address' AS kind, host(client) AS key, started_at FROM b "
	  "UNION ALL SELECT 'prefix', client_prefix::text, started_at FROM b "
	  "UNION ALL SELECT 'rdns_domain', lower(rdns), started_at FROM b WHERE fcrdns AND rdns IS NOT NULL"
	  ") s GROUP BY 1, 2) t WHERE n <= 20 ORDER BY kind, sessions DESC, key" },
};

/* appliance_names - "appliances":["A","B"] (the contract: names, for the page's filter). */
static int
appliance_names(struct http_db *db, struct evbuffer *out, char *err, size_t errlen)
{
	PGresult *res = PQexec(db->pg, "SELECT name FROM appliances ORDER BY name LIMIT 1000");

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "database: %s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		return -1;
	}
	evbuffer_add_printf(out, ",\"appliances\":[");
	for (int r = 0; r < PQntuples(res); r++) {
		evbuffer_add_printf(out, "%s", r ? "," : "");
		json_string(out, PQgetvalue(res, r, 0));
	}
	evbuffer_add_printf(out, "]");
	PQclear(res);
	return 0;
}

int
http_db_history(struct http_db *db, const char *range, struct evbuffer *out, char *err, size_t errlen)
{
	const char *days = strcmp(range, "month") == 0 ? "31" : strcmp(range, "week") == 0 ? "7" : "1";
	const char *values[1] = { days };

	if (db_connect(db, err, errlen) == NULL)
		return -1;
	evbuffer_add_printf(out, "{\"range\":\"%s\",\"views\":%s", strcmp(days, "1") == 0 ? "day" : days[0] == '7' ? "week" :
	    "month", db->views ? "true" : "false");
	for (size_t i = 0; i < sizeof(history_queries) / sizeof(history_queries[0]); i++) {
		const char *sql = db->views ? history_queries[i].view : history_queries[i].base;
		int n = strstr(sql, "$1") ? 1 : 0;

		evbuffer_add_printf(out, ",");
		if (query_rows(db, out, history_queries[i].name, sql, n, values, err, errlen) == -1)
			return -1;
	}
	if (appliance_names(db, out, err, errlen) == -1)
		return -1;
	evbuffer_add_printf(out, "}");
	return 0;
}

/* sender_advice - what the newest contact says the sender must do. */
static void
sender_advice(PGconn *pg, const char *const *values, bool is_address, char *advice, size_t cap)
{
	PGresult *res = PQexecParams(pg, is_address ?
	    "SELECT tier, verdict, array_to_string(reasons, ',') FROM sessions WHERE client = $1::inet ORDER BY started_at DESC LIMIT 1" :
	    "SELECT tier, verdict, array_to_string(reasons, ',') FROM sessions WHERE lower(rdns) = lower($1) OR lower(rdns) LIKE '%.' || lower($1) "
	    "OR lower(helo) = lower($1) OR lower(mail_from) LIKE '%@' || lower($1) ORDER BY started_at DESC LIMIT 1",
	    1, NULL, values, NULL, NULL, 0);
	const char *tier, *verdict, *reasons;

	advice[0] = '\0';
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) == 0) {
		snprintf(advice, cap, "No session from this sender is recorded.");
		PQclear(res);
		return;
	}
	tier = PQgetvalue(res, 0, 0);
	verdict = PQgetvalue(res, 0, 1);
	reasons = PQgetvalue(res, 0, 2);
	if (strcmp(verdict, "relay") == 0)
		snprintf(advice, cap, "Last relayed at the %s (%s): nothing to do.", tier, reasons[0] ? reasons : "no reason");
	else if (strcmp(verdict, "tempfail") == 0 && strcmp(tier, "primary") == 0)
		snprintf(advice, cap, "Deferred at the primary (%s): a real MTA retries at the next MX (the secondary) and "
		    "is relayed there (reason retried). Fixing the cause (rDNS that resolves back, a clean DNSBL record, a "
		    "proper HELO) passes the primary at once.", reasons);
	else if (strcmp(verdict, "tempfail") == 0)
		snprintf(advice, cap, "Deferred at the %s (%s): a sender that skipped the primary must go through MX 10 "
		    "first, and retry after it was deferred there.", tier, reasons);
	else
		snprintf(advice, cap, "Refused at the %s (%s): the sender is blocked or failed a hard check; an operator "
		    "can remove a block on the Listings page.", tier, reasons);
	PQclear(res);
}

int
http_db_sender(struct http_db *db, const char *q, bool is_address, struct evbuffer *out, char *advice, size_t advice_cap,
    char *err, size_t errlen)
{
	const char *values[1] = { q };
	PGconn *pg = db_connect(db, err, errlen);

	if (pg == NULL)
		return -1;
	if (is_address) {
		if (query_rows(db, out, "contacts",
		    "SELECT started_at AS time, appliance, tier, verdict, reasons, rdns, helo, mail_from, rcpt_count, backend_reply "
		    "FROM sessions WHERE client = $1::inet ORDER BY started_at DESC LIMIT 50", 1, values, err, errlen) == -1)
			return -1;
		evbuffer_add_printf(out, ",");
		if (query_rows(db, out, "reputation",
		    "SELECT kind, key, score, sessions, relayed, tempfailed, retried, hit_and_run, bait_first, trapped, rejected, "
		    "first_seen, last_seen FROM reputation WHERE (kind = 'address' AND key = host($1::inet)) "
		    "OR (kind = 'prefix' AND key = network(set_masklen($1::inet, CASE WHEN family($1::inet) = 4 THEN 24 ELSE 64 END))::text) "
		    "OR (kind = 'rdns_domain' AND key IN (SELECT lower(rdns) FROM sessions WHERE client = $1::inet AND fcrdns)) "
		    "ORDER BY kind LIMIT 20", 1, values, err, errlen) == -1)
			return -1;
		evbuffer_add_printf(out, ",");
		if (query_rows(db, out, "shared",
		    "SELECT key, last_primary, last_secondary, last_bait, pending_since, pass_until, block_until, block_reason "
		    "FROM contacts WHERE key IN ('a:' || host($1::inet), 'p:' || network(set_masklen($1::inet, "
		    "CASE WHEN family($1::inet) = 4 THEN 24 ELSE 64 END))::text) LIMIT 10", 1, values, err, errlen) == -1)
			return -1;
		evbuffer_add_printf(out, ",");
		if (query_rows(db, out, "listings",
		    "SELECT network, kind, reason, expires_at, set_by FROM listings WHERE network >>= $1::inet "
		    "AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC LIMIT 50", 1, values, err, errlen) == -1)
			return -1;
	} else {
		if (query_rows(db, out, "contacts",
		    "SELECT started_at AS time, appliance, tier, verdict, reasons, host(client) AS client, rdns, helo, mail_from, "
		    "rcpt_count, backend_reply FROM sessions WHERE lower(rdns) = lower($1) OR lower(rdns) LIKE '%.' || lower($1) "
		    "OR lower(helo) = lower($1) OR lower(mail_from) LIKE '%@' || lower($1) ORDER BY started_at DESC LIMIT 50",
		    1, values, err, errlen) == -1)
			return -1;
		evbuffer_add_printf(out, ",");
		if (query_rows(db, out, "reputation",
		    "SELECT kind, key, score, sessions, relayed, tempfailed, retried, hit_and_run, bait_first, trapped, rejected, "
		    "first_seen, last_seen FROM reputation WHERE kind IN ('rdns_domain', 'helo', 'sender_domain') AND key = lower($1) "
		    "ORDER BY kind LIMIT 20", 1, values, err, errlen) == -1)
			return -1;
		evbuffer_add_printf(out, ",\"shared\":[],\"listings\":[]");
	}
	sender_advice(pg, values, is_address, advice, advice_cap);
	return 0;
}

int
http_db_appliances(struct http_db *db, struct evbuffer *out, char *err, size_t errlen)
{
	return query_rows(db, out, "appliances",
	    "SELECT name, version, tier_map, extract(epoch FROM now() - heartbeat)::float8 AS heartbeat_age_s, "
	    "shedding, backend_down FROM appliances ORDER BY name LIMIT 1000", 0, NULL, err, errlen);
}

int
http_db_listings(struct http_db *db, struct evbuffer *out, char *err, size_t errlen)
{
	return query_rows(db, out, "database",
	    "SELECT network, kind, reason, expires_at, set_by FROM listings WHERE expires_at IS NULL OR expires_at > now() "
	    "ORDER BY created_at DESC LIMIT 1000", 0, NULL, err, errlen);
}
