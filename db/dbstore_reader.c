/*
 * dbstore.c - the privileged side of the database: the two libpq
 * connections, the bounded write queue in pipeline mode, the reader's
 * lookups, listings and reputation. Only this process holds the conninfo.
 * It takes typed messages from the engine (session rows, contact news,
 * heartbeats, lookups), checks them and binds their values as parameters
 * of fixed statements: a compromised engine can add rows, not run SQL.
 * Nothing here may slow mail down: failures are counted and logged.
 */
#include "db.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "daemon.h"
#include "db_rows.h"
#include "log.h"
#include "migrations.h"
#include "priv.h"
#include "verdict.h"

#define DB_PARAMS_MAX		DB_ROW_FIELDS_MAX
#define DB_INFLIGHT_MAX		1000	/* events sent, not yet confirmed */
#define DB_SEND_BATCH		500
#define DB_BACKOFF_MIN_MS	1000
#define DB_BACKOFF_MAX_MS	30000
#define DB_LOOKUPS_MAX		1024
#define DB_LISTINGS_MAX		100000
#define DB_LOG_EVERY_MS		10000	/* rate limit for repeated errors */
#define DB_REPUTATION_SCORE	10	/* |score| at which an address is fast-tracked or refused */
#define DB_REPUTATION_EVERY_S	60
#define DB_STATUS_EVERY_MS	100	/* counters to the engine (mxtierctl status), when they changed */

/* One statement with its parameters, in one allocation. */
struct db_event {
	const char	*sql;
	int		 nparams;
	bool		 session;	/* a session row: its drops are counted apart */
	bool		 failed;
	char		*values[DB_PARAMS_MAX];
	char		 storage[];
};

enum dbconn_state {
	DBC_DOWN = 0,
	DBC_CONNECTING,
	DBC_UP
};

struct dbconn {
	const char		*name;
	PGconn			*pg;
	struct event		*ev;
	int			 ev_fd;
	short			 ev_what;
	enum dbconn_state	 state;
	int64_t			 backoff_ms;
	int64_t			 last_error_log_ms;
	struct event		*retry_timer;
	void			(*on_up)(struct dbconn *);
	void			(*on_input)(struct dbconn *);
	void			(*on_down)(struct dbconn *);
};

/* An engine's history lookup: answered (rows, then done) within db_read_budget or done empty. */
struct db_lookup {
	TAILQ_ENTRY(db_lookup)	 entry;
	uint32_t		 id;
	struct event		*deadline;
	char			 keys[3][PRIV_DB_KEY_MAX];
	int			 nkeys;
	bool			 sent;
};

static struct {
	bool			 enabled;
	char			*conninfo;
	char			*appliance;
	struct dbconn		 writer, reader;
	struct db_event		**queue;
	size_t			 cap, head, count, inflight;
	struct event		*flush_timer;
	struct event		*status_timer;
	struct db_stats		 stats;
	struct priv_db_status	 status_sent;
	TAILQ_HEAD(, db_lookup)	 lookups;
	size_t			 nlookups;
	bool			 writer_setup;		/* the writer's SET is in flight: no pipeline yet */
	bool			 reader_busy;		/* one query at a time on the reader */
	enum { READ_NONE, READ_SETUP, READ_LOOKUP, READ_LISTINGS, READ_REPUTATION } reading;
	bool			 listings_dirty;
	bool			 reputation_due;
	struct event		*reputation_timer;
	uint64_t		 refused;		/* messages from the engine that failed the checks */
} db = { .lookups = TAILQ_HEAD_INITIALIZER(db.lookups) };

static const char sql_lookup[] =
    "SELECT key, (extract(epoch FROM now() - last_primary) * 1000)::bigint, "
    "(extract(epoch FROM now() - last_secondary) * 1000)::bigint, "
    "(extract(epoch FROM now() - last_bait) * 1000)::bigint, "
    "(extract(epoch FROM now() - pending_since) * 1000)::bigint, "
    "(extract(epoch FROM pass_until - now()) * 1000)::bigint, "
    "(extract(epoch FROM block_until - now()) * 1000)::bigint, block_reason "
    "FROM contacts WHERE key = ANY ($1::text[])";
static const char sql_reputation[] =
    "SELECT key, score FROM reputation WHERE kind = 'address' AND (score >= $1::integer OR score <= -$1::integer) "
    "ORDER BY last_seen DESC LIMIT 100000";
static const char sql_listings[] =
    "SELECT network::text, kind, coalesce((extract(epoch FROM expires_at - now()) * 1000)::bigint, 0) "
    "FROM listings WHERE expires_at IS NULL OR expires_at > now() LIMIT 100000";

static void dbconn_start(struct dbconn *c);

/* Server notices are for debugging, not for the session log. */
static void
notice_to_log(void *arg, const char *message)
{
	log_debug("database: %s", message);
}
static void writer_flush(void);
static void reader_next(void);

static void
log_limited(struct dbconn *c, const char *what, const char *detail)
{
	int64_t now = now_ms();

	if (now - c->last_error_log_ms < DB_LOG_EVERY_MS)
		return;
	c->last_error_log_ms = now;
	log_warn("database %s: %s: %s", c->name, what, detail ? detail : "");
}

/* ---- connections ---- */

static void dbconn_event_cb(evutil_socket_t fd, short what, void *arg);

static void
dbconn_arm(struct dbconn *c, short what)
{
	int fd = c->pg ? PQsocket(c->pg) : -1;

	if (c->ev && (c->ev_fd != fd || c->ev_what != what)) {
		event_free(c->ev);
		c->ev = NULL;
	}
	if (fd < 0 || what == 0)
		return;
	if (c->ev == NULL) {
		c->ev = event_new(mxd->base, fd, what | EV_PERSIST, dbconn_event_cb, c);
		c->ev_fd = fd;
		c->ev_what = what;
		if (c->ev)
			event_add(c->ev, NULL);
	}
}

static void
dbconn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	dbconn_start(arg);
}

static void
dbconn_fail(struct dbconn *c, const char *why)
{
	struct timeval tv;

	log_limited(c, why, c->pg ? PQerrorMessage(c->pg) : NULL);
	dbconn_arm(c, 0);
	if (c->pg) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	if (c->state == DBC_UP)
		db.stats.reconnects++;
	c->state = DBC_DOWN;
	if (c->on_down)
		c->on_down(c);
	/* Back off, doubling, so a dead server costs us nothing. */
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : DB_BACKOFF_MIN_MS;
	if (c->backoff_ms > DB_BACKOFF_MAX_MS)
		c->backoff_ms = DB_BACKOFF_MAX_MS;
	tv.tv_sec = c->backoff_ms / 1000;
	tv.tv_usec = (c->backoff_ms % 1000) * 1000;
	if (c->retry_timer == NULL)
		c->retry_timer = evtimer_new(mxd->base, dbconn_retry_cb, c);
	if (c->retry_timer)
		evtimer_add(c->retry_timer, &tv);
}

static void
dbconn_poll(struct dbconn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		dbconn_arm(c, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		dbconn_arm(c, EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		PQsetNoticeProcessor(c->pg, notice_to_log, NULL);
		if (PQsetnonblocking(c->pg, 1) == -1) {
			dbconn_fail(c, "cannot go non-blocking");
			return;
		}
		c->state = DBC_UP;
		c->backoff_ms = 0;
		if (c == &db.writer)
			db.stats.connected = true;
		log_info("database %s: connected", c->name);
		dbconn_arm(c, EV_READ);
		if (c->on_up)
			c->on_up(c);
		return;
	default:
		dbconn_fail(c, "connect failed");
		return;
	}
}

static void
dbconn_start(struct dbconn *c)
{
	if (!db.enabled || c->state != DBC_DOWN)
		return;
	c->pg = PQconnectStart(db.conninfo);
	if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
		dbconn_fail(c, "connect failed");
		return;
	}
	c->state = DBC_CONNECTING;
	dbconn_poll(c);
}

static void
dbconn_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dbconn *c = arg;

	if (c->state == DBC_CONNECTING) {
		dbconn_poll(c);
		return;
	}
	if (c->state != DBC_UP)
		return;
	if (what & EV_WRITE) {
		int rc = PQflush(c->pg);

		if (rc == -1) {
			dbconn_fail(c, "write failed");
			return;
		}
		if (rc == 0)
			dbconn_arm(c, EV_READ);
	}
	if (what & EV_READ) {
		if (PQconsumeInput(c->pg) == 0 || PQstatus(c->pg) == CONNECTION_BAD) {
			dbconn_fail(c, "connection lost");
			return;
		}
		c->on_input(c);
	}
}

/* dbconn_flush - push what libpq buffered; keep EV_WRITE armed until it is out. */
static bool
dbconn_flush(struct dbconn *c)
{
	int rc = PQflush(c->pg);

	if (rc == -1) {
		dbconn_fail(c, "write failed");
		return false;
	}
	dbconn_arm(c, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
	return true;
}

/* ---- the writer: a bounded queue streamed in pipeline mode ---- */

static struct db_event *
event_new_params(const char *sql, bool session, int n, const char *const *values)
{
	size_t total = sizeof(struct db_event);
	struct db_event *e;
	char *p;

	for (int i = 0; i < n; i++)
		total += values[i] ? strlen(values[i]) + 1 : 0;
	if ((e = calloc(1, total)) == NULL)
		return NULL;
	e->sql = sql;
	e->session = session;
	e->nparams = n;
	p = e->storage;
	for (int i = 0; i < n; i++) {
		if (values[i] == NULL)
			continue;
		e->values[i] = p;
		strcpy(p, values[i]);
		p += strlen(values[i]) + 1;
	}
	return e;
}

static void
queue_push(struct db_event *e)
{
	if (e == NULL || db.count >= db.cap) {
		if (e == NULL || e->session)
			db.stats.sessions_dropped++;
		free(e);
		db.stats.dropped++;
		return;
	}
	db.queue[(db.head + db.count) % db.cap] = e;
	db.count++;
	db.stats.queued = db.count;
	if (!evtimer_pending(db.flush_timer, NULL)) {
		int64_t ms = mxd->config->db_flush_interval;
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		evtimer_add(db.flush_timer, &tv);
	}
}

static void
queue_pop_confirmed(void)
{
	struct db_event *e = db.queue[db.head];

	if (e->failed)
		db.stats.errors++;
	else
		db.stats.written++;
	free(e);
	db.queue[db.head] = NULL;
	db.head = (db.head + 1) % db.cap;
	db.count--;
	db.inflight--;
	db.stats.queued = db.count;
}

static void
writer_flush(void)
{
	struct dbconn *c = &db.writer;
	size_t sent = 0;

	if (c->state != DBC_UP || db.writer_setup)
		return;
	/* Each event is its own transaction (a Sync after it): one bad row never takes its batch along. */
	while (db.inflight < db.count && db.inflight < DB_INFLIGHT_MAX && sent < DB_SEND_BATCH) {
		struct db_event *e = db.queue[(db.head + db.inflight) % db.cap];

		if (!PQsendQueryParams(c->pg, e->sql, e->nparams, NULL, (const char *const *)e->values, NULL, NULL, 0) ||
		    !PQpipelineSync(c->pg)) {
			dbconn_fail(c, "send failed");
			return;
		}
		e->failed = false;
		db.inflight++;
		sent++;
	}
	if (sent)
		dbconn_flush(c);
}

static void
flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	writer_flush();
	if (db.count > db.inflight && db.writer.state == DBC_UP) {
		int64_t ms = mxd->config->db_flush_interval;
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		evtimer_add(db.flush_timer, &tv);
	}
}

static void
writer_input(struct dbconn *c)
{
	while (db.writer_setup && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);

		if (res != NULL) {
			PQclear(res);
			continue;
		}
		db.writer_setup = false;
		if (PQenterPipelineMode(c->pg) == 0) {
			dbconn_fail(c, "cannot enter pipeline mode");
			return;
		}
	}
	if (db.writer_setup)
		return;
	while (db.inflight > 0 && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);

		if (res == NULL)
			continue;	/* end of one statement's results */
		switch (PQresultStatus(res)) {
		case PGRES_PIPELINE_SYNC:
			queue_pop_confirmed();
			break;
		case PGRES_FATAL_ERROR:
		case PGRES_PIPELINE_ABORTED:
			db.queue[db.head]->failed = true;
			log_limited(c, "statement failed", PQresultErrorMessage(res));
			break;
		default:
			break;
		}
		PQclear(res);
	}
	writer_flush();
}

static void
writer_up(struct dbconn *c)
{
	/*
	 * Losing the last few rows in a crash is fine; waiting for fsync per row
	 * is not. Sent without waiting (PQexec would block the loop): pipeline
	 * mode starts once its result is in.
	 */
	if (!PQsendQuery(c->pg, "SET synchronous_commit = off")) {
		dbconn_fail(c, "send failed");
		return;
	}
	db.writer_setup = true;
	dbconn_flush(c);
}

static void
writer_down(struct dbconn *c)
{
	db.writer_setup = false;
	/* Unconfirmed events go again after reconnecting: the rows are keyed, so a resend changes nothing twice. */
	db.inflight = 0;
	db.stats.connected = false;
}

/* ---- the reader: history lookups and listings, one query at a time ---- */

static void
lookup_free(struct db_lookup *l)
{
	uint32_t id = l->id;

	TAILQ_REMOVE(&db.lookups, l, entry);
	db.nlookups--;
	if (l->deadline)
		event_free(l->deadline);
	free(l);
	/* Every lookup gets its "done", rows or not: the engine counts on it. */
	priv_to_engine(PRIV_MSG_DB_DONE, &id, sizeof(id));
}

static void
lookup_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_lookup *l = arg;

	/* Late and not sent yet: it goes unasked. One in flight is answered when it returns. */
	if (!l->sent)
		lookup_free(l);
}

static int64_t
get_ms(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? -1 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static void
lookup_apply(PGresult *res, uint32_t id)
{
	for (int row = 0; row < PQntuples(res); row++) {
		struct priv_db_row r;

		memset(&r, 0, sizeof(r));
		r.id = id;
		for (int t = 0; t < TIER_COUNT; t++)
			r.contact_age[t] = get_ms(res, row, 1 + t);
		r.pending_age = get_ms(res, row, 4);
		r.pass_left = get_ms(res, row, 5);
		r.block_left = get_ms(res, row, 6);
		r.block_reason = REASON_MANUAL;
		if (!PQgetisnull(res, row, 7)) {
			for (int why = 0; why < REASON_COUNT; why++)
				if (strcmp(reason_name(why), PQgetvalue(res, row, 7)) == 0)
					r.block_reason = why;
		}
		snprintf(r.key, sizeof(r.key), "%s", PQgetvalue(res, row, 0));
		priv_to_engine(PRIV_MSG_DB_ROW, &r, sizeof(r));
	}
}

/* listings_apply - every current listing to the engine, which diffs them against its history. */
static void
listings_apply(PGresult *res)
{
	struct priv_listing *next = calloc((size_t)PQntuples(res) + 1, sizeof(*next));
	size_t n = 0;

	if (next == NULL)
		return;
	for (int row = 0; row < PQntuples(res) && n < DB_LISTINGS_MAX; row++) {
		if (cidr_parse(PQgetvalue(res, row, 0), &next[n].net) == -1)
			continue;
		next[n].block = strcmp(PQgetvalue(res, row, 1), "block") == 0;
		next[n].ttl_ms = strtoll(PQgetvalue(res, row, 2), NULL, 10);
		n++;
	}
	priv_blob_to_engine(PRIV_MSG_DB_LISTINGS, next, n * sizeof(*next));
	free(next);
	log_info("database: %zu listings loaded", n);
}

/* reputation_apply - well- and ill-reputed addresses to the engine, which searches them on connect. */
static void
reputation_apply(PGresult *res)
{
	size_t n = (size_t)PQntuples(res), used = 0;
	struct priv_reputation *list = calloc(n + 1, sizeof(*list));

	if (list == NULL)
		return;
	for (size_t i = 0; i < n && i < DB_LISTINGS_MAX; i++) {
		struct priv_reputation *r = &list[used];

		if (netaddr_parse(PQgetvalue(res, (int)i, 0), &r->addr) == -1)
			continue;
		netaddr_normalize(&r->addr);
		r->good = atoi(PQgetvalue(res, (int)i, 1)) > 0;
		used++;
	}
	priv_blob_to_engine(PRIV_MSG_DB_REPUTATION, list, used * sizeof(*list));
	free(list);
}

static void
reputation_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { DB_REPUTATION_EVERY_S, 0 };

	db.reputation_due = true;
	reader_next();
	evtimer_add(db.reputation_timer, &tv);
}

static void
reader_input(struct dbconn *c)
{
	PGnotify *note;

	while ((note = PQnotifies(c->pg)) != NULL) {
		db.listings_dirty = true;
		PQfreemem(note);
	}
	while (db.reader_busy && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);

		if (res == NULL) {
			/* This query is done: finish its lookup, move on. */
			if (db.reading == READ_LOOKUP && !TAILQ_EMPTY(&db.lookups))
				lookup_free(TAILQ_FIRST(&db.lookups));
			db.reader_busy = false;
			db.reading = READ_NONE;
			break;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			if (db.reading == READ_LOOKUP && !TAILQ_EMPTY(&db.lookups))
				lookup_apply(res, TAILQ_FIRST(&db.lookups)->id);
			else if (db.reading == READ_LISTINGS)
				listings_apply(res);
			else if (db.reading == READ_REPUTATION)
				reputation_apply(res);
		} else if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			log_limited(c, "query failed", PQresultErrorMessage(res));
		}
		PQclear(res);
	}
	reader_next();
}

/* array_literal - keys as a text[] literal; '"' and '\\' escaped, so a key is always one element. */
static void
array_literal(char *out, size_t len, const struct db_lookup *l)
{
	size_t o = 0;

	out[o++] = '{';
	for (int i = 0; i < l->nkeys; i++) {
		if (i)
			out[o++] = ',';
		out[o++] = '"';
		for (const char *p = l->keys[i]; *p && o + 4 < len; p++) {
			if (*p == '"' || *p == '\\')
				out[o++] = '\\';
			out[o++] = *p;
		}
		out[o++] = '"';
	}
	out[o++] = '}';
	out[o] = '\0';
}

static void
reader_next(void)
{
	struct dbconn *c = &db.reader;
	struct db_lookup *l;

	if (c->state != DBC_UP || db.reader_busy)
		return;
	if (db.listings_dirty) {
		if (!PQsendQuery(c->pg, sql_listings)) {
			dbconn_fail(c, "send failed");
			return;
		}
		db.listings_dirty = false;
		db.reading = READ_LISTINGS;
		db.reader_busy = true;
		dbconn_flush(c);
		return;
	}
	if (db.reputation_due) {
		char score[16];
		const char *values[1] = { score };

		snprintf(score, sizeof(score), "%d", DB_REPUTATION_SCORE);
		if (!PQsendQueryParams(c->pg, sql_reputation, 1, NULL, values, NULL, NULL, 0)) {
			dbconn_fail(c, "send failed");
			return;
		}
		db.reputation_due = false;
		db.reading = READ_REPUTATION;
		db.reader_busy = true;
		dbconn_flush(c);
		return;
	}
	if ((l = TAILQ_FIRST(&db.lookups)) == NULL)
		return;
	{
		/* 3 keys of PRIV_DB_KEY_MAX, each byte escaped at worst, quotes and commas. */
		char array[3 * 2 * PRIV_DB_KEY_MAX + 16];
		const char *values[1] = { array };

		array_literal(array, sizeof(array), l);
		if (!PQsendQueryParams(c->pg, sql_lookup, 1, NULL, values, NULL, NULL, 0)) {
			dbconn_fail(c, "send failed");
			return;
		}
	}
	l->sent = true;
	db.reading = READ_LOOKUP;
	db.reader_busy = true;
	dbconn_flush(c);
}

static void
reader_up(struct dbconn *c)
{
	char sql[128];

	/*
	 * LISTEN, and a server-side limit so a read stuck on a lock is given up
	 * there too; sent without waiting, its results are consumed like any read.
	 */
	snprintf(sql, sizeof(sql), "LISTEN mxtier_listings; SET statement_timeout = %lld",
	    (long long)(mxd->config->db_read_budget * 10));
	if (!PQsendQuery(c->pg, sql)) {
		dbconn_fail(c, "send failed");
		return;
	}
	db.reading = READ_SETUP;
	db.reader_busy = true;
	db.listings_dirty = true;
	db.reputation_due = true;
	dbconn_flush(c);
}

static void
reader_down(struct dbconn *c)
{
	db.reader_busy = false;
	db.reading = READ_NONE;
	/* Pending lookups are answered "nothing known" at once: neutral, never a wait. */
	while (!TAILQ_EMPTY(&db.lookups))
		lookup_free(TAILQ_FIRST(&db.lookups));
}

/* ---- messages from the engine, checked ---- */

static void
refuse(const char *what)
{
	db.refused++;
	log_warn("database: refused a %s message from the engine", what);
}

/* lookup_cb - "id, up to three keys": queued for the reader, or answered done at once. */
static void
lookup_cb(const void *payload, size_t len)
{
	const char *values[3];
	struct db_lookup *l;
	uint32_t id;
	struct timeval tv = { mxd->config->db_read_budget / 1000, (mxd->config->db_read_budget % 1000) * 1000 };

	memcpy(&id, payload, sizeof(id));
	if (priv_strings_decode((const char *)payload + sizeof(id), len - sizeof(id), 3, values, PRIV_DB_KEY_MAX - 1) == -1) {
		refuse("lookup");
		priv_to_engine(PRIV_MSG_DB_DONE, &id, sizeof(id));
		return;
	}
	if (!db.enabled || db.reader.state != DBC_UP || db.nlookups >= DB_LOOKUPS_MAX ||
	    (l = calloc(1, sizeof(*l))) == NULL) {
		priv_to_engine(PRIV_MSG_DB_DONE, &id, sizeof(id));
		return;
	}
	l->id = id;
	for (int i = 0; i < 3; i++)
		if (values[i])
			snprintf(l->keys[l->nkeys++], PRIV_DB_KEY_MAX, "%s", values[i]);
	l->deadline = evtimer_new(mxd->base, lookup_deadline_cb, l);
	TAILQ_INSERT_TAIL(&db.lookups, l, entry);
	db.nlookups++;
	if (l->deadline == NULL) {
		lookup_free(l);
		return;
	}
	evtimer_add(l->deadline, &tv);
	reader_next();
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
	if (!db.enabled)
		return;
	/* The appliance is ours to name, not the engine's: its rows cannot pose as a peer's. */
	if (kind == DB_ROW_SESSION)
		v[DB_SESSION_APPLIANCE] = db.appliance;
	queue_push(event_new_params(db_row_sql(kind), kind == DB_ROW_SESSION, t->nfields, v));
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
	if (!db.enabled)
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
	hb[0] = db.appliance;
	hb[1] = "0.1";
	hb[2] = m.shedding ? "true" : "false";
	hb[3] = m.backend_down ? "true" : "false";
	hb[4] = used < sizeof(tiers) ? tiers : "{}";
	queue_push(event_new_params("INSERT INTO appliances (name, version, shedding, backend_down, tier_map, heartbeat) "
	    "VALUES ($1, $2, $3::boolean, $4::boolean, $5::jsonb, now()) ON CONFLICT (name) DO UPDATE SET version = $2, "
	    "shedding = $3::boolean, backend_down = $4::boolean, tier_map = $5::jsonb, heartbeat = now()", false, 5, hb));
	snprintf(retention, sizeof(retention), "%lld", (long long)mxd->config->db_retention_days);
	values[0] = retention;
	queue_push(event_new_params("SELECT mxtier_session_retention($1::integer)", false, 1, values));
}

/* status_timer_cb - counters for mxtierctl status, sent when they changed. */
static void
status_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct priv_db_status st;
	struct timeval tv = { 0, DB_STATUS_EVERY_MS * 1000 };

	memset(&st, 0, sizeof(st));
	st.enabled = db.enabled;
	st.connected = db.stats.connected;
	st.reader_up = db.enabled && db.reader.state == DBC_UP;
	st.written = db.stats.written;
	st.dropped = db.stats.dropped;
	st.sessions_dropped = db.stats.sessions_dropped;
	st.errors = db.stats.errors;
	st.reconnects = db.stats.reconnects;
	st.queued = db.count;
	if (what == 0 || memcmp(&st, &db.status_sent, sizeof(st)) != 0) {
		if (priv_to_engine(PRIV_MSG_DB_STATUS, &st, sizeof(st)) == 0)
			db.status_sent = st;
	}
	evtimer_add(db.status_timer, &tv);
}

/* schema_check - at start: is the schema as new as this mxtierd? Blocking, bounded, before serving. */
static int
schema_check(const struct config *c)
{
	char conninfo[2048];
	PGconn *pg;
	PGresult *res;
	int have = -1, need = migration_count ? migrations[migration_count - 1].version : 0;

	snprintf(conninfo, sizeof(conninfo), "%s connect_timeout=3", c->database);
	pg = PQconnectdb(conninfo);
	explicit_bzero(conninfo, sizeof(conninfo));
	if (PQstatus(pg) != CONNECTION_OK) {
		log_warn("database: not reachable at start (%s); will keep trying, mail flows meanwhile",
		    PQerrorMessage(pg));
		PQfinish(pg);
		return 0;
	}
	res = PQexec(pg, "SELECT coalesce(max(version), 0) FROM mxtier_schema_migrations");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		have = atoi(PQgetvalue(res, 0, 0));
	else if (!strstr(PQresultErrorMessage(res), "does not exist"))
		log_warn("database: cannot read the schema version: %s", PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(pg);
	if (have < need) {
		log_warn("database: schema is at version %d, this mxtierd needs %d: run \"mxtierctl -c %s db migrate\"; "
		    "running without the database until then", have < 0 ? 0 : have, need, c->path);
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
	db.status_timer = evtimer_new(mxd->base, status_timer_cb, NULL);
	if (db.status_timer == NULL)
		fatalx("database: out of memory");
	if (c->database[0] == '\0' || schema_check(c) == -1) {
		status_timer_cb(-1, 0, NULL);
		return 0;
	}
	db.conninfo = strdup(c->database);
	db.appliance = strdup(c->appliance_name);
	db.cap = (size_t)c->db_queue_size;
	db.queue = calloc(db.cap, sizeof(*db.queue));
	db.flush_timer = evtimer_new(mxd->base, flush_timer_cb, NULL);
	db.reputation_timer = evtimer_new(mxd->base, reputation_timer_cb, NULL);
	if (!db.conninfo || !db.appliance || !db.queue || !db.flush_timer || !db.reputation_timer)
		fatalx("database: out of memory");
	db.writer = (struct dbconn){ .name = "writer", .on_up = writer_up, .on_input = writer_input, .on_down = writer_down };
	db.reader = (struct dbconn){ .name = "reader", .on_up = reader_up, .on_input = reader_input, .on_down = reader_down };
	db.enabled = true;
	dbconn_start(&db.writer);
	dbconn_start(&db.reader);
	{
		struct timeval tv = { DB_REPUTATION_EVERY_S, 0 };

		evtimer_add(db.reputation_timer, &tv);
	}
	log_info("database: appliance %s, queue %zu events", db.appliance, db.cap);
	status_timer_cb(-1, 0, NULL);
	return 0;
}

void
dbstore_reconfigure(const struct config *c)
{
	/* Changing the database under a running daemon is a restart; the appliance name may change. */
	if (db.enabled && strcmp(db.conninfo, c->database) != 0)
		log_warn("database: changed in the config; restart mxtierd to use it");
}

bool
dbstore_busy(void)
{
	return db.enabled && db.count > 0 && db.writer.state == DBC_UP;
}

void
dbstore_stop(void)
{
	struct dbconn *conns[2] = { &db.writer, &db.reader };

	if (db.status_timer) {
		event_free(db.status_timer);
		db.status_timer = NULL;
	}
	if (!db.enabled)
		return;
	db.enabled = false;
	for (int i = 0; i < 2; i++) {
		dbconn_arm(conns[i], 0);
		if (conns[i]->retry_timer)
			event_free(conns[i]->retry_timer);
		conns[i]->retry_timer = NULL;
		if (conns[i]->pg)
			PQfinish(conns[i]->pg);
		conns[i]->pg = NULL;
	}
	reader_down(&db.reader);
	if (db.count > 0)
		log_warn("db: %zu queued event(s) not written at stop", (size_t)db.count);
	while (db.count > 0) {
		free(db.queue[db.head]);
		db.head = (db.head + 1) % db.cap;
		db.count--;
	}
	free(db.queue);
	event_free(db.flush_timer);
	event_free(db.reputation_timer);
	explicit_bzero(db.conninfo, strlen(db.conninfo));
	free(db.conninfo);
	free(db.appliance);
}
