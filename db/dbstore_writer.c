/*
 * dbstore_writer.c - the privileged side's writes: a bounded queue of
 * events (session rows, contact news, plain statements such as heartbeats
 * and retention) sent on the writer connection in pipeline mode as
 * batches (db_batch.c): up to db_batch_size events, one statement per
 * row kind, each its own transaction. A full queue drops and counts;
 * nothing waits for the database.
 *
 * A batch that fails is sent again: whole after a transient failure
 * (deadlock, lock timeout), else as its two halves, until the row that
 * fails stands alone and is counted as an error; the rest is written. A
 * lost connection sends every unconfirmed batch again after the
 * reconnect: session rows are keyed (appliance, session id), so a row the
 * server had committed is skipped and its reputation not counted twice.
 */
#include "dbstore_internal.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "db_batch.h"
#include "db_rows.h"
#include "log.h"

#define DB_BATCHES_INFLIGHT	4	/* batches in the pipeline: the server works while the next is built */
#define DB_TRANSIENT_TRIES	3	/* a batch that keeps deadlocking is bisected like a bad one */

/*
 * The queue: a ring of events not yet in a batch, then batches to send
 * again first (failed halves, or unconfirmed at a disconnect), then the
 * batches in the pipeline in the order sent. cap bounds all three.
 */
static struct {
	struct db_event		**ring;
	size_t			 cap, head, count;
	size_t			 held;			/* events in batches (retry + sent) */
	size_t			 batch_size;
	struct db_batch_list	 retry, sent;
	size_t			 nsent;
	struct event		*flush_timer;
	bool			 writer_setup;		/* the writer's SET is in flight: no pipeline yet */
} wq = {
	.retry = TAILQ_HEAD_INITIALIZER(wq.retry),
	.sent = TAILQ_HEAD_INITIALIZER(wq.sent),
};

static void
stats_queued(void)
{
	store.stats.queued = wq.count + wq.held;
}

static void
flush_timer_arm(void)
{
	int64_t ms = mxd->config->db_flush_interval;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (!evtimer_pending(wq.flush_timer, NULL))
		evtimer_add(wq.flush_timer, &tv);
}

/* batch_take - the next batch from the ring: up to batch_size events, a plain statement alone. */
static struct db_batch *
batch_take(void)
{
	struct db_batch *b;

	if (wq.count == 0 || (b = db_batch_new(wq.batch_size)) == NULL)
		return NULL;
	while (wq.count > 0) {
		struct db_event *e = wq.ring[wq.head];

		if (b->n > 0 && e->kind == DB_EVENT_STATEMENT)
			break;
		if (!db_batch_add(b, e))
			break;
		wq.ring[wq.head] = NULL;
		wq.head = (wq.head + 1) % wq.cap;
		wq.count--;
		wq.held++;
		if (e->kind == DB_EVENT_STATEMENT)
			break;
	}
	return b;
}

/*
 * batch_send_rows - kind's rows of b as one statement and its own
 * transaction (a Sync), if it has any; false if the connection failed.
 * Sessions and contacts commit apart: appliances writing the same hot
 * keys (a /24's prefix) then hold each key's lock for one statement, not
 * two. Either may be sent again with the batch: both are idempotent.
 */
static bool
batch_send_rows(struct dbconn *c, struct db_batch *b, enum db_row_kind kind)
{
	struct db_batch_params p;
	int ok;

	if (db_batch_build(b, kind, &p) == -1) {
		dbconn_fail(c, "out of memory building a batch");
		return false;
	}
	if (p.nrows == 0) {
		db_batch_params_free(&p);
		return true;
	}
	ok = PQsendQueryParams(c->pg, db_row_batch_sql(kind), p.nparams, NULL, (const char *const *)p.values, NULL,
	    NULL, 0) && PQpipelineSync(c->pg);
	db_batch_params_free(&p);
	if (!ok) {
		dbconn_fail(c, "send failed");
		return false;
	}
	b->syncs++;
	return true;
}

/* batch_send - the batch's statements, each with its Sync. */
static bool
batch_send(struct dbconn *c, struct db_batch *b)
{
	b->failed = false;
	b->syncs = 0;
	if (b->n == 1 && b->ev[0]->kind == DB_EVENT_STATEMENT) {
		struct db_event *e = b->ev[0];

		if (!PQsendQueryParams(c->pg, e->sql, e->nparams, NULL, (const char *const *)e->values, NULL, NULL, 0) ||
		    !PQpipelineSync(c->pg)) {
			dbconn_fail(c, "send failed");
			return false;
		}
		b->syncs = 1;
		return true;
	}
	return batch_send_rows(c, b, DB_ROW_SESSION) && batch_send_rows(c, b, DB_ROW_CONTACT);
}

/* writer_flush - batches into the pipeline; a partial batch from the ring only when force (the timer). */
static void
writer_flush(bool force)
{
	struct dbconn *c = &store.writer;
	size_t sent = 0;

	if (c->state != DBC_UP || wq.writer_setup)
		return;
	while (wq.nsent < DB_BATCHES_INFLIGHT) {
		struct db_batch *b = TAILQ_FIRST(&wq.retry);

		if (b != NULL) {
			TAILQ_REMOVE(&wq.retry, b, entry);
		} else if (wq.count >= wq.batch_size || (force && wq.count > 0)) {
			if ((b = batch_take()) == NULL)
				break;
		} else {
			break;
		}
		/* In the sent list first: a failed send's on_down puts it back for the reconnect. */
		TAILQ_INSERT_TAIL(&wq.sent, b, entry);
		wq.nsent++;
		if (!batch_send(c, b))
			return;
		sent++;
	}
	if (sent)
		dbconn_flush(c);
	stats_queued();
}

static void
flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	writer_flush(true);
	if (wq.count > 0 && store.writer.state == DBC_UP)
		flush_timer_arm();
}

/* batch_done - the batch's Sync came back: written, or sent again whole or halved, or its one row given up. */
static void
batch_done(struct db_batch *b, const char *sqlstate)
{
	struct db_batch *x, *y;

	TAILQ_REMOVE(&wq.sent, b, entry);
	wq.nsent--;
	if (!b->failed) {
		store.stats.written += b->n;
		wq.held -= b->n;
		db_batch_free(b, true);
		return;
	}
	if (db_sqlstate_transient(sqlstate) && ++b->attempts < DB_TRANSIENT_TRIES) {
		TAILQ_INSERT_HEAD(&wq.retry, b, entry);
		return;
	}
	if (db_batch_split(b, &x, &y) == 0) {
		TAILQ_INSERT_HEAD(&wq.retry, y, entry);
		TAILQ_INSERT_HEAD(&wq.retry, x, entry);
		return;
	}
	/* One row the server will not take (or no memory to halve): the rest of its batch is written without it. */
	store.stats.errors += b->n;
	wq.held -= b->n;
	db_batch_free(b, true);
}

static void
writer_input(struct dbconn *c)
{
	static char sqlstate[8];

	while (wq.writer_setup && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);

		if (res != NULL) {
			PQclear(res);
			continue;
		}
		wq.writer_setup = false;
		if (PQenterPipelineMode(c->pg) == 0) {
			dbconn_fail(c, "cannot enter pipeline mode");
			return;
		}
	}
	if (wq.writer_setup)
		return;
	while (wq.nsent > 0 && !PQisBusy(c->pg)) {
		struct db_batch *b = TAILQ_FIRST(&wq.sent);
		PGresult *res = PQgetResult(c->pg);
		const char *state;

		if (res == NULL)
			continue;	/* end of one statement's results */
		switch (PQresultStatus(res)) {
		case PGRES_PIPELINE_SYNC:
			if (--b->syncs > 0)
				break;
			batch_done(b, sqlstate);
			sqlstate[0] = '\0';
			break;
		case PGRES_FATAL_ERROR:
			b->failed = true;
			state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			snprintf(sqlstate, sizeof(sqlstate), "%s", state ? state : "");
			dbconn_log_limited(c, "batch failed", PQresultErrorMessage(res));
			break;
		case PGRES_PIPELINE_ABORTED:
			b->failed = true;
			break;
		default:
			break;
		}
		PQclear(res);
	}
	stats_queued();
	writer_flush(false);
	if (wq.count > 0)
		flush_timer_arm();
}

static void
writer_up(struct dbconn *c)
{
	/*
	 * Losing the last few rows in a crash is fine; waiting for fsync per
	 * batch is not. Sent without waiting (PQexec would block the loop):
	 * pipeline mode starts once its result is in.
	 */
	if (!PQsendQuery(c->pg, "SET synchronous_commit = off")) {
		dbconn_fail(c, "send failed");
		return;
	}
	wq.writer_setup = true;
	dbconn_flush(c);
	flush_timer_arm();
}

static void
writer_down(struct dbconn *c)
{
	struct db_batch *b;

	wq.writer_setup = false;
	/* Unconfirmed batches go again first, in the order sent, ahead of those already waiting. */
	while ((b = TAILQ_LAST(&wq.sent, db_batch_list)) != NULL) {
		TAILQ_REMOVE(&wq.sent, b, entry);
		TAILQ_INSERT_HEAD(&wq.retry, b, entry);
	}
	wq.nsent = 0;
	store.stats.connected = false;
}

void
dbstore_writer_push(enum db_event_kind kind, const char *sql, int n, const char *const *values)
{
	struct db_event *e;

	if (wq.count + wq.held >= wq.cap || (e = db_event_new(kind, sql, n, values)) == NULL) {
		if (kind == DB_EVENT_SESSION)
			store.stats.sessions_dropped++;
		store.stats.dropped++;
		return;
	}
	wq.ring[(wq.head + wq.count) % wq.cap] = e;
	wq.count++;
	stats_queued();
	/* A full batch goes at once; a partial one waits db_flush_interval for company. */
	if (wq.count >= wq.batch_size)
		writer_flush(false);
	if (wq.count > 0)
		flush_timer_arm();
}

size_t
dbstore_writer_queued(void)
{
	return wq.count + wq.held;
}

void
dbstore_writer_start(size_t cap, size_t batch_size)
{
	wq.cap = cap;
	wq.batch_size = batch_size;
	wq.ring = calloc(wq.cap, sizeof(*wq.ring));
	wq.flush_timer = evtimer_new(mxd->base, flush_timer_cb, NULL);
	if (!wq.ring || !wq.flush_timer)
		fatalx("database: out of memory");
	store.writer = (struct dbconn){ .name = "writer", .on_up = writer_up, .on_input = writer_input,
	    .on_down = writer_down };
}

void
dbstore_writer_stop(void)
{
	struct db_batch *b;

	writer_down(&store.writer);
	if (wq.count + wq.held > 0)
		log_warn("db: %zu queued event(s) not written at stop", wq.count + wq.held);
	while ((b = TAILQ_FIRST(&wq.retry)) != NULL) {
		TAILQ_REMOVE(&wq.retry, b, entry);
		db_batch_free(b, true);
	}
	while (wq.count > 0) {
		db_event_free(wq.ring[wq.head]);
		wq.head = (wq.head + 1) % wq.cap;
		wq.count--;
	}
	wq.held = 0;
	free(wq.ring);
	wq.ring = NULL;
	event_free(wq.flush_timer);
	wq.flush_timer = NULL;
}
