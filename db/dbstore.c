/*
 * dbstore.c - the privileged side of the database. Only this process
 * holds the conninfo. It takes typed messages from the engine (session
 * rows, contact news, heartbeats, lookups), checks every field against
 * the row tables (db_rows.c) and binds the values as parameters of fixed
 * statements: a compromised engine can add plausible rows, not run SQL.
 * The writer (dbstore_writer.c) and the reader (dbstore_reader.c) each
 * have their own connection (dbstore_conn.c). Nothing here may slow mail
 * down: failures are counted and logged.
 */
#include "dbstore_internal.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "db_rows.h"
#include "log.h"
#include "migrations.h"
#include "priv.h"
#include "version.h"

#define DB_STATUS_EVERY_MS	100	/* counters to the engine (mxtierctl status), when they changed */


static struct {
	struct event		*status_timer;
	struct priv_db_status	 status_sent;
} front;

/* ---- messages from the engine, checked ---- */

static void
refuse(const char *what)
{
	store.refused++;
	log_warn("database: refused a %s message from the engine", what);
}

/* lookup_cb - "id, up to three keys": queued for the reader, or answered done at once. */
static void
lookup_cb(const void *payload, size_t len)
{
	const char *values[3];
	uint32_t id;

	memcpy(&id, payload, sizeof(id));
	if (priv_strings_decode((const char *)payload + sizeof(id), len - sizeof(id), 3, values, PRIV_DB_KEY_MAX - 1) == -1) {
		refuse("lookup");
		priv_to_engine(PRIV_MSG_DB_DONE, &id, sizeof(id));
		return;
	}
	dbstore_reader_ask(id, values);
}

/* row_limits - the checks' bounds: now, and this config's longest pass and block. */
static struct db_row_limits
row_limits(void)
{
	struct timespec ts;
	struct db_row_limits lim = { .pass_ttl_ms = mxd->config->pass_ttl, .block_ttl_max_ms = mxd->config->block_ttl_max };

	clock_gettime(CLOCK_REALTIME, &ts);
	lim.now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return lim;
}

/*
 * row_cb - a session row or contact news: decoded and checked field by
 * field against its table (db_rows.c), then bound as the parameters of
 * its fixed statement. Anything that does not fit is refused and counted.
 */
static void
row_cb(enum db_row_kind kind, const void *payload, size_t len)
{
	const char *v[DB_ROW_FIELDS_MAX];
	struct db_row_limits lim = row_limits();
	const struct db_row_table *t = db_row_table(kind);

	if (db_row_decode(kind, payload, len, v) == -1 || db_row_check(kind, v, &lim) != NULL) {
		refuse(t->name);
		return;
	}
	if (!store.enabled)
		return;
	/* The appliance is ours to name, not the engine's: its rows cannot pose as a peer's. */
	if (kind == DB_ROW_SESSION)
		v[DB_SESSION_APPLIANCE] = store.appliance;
	dbstore_writer_push(kind == DB_ROW_SESSION ? DB_EVENT_SESSION : DB_EVENT_CONTACT, NULL, t->nfields, v);
}

static void
session_cb(const void *payload, size_t len)
{
	row_cb(DB_ROW_SESSION, payload, len);
}

static void
contact_cb(const void *payload, size_t len)
{
	row_cb(DB_ROW_CONTACT, payload, len);
}

/* heartbeat_cb - the engine's minute: heartbeat (its health, our tier map) and retention. */
static void
heartbeat_cb(const void *payload, size_t len)
{
	struct priv_db_heartbeat m;
	char retention[16];
	const char *values[4];
	char tiers[4096];
	size_t used = 0;
	const char *hb[5];

	static int64_t last_ms;

	memcpy(&m, payload, sizeof(m));
	if (!store.enabled)
		return;
	/* The engine beats once a minute; more often would only queue retention scans. */
	if (last_ms != 0 && now_ms() - last_ms < 30 * 1000)
		return;
	last_ms = now_ms();
	/* The tier map as JSON: {"primary": ["192.0.2.10"], ...}; addresses need no escaping. */
	used += (size_t)snprintf(tiers, sizeof(tiers), "{");
	for (int t = 0; t < TIER_COUNT && used < sizeof(tiers); t++) {
		const struct addr_list *l = &mxd->config->tier_ips[t];

		used += (size_t)snprintf(tiers + used, sizeof(tiers) - used, "%s\"%s\": [", t ? ", " : "", tier_role_name(t));
		for (size_t i = 0; i < l->count && used < sizeof(tiers); i++) {
			char a[NETADDR_STRLEN];

			used += (size_t)snprintf(tiers + used, sizeof(tiers) - used, "%s\"%s\"", i ? ", " : "",
			    netaddr_format(&l->items[i], a, sizeof(a)));
		}
		if (used < sizeof(tiers))
			used += (size_t)snprintf(tiers + used, sizeof(tiers) - used, "]");
	}
	if (used < sizeof(tiers))
		snprintf(tiers + used, sizeof(tiers) - used, "}");
	hb[0] = store.appliance;
	hb[1] = MXTIER_VERSION;
	hb[2] = m.shedding ? "true" : "false";
	hb[3] = m.backend_down ? "true" : "false";
	hb[4] = used < sizeof(tiers) ? tiers : "{}";
	dbstore_writer_push(DB_EVENT_STATEMENT, "INSERT INTO appliances (name, version, shedding, backend_down, tier_map, heartbeat) "
	    "VALUES ($1, $2, $3::boolean, $4::boolean, $5::jsonb, now()) ON CONFLICT (name) DO UPDATE SET version = $2, "
	    "shedding = $3::boolean, backend_down = $4::boolean, tier_map = $5::jsonb, heartbeat = now()", 5, hb);
	snprintf(retention, sizeof(retention), "%lld", (long long)mxd->config->db_retention_days);
	values[0] = retention;
	dbstore_writer_push(DB_EVENT_STATEMENT, "SELECT mxtier_session_retention($1::integer)", 1, values);
}

/* status_timer_cb - counters for mxtierctl status, sent when they changed. */
static void
status_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct priv_db_status st;
	struct timeval tv = { 0, DB_STATUS_EVERY_MS * 1000 };

	memset(&st, 0, sizeof(st));
	st.enabled = store.enabled;
	st.connected = store.stats.connected;
	st.reader_up = store.enabled && store.reader.state == DBC_UP;
	st.written = store.stats.written;
	st.dropped = store.stats.dropped;
	st.sessions_dropped = store.stats.sessions_dropped;
	st.errors = store.stats.errors;
	st.reconnects = store.stats.reconnects;
	st.queued = dbstore_writer_queued();
	if (what == 0 || memcmp(&st, &front.status_sent, sizeof(st)) != 0) {
		if (priv_to_engine(PRIV_MSG_DB_STATUS, &st, sizeof(st)) == 0)
			front.status_sent = st;
	}
	evtimer_add(front.status_timer, &tv);
}

/* schema_check - at start: is the schema as new as this mxtierd? Blocking, bounded, before serving. */
static int
schema_check(const struct config *c)
{
	char conninfo[2048];
	PGconn *pg;
	PGresult *res;
	const struct migration *missing = NULL;
	bool readable = false;

	snprintf(conninfo, sizeof(conninfo), "%s connect_timeout=3", c->database);
	pg = PQconnectdb(conninfo);
	explicit_bzero(conninfo, sizeof(conninfo));
	if (PQstatus(pg) != CONNECTION_OK) {
		log_warn("database: not reachable at start (%s); will keep trying, mail flows meanwhile",
		    PQerrorMessage(pg));
		PQfinish(pg);
		return 0;
	}
	/* Every embedded migration by its own record: numbers may have gaps and be applied out of order. */
	res = PQexec(pg, "SELECT version FROM mxtier_schema_migrations");
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		readable = true;
	else if (!strstr(PQresultErrorMessage(res), "does not exist"))
		log_warn("database: cannot read the schema version: %s", PQresultErrorMessage(res));
	for (size_t i = 0; i < migration_count && missing == NULL; i++) {
		bool have = false;

		for (int row = 0; readable && row < PQntuples(res) && !have; row++)
			have = atoi(PQgetvalue(res, row, 0)) == migrations[i].version;
		if (!have)
			missing = &migrations[i];
	}
	PQclear(res);
	PQfinish(pg);
	if (missing != NULL) {
		log_warn("database: schema lacks migration %s, which this mxtierd needs: run \"mxtierctl -c %s db migrate\"; "
		    "running without the database until then", missing->name, c->path);
		return -1;
	}
	return 0;
}

int
dbstore_start(const struct config *c)
{
	priv_on(PRIV_MSG_DB_SESSION, session_cb);
	priv_on(PRIV_MSG_DB_CONTACT, contact_cb);
	priv_on(PRIV_MSG_DB_HEARTBEAT, heartbeat_cb);
	priv_on(PRIV_MSG_DB_LOOKUP, lookup_cb);
	front.status_timer = evtimer_new(mxd->base, status_timer_cb, NULL);
	if (front.status_timer == NULL)
		fatalx("database: out of memory");
	if (c->database[0] == '\0' || schema_check(c) == -1) {
		status_timer_cb(-1, 0, NULL);
		return 0;
	}
	store.conninfo = strdup(c->database);
	store.appliance = strdup(c->appliance_name);
	if (!store.conninfo || !store.appliance)
		fatalx("database: out of memory");
	dbstore_writer_start((size_t)c->db_queue_size, (size_t)c->db_batch_size);
	dbstore_reader_start();
	store.enabled = true;
	dbconn_start(&store.writer);
	dbconn_start(&store.reader);
	log_info("database: appliance %s, queue %zu events, batches of %zu", store.appliance, (size_t)c->db_queue_size,
	    (size_t)c->db_batch_size);
	status_timer_cb(-1, 0, NULL);
	return 0;
}

void
dbstore_reconfigure(const struct config *c)
{
	/* Changing the database under a running daemon is a restart; the appliance name may change. */
	if (store.enabled && strcmp(store.conninfo, c->database) != 0)
		log_warn("database: changed in the config; restart mxtierd to use it");
}

bool
dbstore_busy(void)
{
	return store.enabled && dbstore_writer_queued() > 0 && store.writer.state == DBC_UP;
}

void
dbstore_stop(void)
{
	if (front.status_timer) {
		event_free(front.status_timer);
		front.status_timer = NULL;
	}
	if (!store.enabled)
		return;
	store.enabled = false;
	dbconn_close(&store.writer);
	dbconn_close(&store.reader);
	dbstore_reader_stop();
	dbstore_writer_stop();
	explicit_bzero(store.conninfo, strlen(store.conninfo));
	free(store.conninfo);
	free(store.appliance);
}
