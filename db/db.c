/*
 * db.c - mxtierd's PostgreSQL side: two libpq connections on the event
 * loop. Nothing here may slow mail down: every call from a session only
 * queues work or starts a bounded read; failures are counted and logged.
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
#include "history.h"
#include "log.h"
#include "migrations.h"
#include "session.h"

#define DB_PARAMS_MAX		21
#define DB_INFLIGHT_MAX		1000	/* events sent, not yet confirmed */
#define DB_SEND_BATCH		500
#define DB_BACKOFF_MIN_MS	1000
#define DB_BACKOFF_MAX_MS	30000
#define DB_LOOKUPS_MAX		1024
#define DB_LISTINGS_MAX		100000
#define DB_LOG_EVERY_MS		10000	/* rate limit for repeated errors */
#define DB_REPUTATION_SCORE	10	/* |score| at which an address is fast-tracked or refused */
#define DB_REPUTATION_EVERY_S	60

/* One statement with its parameters, in one allocation. */
struct db_event {
	const char	*sql;
	int		 nparams;
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

/* A history lookup for a session, answered within db_read_budget or not at all. */
struct db_lookup {
	TAILQ_ENTRY(db_lookup)	 entry;
	struct session		*session;	/* NULL once abandoned or timed out */
	struct event		*deadline;
	char			 keys[3][300];
	int			 nkeys;
	bool			 sent;
};

struct db_listing {
	struct cidr	net;
	bool		block;
	int64_t		ttl_ms;		/* 0 = no expiry */
};

#define DB_LISTING_FOREVER_MS (10LL * 365 * 24 * 3600 * 1000)

static struct {
	bool			 enabled;
	char			*conninfo;
	char			*appliance;
	struct dbconn		 writer, reader;
	struct db_event		**queue;
	size_t			 cap, head, count, inflight;
	struct event		*flush_timer;
	struct event		*maintenance_timer;
	struct db_stats		 stats;
	TAILQ_HEAD(, db_lookup)	 lookups;
	size_t			 nlookups;
	bool			 writer_setup;		/* the writer's SET is in flight: no pipeline yet */
	bool			 reader_busy;		/* one query at a time on the reader */
	int64_t			 read_started_ms;
	enum { READ_NONE, READ_SETUP, READ_LOOKUP, READ_LISTINGS, READ_REPUTATION } reading;
	bool			 listings_dirty;
	bool			 reputation_due;
	struct event		*reputation_timer;
	struct netaddr		*rep_good, *rep_bad;	/* sorted, for bsearch */
	size_t			 nrep_good, nrep_bad;
	struct db_listing	*listings;
	size_t			 nlistings;
} db = { .lookups = TAILQ_HEAD_INITIALIZER(db.lookups) };

static const char sql_record_session[] =
    "SELECT mxtier_record_session($1, $2, $3::timestamptz, $4::timestamptz, $5, $6::inet, $7::cidr, $8, $9::boolean, "
    "$10, $11, $12::integer, $13, $14::integer, $15, $16::text[], $17::integer, $18::bigint, $19::integer, $20, $21)";
static const char sql_contact[] =
    "SELECT mxtier_contact($1, $2::timestamptz, $3::timestamptz, $4::timestamptz, $5::timestamptz, $6::boolean, "
    "$7::timestamptz, $8::timestamptz, $9)";
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

bool
db_enabled(void)
{
	return db.enabled;
}

/*
 * utf8_clean - client-controlled text (PTR names, backend replies) as valid
 * UTF-8: a byte that does not belong to a well-formed sequence becomes
 * \\xHH, so no sender can keep its own row out of the table with bad bytes.
 */
static const char *
utf8_clean(char *dst, size_t len, const char *src)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)src;

	if (src == NULL)
		return NULL;
	while (*p && o + 5 < len) {
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		bool ok = n > 0 && !(n == 2 && *p < 0xc2);

		for (size_t i = 1; ok && i < n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (ok && o + n < len) {
			memcpy(dst + o, p, n);
			o += n;
			p += n;
		} else {
			o += (size_t)snprintf(dst + o, len - o, "\\x%02x", *p);
			p++;
		}
	}
	dst[o] = '\0';
	return dst;
}

/* wall_time - a timestamp for PostgreSQL, offset_ms from now (UTC). */
static void
wall_time(char *buf, size_t len, int64_t offset_ms)
{
	struct timespec ts;
	struct tm tm;
	time_t secs;
	int64_t ms;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + offset_ms;
	secs = (time_t)(ms / 1000);
	gmtime_r(&secs, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03d+00", stamp, (int)(ms % 1000));
}

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
event_new_params(const char *sql, int n, const char *const *values)
{
	size_t total = sizeof(struct db_event);
	struct db_event *e;
	char *p;

	for (int i = 0; i < n; i++)
		total += values[i] ? strlen(values[i]) + 1 : 0;
	if ((e = calloc(1, total)) == NULL)
		return NULL;
	e->sql = sql;
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
		if (e == NULL || e->sql == sql_record_session)
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
lookup_finish(struct db_lookup *l)
{
	struct session *s = l->session;

	TAILQ_REMOVE(&db.lookups, l, entry);
	db.nlookups--;
	if (l->deadline)
		event_free(l->deadline);
	free(l);
	if (s) {
		s->db_lookup = NULL;
		session_db_done(s);
	}
}

static void
lookup_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_lookup *l = arg;
	struct session *s = l->session;

	/* Late: neutral. The request stays queued (or in flight) without its session. */
	db.stats.reads_late++;
	l->session = NULL;
	if (s) {
		s->db_lookup = NULL;
		session_db_done(s);
	}
	if (!l->sent) {
		TAILQ_REMOVE(&db.lookups, l, entry);
		db.nlookups--;
		event_free(l->deadline);
		free(l);
	}
}

static int64_t
get_ms(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? -1 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static void
lookup_apply(PGresult *res)
{
	for (int row = 0; row < PQntuples(res); row++) {
		int64_t ages[TIER_COUNT] = { get_ms(res, row, 1), get_ms(res, row, 2), get_ms(res, row, 3) };
		int64_t pass = get_ms(res, row, 5), block = get_ms(res, row, 6);
		enum reason why = REASON_MANUAL;

		if (!PQgetisnull(res, row, 7)) {
			for (int r = 0; r < REASON_COUNT; r++)
				if (strcmp(reason_name(r), PQgetvalue(res, row, 7)) == 0)
					why = r;
		}
		history_merge(PQgetvalue(res, row, 0), ages, get_ms(res, row, 4), pass, block, why);
	}
}

static bool
listing_is_host(const struct cidr *c)
{
	return c->prefix_len == (c->addr.family == AF_INET ? 32u : 128u);
}

static bool
listing_present(const struct db_listing *list, size_t n, const struct db_listing *l)
{
	for (size_t i = 0; i < n; i++)
		if (list[i].block == l->block && list[i].net.prefix_len == l->net.prefix_len &&
		    netaddr_equal(&list[i].net.addr, &l->net.addr))
			return true;
	return false;
}

/*
 * listings_apply - the new set of listings replaces the old. Single
 * addresses also go through history, so they reach the kernel sets like a
 * local mxtierctl block/allow; ones that disappeared are lifted.
 */
static void
listings_apply(PGresult *res)
{
	struct db_listing *next = calloc((size_t)PQntuples(res) + 1, sizeof(*next));
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
	for (size_t i = 0; i < db.nlistings; i++) {
		struct history_client hc = { .addr = db.listings[i].net.addr, .domain = NULL };

		if (!listing_is_host(&db.listings[i].net) || listing_present(next, n, &db.listings[i]))
			continue;
		if (db.listings[i].block)
			history_unblock(&hc);
		else
			history_unallow(&hc);
	}
	for (size_t i = 0; i < n; i++) {
		struct history_client hc = { .addr = next[i].net.addr, .domain = NULL };
		int64_t ttl = next[i].ttl_ms > 0 ? next[i].ttl_ms : DB_LISTING_FOREVER_MS;

		if (!listing_is_host(&next[i].net) || listing_present(db.listings, db.nlistings, &next[i]))
			continue;
		if (next[i].block)
			history_block_manual(&hc, ttl);
		else
			history_allow(&hc, ttl);
	}
	free(db.listings);
	db.listings = next;
	db.nlistings = n;
	log_info("database: %zu listings loaded", n);
}

static int
netaddr_cmp(const void *a, const void *b)
{
	const struct netaddr *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	return memcmp(x->bytes, y->bytes, sizeof(x->bytes));
}

/* reputation_apply - well- and ill-reputed addresses, as sorted arrays the connect path searches. */
static void
reputation_apply(PGresult *res)
{
	size_t n = (size_t)PQntuples(res), ng = 0, nb = 0;
	struct netaddr *good = calloc(n + 1, sizeof(*good)), *bad = calloc(n + 1, sizeof(*bad));

	if (good == NULL || bad == NULL) {
		free(good);
		free(bad);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct netaddr a;

		memset(&a, 0, sizeof(a));
		if (netaddr_parse(PQgetvalue(res, (int)i, 0), &a) == -1)
			continue;
		netaddr_normalize(&a);
		if (atoi(PQgetvalue(res, (int)i, 1)) > 0)
			good[ng++] = a;
		else
			bad[nb++] = a;
	}
	qsort(good, ng, sizeof(*good), netaddr_cmp);
	qsort(bad, nb, sizeof(*bad), netaddr_cmp);
	free(db.rep_good);
	free(db.rep_bad);
	db.rep_good = good;
	db.rep_bad = bad;
	db.nrep_good = ng;
	db.nrep_bad = nb;
	log_debug("database: reputation: %zu good, %zu bad addresses", ng, nb);
}

int
db_reputation(const struct netaddr *addr)
{
	struct netaddr key;

	memset(&key, 0, sizeof(key));
	key.family = addr->family;
	memcpy(key.bytes, addr->bytes, addr->family == AF_INET ? 4 : 16);
	if (db.nrep_bad && bsearch(&key, db.rep_bad, db.nrep_bad, sizeof(key), netaddr_cmp))
		return -1;
	if (db.nrep_good && bsearch(&key, db.rep_good, db.nrep_good, sizeof(key), netaddr_cmp))
		return 1;
	return 0;
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
				lookup_finish(TAILQ_FIRST(&db.lookups));
			db.reader_busy = false;
			db.reading = READ_NONE;
			break;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			if (db.reading == READ_LOOKUP)
				lookup_apply(res);
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
	/* Drop lookups whose session gave up; send the first live one. */
	while ((l = TAILQ_FIRST(&db.lookups)) != NULL && l->session == NULL) {
		TAILQ_REMOVE(&db.lookups, l, entry);
		db.nlookups--;
		if (l->deadline)
			event_free(l->deadline);
		free(l);
	}
	if (l == NULL)
		return;
	{
		char array[1024];
		const char *values[1] = { array };
		size_t used = 0;

		used += (size_t)snprintf(array, sizeof(array), "{");
		for (int i = 0; i < l->nkeys; i++)
			used += (size_t)snprintf(array + used, sizeof(array) - used, "%s\"%s\"", i ? "," : "", l->keys[i]);
		snprintf(array + used, sizeof(array) - used, "}");
		if (!PQsendQueryParams(c->pg, sql_lookup, 1, NULL, values, NULL, NULL, 0)) {
			dbconn_fail(c, "send failed");
			return;
		}
	}
	l->sent = true;
	db.read_started_ms = now_ms();
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
	struct db_lookup *l;

	db.reader_busy = false;
	db.reading = READ_NONE;
	/* Pending lookups are answered "nothing known" at once: neutral, never a wait. */
	while ((l = TAILQ_FIRST(&db.lookups)) != NULL) {
		l->sent = false;
		lookup_finish(l);
	}
}

/* ---- what the daemon calls ---- */

bool
db_lookup_client(struct session *s)
{
	struct history_client hc = { .addr = s->client, .domain = NULL };
	struct db_lookup *l;
	int64_t ms = s->config->db_read_budget;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (!db.enabled || db.reader.state != DBC_UP || db.nlookups >= DB_LOOKUPS_MAX)
		return false;
	/* A read already over its budget (a locked table): answer neutral at once until it returns. */
	if (db.reader_busy && now_ms() - db.read_started_ms > s->config->db_read_budget)
		return false;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return false;
	l->session = s;
	l->nkeys = history_keys(&hc, l->keys);
	l->deadline = evtimer_new(mxd->base, lookup_deadline_cb, l);
	if (l->deadline == NULL) {
		free(l);
		return false;
	}
	evtimer_add(l->deadline, &tv);
	TAILQ_INSERT_TAIL(&db.lookups, l, entry);
	db.nlookups++;
	s->db_lookup = l;
	reader_next();
	/* reader_next may have failed the connection and answered the lookup already. */
	return s->db_lookup != NULL;
}

void
db_abandon_lookup(struct session *s)
{
	struct db_lookup *l = s->db_lookup;

	if (l == NULL)
		return;
	l->session = NULL;
	s->db_lookup = NULL;
}

int
db_listing(const struct netaddr *addr)
{
	int verdict = 0;

	/* A block outranks an allow for the same client. */
	for (size_t i = 0; i < db.nlistings; i++) {
		if (!cidr_contains(&db.listings[i].net, addr))
			continue;
		if (db.listings[i].block)
			return 1;
		verdict = -1;
	}
	return verdict;
}

void
db_record_session(const struct session *s)
{
	char id[64], started[48], ended[48], client[NETADDR_STRLEN], prefix[NETADDR_STRLEN + 8], rcpts[16];
	char messages[16], reasons[1024] = "{", score[16], bytes[24], duration[16];
	char rdns[1100], helo[1100], from[1100], rcpt[1100], reply[1100], domain[1100];
	struct netaddr p = s->client;
	int64_t now = now_ms();
	size_t used = 1;
	const char *values[DB_PARAMS_MAX];

	if (!db.enabled)
		return;
	snprintf(id, sizeof(id), "%010llx", (unsigned long long)s->id);
	wall_time(started, sizeof(started), s->started_ms - now);
	wall_time(ended, sizeof(ended), 0);
	netaddr_format(&s->client, client, sizeof(client));
	netaddr_mask(&p, p.family == AF_INET ? 24 : 64);
	netaddr_format(&p, prefix, sizeof(prefix));
	snprintf(prefix + strlen(prefix), 8, "/%d", p.family == AF_INET ? 24 : 64);
	snprintf(rcpts, sizeof(rcpts), "%zu", s->rcpt_total);
	snprintf(messages, sizeof(messages), "%u", s->messages);
	for (int r = 0; r < REASON_COUNT; r++)
		if (s->reasons & (UINT64_C(1) << r))
			used += (size_t)snprintf(reasons + used, sizeof(reasons) - used, "%s%s", used > 1 ? "," : "",
			    reason_name(r));
	snprintf(reasons + used, sizeof(reasons) - used, "}");
	snprintf(score, sizeof(score), "%d", s->dns.dnsbl_score);
	snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)s->bytes);
	snprintf(duration, sizeof(duration), "%lld", (long long)(now - s->started_ms));

	values[0] = id;
	values[1] = db.appliance;
	values[2] = started;
	values[3] = ended;
	values[4] = tier_role_name(s->tier);
	values[5] = client;
	values[6] = prefix;
	values[7] = s->dns.ptr_name[0] ? utf8_clean(rdns, sizeof(rdns), s->dns.ptr_name) : NULL;
	values[8] = s->dns.fcrdns ? "true" : "false";
	values[9] = s->helo[0] ? utf8_clean(helo, sizeof(helo), s->helo) : NULL;
	values[10] = s->log_from[0] ? utf8_clean(from, sizeof(from), s->log_from) : NULL;
	values[11] = rcpts;
	values[12] = s->first_rcpt[0] ? utf8_clean(rcpt, sizeof(rcpt), s->first_rcpt) : NULL;
	values[13] = messages;
	values[14] = verdict_name(s->verdict);
	values[15] = reasons;
	values[16] = score;
	values[17] = bytes;
	values[18] = duration;
	values[19] = s->backend_reply[0] ? utf8_clean(reply, sizeof(reply), s->backend_reply) : NULL;
	values[20] = s->dns.fcrdns ? utf8_clean(domain, sizeof(domain), s->dns.domain) : NULL;
	queue_push(event_new_params(sql_record_session, DB_PARAMS_MAX, values));
}

/* db_news - history changed: tell the peers through the contacts table. */
static void
db_news(const struct history_news *n)
{
	char contact[48] = "", pending[48] = "", pass[48] = "", block[48] = "";
	const char *values[9];

	if (n->tier >= 0)
		wall_time(contact, sizeof(contact), 0);
	if (n->pending_set)
		wall_time(pending, sizeof(pending), 0);
	if (n->pass_ms > 0)
		wall_time(pass, sizeof(pass), n->pass_ms);
	if (n->block_ms > 0)
		wall_time(block, sizeof(block), n->block_ms);
	values[0] = n->key;
	values[1] = n->tier == TIER_PRIMARY ? contact : NULL;
	values[2] = n->tier == TIER_SECONDARY ? contact : NULL;
	values[3] = n->tier == TIER_BAIT ? contact : NULL;
	values[4] = n->pending_set ? pending : NULL;
	values[5] = n->pending_clear ? "true" : "false";
	values[6] = n->pass_ms > 0 ? pass : NULL;
	values[7] = n->block_ms > 0 ? block : NULL;
	values[8] = n->block_ms > 0 ? reason_name(n->block_reason) : NULL;
	queue_push(event_new_params(sql_contact, 9, values));
}

/* maintenance_cb - heartbeat and retention, once a minute, through the same queue. */
static void
maintenance_cb(evutil_socket_t fd, short what, void *arg)
{
	char retention[16];
	const char *values[4];
	struct timeval tv = { 60, 0 };

	char tiers[4096];
	size_t used = 0;
	const char *hb[5];

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
	hb[2] = mxd->shedding ? "true" : "false";
	hb[3] = mxd->backend_up ? "false" : "true";
	hb[4] = used < sizeof(tiers) ? tiers : "{}";
	queue_push(event_new_params("INSERT INTO appliances (name, version, shedding, backend_down, tier_map, heartbeat) "
	    "VALUES ($1, $2, $3::boolean, $4::boolean, $5::jsonb, now()) ON CONFLICT (name) DO UPDATE SET version = $2, "
	    "shedding = $3::boolean, backend_down = $4::boolean, tier_map = $5::jsonb, heartbeat = now()", 5, hb));
	snprintf(retention, sizeof(retention), "%lld", (long long)mxd->config->db_retention_days);
	values[0] = retention;
	queue_push(event_new_params("SELECT mxtier_session_retention($1::integer)", 1, values));
	evtimer_add(db.maintenance_timer, &tv);
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
db_start(const struct config *c)
{
	if (c->database[0] == '\0')
		return 0;
	if (schema_check(c) == -1)
		return -1;
	db.conninfo = strdup(c->database);
	db.appliance = strdup(c->appliance_name);
	db.cap = (size_t)c->db_queue_size;
	db.queue = calloc(db.cap, sizeof(*db.queue));
	db.flush_timer = evtimer_new(mxd->base, flush_timer_cb, NULL);
	db.maintenance_timer = evtimer_new(mxd->base, maintenance_cb, NULL);
	db.reputation_timer = evtimer_new(mxd->base, reputation_timer_cb, NULL);
	if (!db.conninfo || !db.appliance || !db.queue || !db.flush_timer || !db.maintenance_timer ||
	    !db.reputation_timer)
		fatalx("database: out of memory");
	db.writer = (struct dbconn){ .name = "writer", .on_up = writer_up, .on_input = writer_input, .on_down = writer_down };
	db.reader = (struct dbconn){ .name = "reader", .on_up = reader_up, .on_input = reader_input, .on_down = reader_down };
	db.enabled = true;
	history_set_news_hook(db_news);
	dbconn_start(&db.writer);
	dbconn_start(&db.reader);
	maintenance_cb(-1, 0, NULL);
	{
		struct timeval tv = { DB_REPUTATION_EVERY_S, 0 };

		evtimer_add(db.reputation_timer, &tv);
	}
	log_info("database: appliance %s, queue %zu events", db.appliance, db.cap);
	return 0;
}

void
db_reconfigure(const struct config *c)
{
	/* Changing the database under a running daemon is a restart; the appliance name may change. */
	if (db.enabled && strcmp(db.conninfo, c->database) != 0)
		log_warn("database: changed in the config; restart mxtierd to use it");
}

void
db_stop(void)
{
	struct dbconn *conns[2] = { &db.writer, &db.reader };

	if (!db.enabled)
		return;
	history_set_news_hook(NULL);
	db.enabled = false;
	for (int i = 0; i < 2; i++) {
		dbconn_arm(conns[i], 0);
		if (conns[i]->retry_timer)
			event_free(conns[i]->retry_timer);
		if (conns[i]->pg)
			PQfinish(conns[i]->pg);
		conns[i]->pg = NULL;
	}
	reader_down(&db.reader);
	while (db.count > 0) {
		free(db.queue[db.head]);
		db.head = (db.head + 1) % db.cap;
		db.count--;
	}
	free(db.queue);
	event_free(db.flush_timer);
	event_free(db.maintenance_timer);
	event_free(db.reputation_timer);
	free(db.rep_good);
	free(db.rep_bad);
	db.nrep_good = db.nrep_bad = 0;
	free(db.listings);
	free(db.conninfo);
	free(db.appliance);
}

void
db_get_stats(struct db_stats *out)
{
	*out = db.stats;
	out->queued = db.count;
}
