/*
 * dbstore_reader.c - the privileged side's reads, one query at a time on
 * the reader connection: the engine's history lookups (answered rows,
 * then done, within db_read_budget; a late or failed read is answered
 * "nothing known"), the operators' listings (again on every NOTIFY) and
 * the shared reputation (every minute), both pushed to the engine.
 * Lookups waiting when the reader is free go as one query (up to
 * DB_LOOKUP_GROUP clients): under a flood of new addresses a round trip
 * per connection would bound the sessions/s by the reader's latency.
 */
#include "dbstore_internal.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "daemon.h"
#include "log.h"
#include "priv.h"
#include "reason.h"

#define DB_LOOKUPS_MAX		1024
#define DB_LOOKUP_GROUP		256	/* lookups answered by one query */
#define DB_LISTINGS_MAX		100000
#define DB_REPUTATION_SCORE	10	/* |score| at which an address is fast-tracked or refused */
#define DB_REPUTATION_EVERY_S	60

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
	TAILQ_HEAD(, db_lookup)	 lookups;
	size_t			 nlookups;
	size_t			 group;			/* lookups in the query in flight */
	bool			 reader_busy;		/* one query at a time on the reader */
	enum { READ_NONE, READ_SETUP, READ_LOOKUP, READ_LISTINGS, READ_REPUTATION, READ_BLOCKS } reading;
	bool			 listings_dirty;
	bool			 reputation_due;
	bool			 blocks_due;
	struct event		*reputation_timer;
} rd = { .lookups = TAILQ_HEAD_INITIALIZER(rd.lookups) };

#define SQL_CONTACT_COLUMNS \
    "SELECT key, (extract(epoch FROM now() - last_primary) * 1000)::bigint, " \
    "(extract(epoch FROM now() - last_secondary) * 1000)::bigint, " \
    "(extract(epoch FROM now() - last_bait) * 1000)::bigint, " \
    "(extract(epoch FROM now() - pending_since) * 1000)::bigint, " \
    "(extract(epoch FROM pass_until - now()) * 1000)::bigint, " \
    "(extract(epoch FROM block_until - now()) * 1000)::bigint, block_reason "
static const char sql_lookup[] = SQL_CONTACT_COLUMNS "FROM contacts WHERE key = ANY ($1::text[])";
/*
 * Blocks still running, once per connection: a restarted or rebooted
 * appliance puts them back in its kernel sets (which start empty) before
 * the blocked sources come back, not at their next lookup.
 */
static const char sql_active_blocks[] = SQL_CONTACT_COLUMNS
    "FROM contacts WHERE block_until > now() ORDER BY block_until DESC LIMIT 100000";
static const char sql_reputation[] =
    "SELECT key, score FROM reputation WHERE kind = 'address' AND (score >= $1::integer OR score <= -$1::integer) "
    "ORDER BY last_seen DESC LIMIT 100000";
static const char sql_listings[] =
    "SELECT network::text, kind, coalesce((extract(epoch FROM expires_at - now()) * 1000)::bigint, 0) "
    "FROM listings WHERE expires_at IS NULL OR expires_at > now() LIMIT 100000";


static void reader_next(void);

static void
lookup_free(struct db_lookup *l)
{
	uint32_t id = l->id;

	TAILQ_REMOVE(&rd.lookups, l, entry);
	rd.nlookups--;
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

/* group_owner - the id of a lookup in the query in flight that asked for key (the engine merges rows by key). */
static bool
group_owner(const char *key, uint32_t *id)
{
	struct db_lookup *l;

	TAILQ_FOREACH(l, &rd.lookups, entry) {
		if (!l->sent)
			continue;
		for (int i = 0; i < l->nkeys; i++)
			if (strcmp(l->keys[i], key) == 0) {
				*id = l->id;
				return true;
			}
	}
	return false;
}

/*
 * rows_apply - contact rows to the engine, each under the id of the lookup
 * that asked for its key, or (active_blocks) as PRIV_DB_ROW_ACTIVE_BLOCK.
 */
static void
rows_apply(PGresult *res, bool active_blocks)
{
	for (int row = 0; row < PQntuples(res); row++) {
		struct priv_db_row r;

		memset(&r, 0, sizeof(r));
		if (active_blocks)
			r.id = PRIV_DB_ROW_ACTIVE_BLOCK;
		else if (!group_owner(PQgetvalue(res, row, 0), &r.id))
			continue;
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

/* group_done - every lookup of the query in flight answered done. */
static void
group_done(void)
{
	struct db_lookup *l, *next;

	for (l = TAILQ_FIRST(&rd.lookups); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		if (l->sent)
			lookup_free(l);
	}
	rd.group = 0;
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

	rd.reputation_due = true;
	reader_next();
	evtimer_add(rd.reputation_timer, &tv);
}

static void
reader_input(struct dbconn *c)
{
	PGnotify *note;

	while ((note = PQnotifies(c->pg)) != NULL) {
		rd.listings_dirty = true;
		PQfreemem(note);
	}
	while (rd.reader_busy && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);

		if (res == NULL) {
			/* This query is done: finish its lookup, move on. */
			if (rd.reading == READ_LOOKUP)
				group_done();
			rd.reader_busy = false;
			rd.reading = READ_NONE;
			break;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			if (rd.reading == READ_LOOKUP)
				rows_apply(res, false);
			else if (rd.reading == READ_LISTINGS)
				listings_apply(res);
			else if (rd.reading == READ_REPUTATION)
				reputation_apply(res);
			else if (rd.reading == READ_BLOCKS) {
				rows_apply(res, true);
				log_info("database: %d running blocks loaded", PQntuples(res));
			}
		} else if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			dbconn_log_limited(c, "query failed", PQresultErrorMessage(res));
		}
		PQclear(res);
	}
	reader_next();
}

/* array_literal - the keys of the next group as a text[] literal; '"' and '\\' escaped, so a key is always one element. */
static void
array_literal(char *out, size_t len)
{
	struct db_lookup *l;
	size_t o = 0;

	out[o++] = '{';
	TAILQ_FOREACH(l, &rd.lookups, entry) {
		if (l->sent)
			continue;
		/* Room for this lookup's keys, each byte escaped at worst, with quotes and commas. */
		if (rd.group >= DB_LOOKUP_GROUP || o + 3 * (2 * PRIV_DB_KEY_MAX + 3) + 2 >= len)
			break;
		for (int i = 0; i < l->nkeys; i++) {
			if (o > 1)
				out[o++] = ',';
			out[o++] = '"';
			for (const char *p = l->keys[i]; *p; p++) {
				if (*p == '"' || *p == '\\')
					out[o++] = '\\';
				out[o++] = *p;
			}
			out[o++] = '"';
		}
		l->sent = true;
		rd.group++;
	}
	out[o++] = '}';
	out[o] = '\0';
}

static void
reader_next(void)
{
	struct dbconn *c = &store.reader;
	struct db_lookup *l;

	if (c->state != DBC_UP || rd.reader_busy)
		return;
	if (rd.listings_dirty) {
		if (!PQsendQuery(c->pg, sql_listings)) {
			dbconn_fail(c, "send failed");
			return;
		}
		rd.listings_dirty = false;
		rd.reading = READ_LISTINGS;
		rd.reader_busy = true;
		dbconn_flush(c);
		return;
	}
	if (rd.blocks_due) {
		if (!PQsendQuery(c->pg, sql_active_blocks)) {
			dbconn_fail(c, "send failed");
			return;
		}
		rd.blocks_due = false;
		rd.reading = READ_BLOCKS;
		rd.reader_busy = true;
		dbconn_flush(c);
		return;
	}
	if (rd.reputation_due) {
		char score[16];
		const char *values[1] = { score };

		snprintf(score, sizeof(score), "%d", DB_REPUTATION_SCORE);
		if (!PQsendQueryParams(c->pg, sql_reputation, 1, NULL, values, NULL, NULL, 0)) {
			dbconn_fail(c, "send failed");
			return;
		}
		rd.reputation_due = false;
		rd.reading = READ_REPUTATION;
		rd.reader_busy = true;
		dbconn_flush(c);
		return;
	}
	TAILQ_FOREACH(l, &rd.lookups, entry)
		if (!l->sent)
			break;
	if (l == NULL)
		return;
	{
		static char array[DB_LOOKUP_GROUP * 3 * (2 * PRIV_DB_KEY_MAX + 3) + 16];
		const char *values[1] = { array };

		array_literal(array, sizeof(array));
		if (!PQsendQueryParams(c->pg, sql_lookup, 1, NULL, values, NULL, NULL, 0)) {
			dbconn_fail(c, "send failed");
			return;
		}
	}
	rd.reading = READ_LOOKUP;
	rd.reader_busy = true;
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
	rd.reading = READ_SETUP;
	rd.reader_busy = true;
	rd.listings_dirty = true;
	rd.blocks_due = true;
	rd.reputation_due = true;
	dbconn_flush(c);
}

static void
reader_down(struct dbconn *c)
{
	rd.reader_busy = false;
	rd.reading = READ_NONE;
	rd.group = 0;
	/* Pending lookups are answered "nothing known" at once: neutral, never a wait. */
	while (!TAILQ_EMPTY(&rd.lookups))
		lookup_free(TAILQ_FIRST(&rd.lookups));
}

void
dbstore_reader_ask(uint32_t id, const char *const keys[3])
{
	struct db_lookup *l;
	struct timeval tv = { mxd->config->db_read_budget / 1000, (mxd->config->db_read_budget % 1000) * 1000 };

	if (!store.enabled || store.reader.state != DBC_UP || rd.nlookups >= DB_LOOKUPS_MAX ||
	    (l = calloc(1, sizeof(*l))) == NULL) {
		priv_to_engine(PRIV_MSG_DB_DONE, &id, sizeof(id));
		return;
	}
	l->id = id;
	for (int i = 0; i < 3; i++)
		if (keys[i])
			snprintf(l->keys[l->nkeys++], PRIV_DB_KEY_MAX, "%s", keys[i]);
	l->deadline = evtimer_new(mxd->base, lookup_deadline_cb, l);
	TAILQ_INSERT_TAIL(&rd.lookups, l, entry);
	rd.nlookups++;
	if (l->deadline == NULL) {
		lookup_free(l);
		return;
	}
	evtimer_add(l->deadline, &tv);
	reader_next();
}

void
dbstore_reader_start(void)
{
	struct timeval tv = { DB_REPUTATION_EVERY_S, 0 };

	rd.reputation_timer = evtimer_new(mxd->base, reputation_timer_cb, NULL);
	if (rd.reputation_timer == NULL)
		fatalx("database: out of memory");
	store.reader = (struct dbconn){ .name = "reader", .on_up = reader_up, .on_input = reader_input,
	    .on_down = reader_down };
	evtimer_add(rd.reputation_timer, &tv);
}

void
dbstore_reader_stop(void)
{
	reader_down(&store.reader);
	event_free(rd.reputation_timer);
	rd.reputation_timer = NULL;
}
