/*
 * dbstore_writer.c - the privileged side's writes: a bounded queue of
 * statements (session rows, contact news, heartbeats, retention),
 * streamed on the writer connection in pipeline mode, each its own
 * transaction. A full queue drops and counts; nothing waits for the
 * database, and a lost connection sends the unconfirmed events again.
 */
#include "dbstore_internal.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "db_rows.h"
#include "log.h"

#define DB_PARAMS_MAX		DB_ROW_FIELDS_MAX
#define DB_INFLIGHT_MAX		1000	/* events sent, not yet confirmed */
#define DB_SEND_BATCH		500

/* One statement with its parameters, in one allocation. */
struct db_event {
	const char	*sql;
	int		 nparams;
	bool		 session;	/* a session row: its drops are counted apart */
	bool		 failed;
	char		*values[DB_PARAMS_MAX];
	char		 storage[];
};

/* The queue: a ring of cap events from head; the first inflight of them are sent, not yet confirmed. */
static struct {
	struct db_event		**queue;
	size_t			 cap, head, count, inflight;
	struct event		*flush_timer;
	bool			 writer_setup;		/* the writer's SET is in flight: no pipeline yet */
} wq;

static struct db_event *
event_new_params(const char *sql, bool session, int n, const char *const *values)
{
	size_t total = sizeof(struct db_event);
	struct db_event *e;
	char *p;

	if (n > DB_PARAMS_MAX)
		return NULL;
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
	if (e == NULL || wq.count >= wq.cap) {
		if (e == NULL || e->session)
			store.stats.sessions_dropped++;
		free(e);
		store.stats.dropped++;
		return;
	}
	wq.queue[(wq.head + wq.count) % wq.cap] = e;
	wq.count++;
	store.stats.queued = wq.count;
	if (!evtimer_pending(wq.flush_timer, NULL)) {
		int64_t ms = mxd->config->db_flush_interval;
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		evtimer_add(wq.flush_timer, &tv);
	}
}

static void
queue_pop_confirmed(void)
{
	struct db_event *e = wq.queue[wq.head];

	if (e->failed)
		store.stats.errors++;
	else
		store.stats.written++;
	free(e);
	wq.queue[wq.head] = NULL;
	wq.head = (wq.head + 1) % wq.cap;
	wq.count--;
	wq.inflight--;
	store.stats.queued = wq.count;
}

static void
writer_flush(void)
{
	struct dbconn *c = &store.writer;
	size_t sent = 0;

	if (c->state != DBC_UP || wq.writer_setup)
		return;
	/* Each event is its own transaction (a Sync after it): one bad row never takes its batch along. */
	while (wq.inflight < wq.count && wq.inflight < DB_INFLIGHT_MAX && sent < DB_SEND_BATCH) {
		struct db_event *e = wq.queue[(wq.head + wq.inflight) % wq.cap];

		if (!PQsendQueryParams(c->pg, e->sql, e->nparams, NULL, (const char *const *)e->values, NULL, NULL, 0) ||
		    !PQpipelineSync(c->pg)) {
			dbconn_fail(c, "send failed");
			return;
		}
		e->failed = false;
		wq.inflight++;
		sent++;
	}
	if (sent)
		dbconn_flush(c);
}

static void
flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	writer_flush();
	if (wq.count > wq.inflight && store.writer.state == DBC_UP) {
		int64_t ms = mxd->config->db_flush_interval;
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		evtimer_add(wq.flush_timer, &tv);
	}
}

static void
writer_input(struct dbconn *c)
{
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
	while (wq.inflight > 0 && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);

		if (res == NULL)
			continue;	/* end of one statement's results */
		switch (PQresultStatus(res)) {
		case PGRES_PIPELINE_SYNC:
			queue_pop_confirmed();
			break;
		case PGRES_FATAL_ERROR:
		case PGRES_PIPELINE_ABORTED:
			wq.queue[wq.head]->failed = true;
			dbconn_log_limited(c, "statement failed", PQresultErrorMessage(res));
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
	wq.writer_setup = true;
	dbconn_flush(c);
}

static void
writer_down(struct dbconn *c)
{
	wq.writer_setup = false;
	/* Unconfirmed events go again after reconnecting: the rows are keyed, so a resend changes nothing twice. */
	wq.inflight = 0;
	store.stats.connected = false;
}

void
dbstore_writer_push(const char *sql, bool session, int n, const char *const *values)
{
	queue_push(event_new_params(sql, session, n, values));
}

size_t
dbstore_writer_queued(void)
{
	return wq.count;
}

void
dbstore_writer_start(size_t cap)
{
	wq.cap = cap;
	wq.queue = calloc(wq.cap, sizeof(*wq.queue));
	wq.flush_timer = evtimer_new(mxd->base, flush_timer_cb, NULL);
	if (!wq.queue || !wq.flush_timer)
		fatalx("database: out of memory");
	store.writer = (struct dbconn){ .name = "writer", .on_up = writer_up, .on_input = writer_input,
	    .on_down = writer_down };
}

void
dbstore_writer_stop(void)
{
	if (wq.count > 0)
		log_warn("db: %zu queued event(s) not written at stop", (size_t)wq.count);
	while (wq.count > 0) {
		free(wq.queue[wq.head]);
		wq.head = (wq.head + 1) % wq.cap;
		wq.count--;
	}
	free(wq.queue);
	wq.queue = NULL;
	event_free(wq.flush_timer);
	wq.flush_timer = NULL;
}
