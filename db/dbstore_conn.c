/*
 * dbstore_conn.c - one libpq connection of the privileged side (the
 * writer's or the reader's): connected without blocking the loop, its
 * socket watched on the loop, retried after a doubling backoff when it
 * fails, errors logged at most every DB_LOG_EVERY_MS. What runs on it is
 * the owner's (on_up, on_input, on_down).
 */
#include "dbstore_internal.h"

#include <event2/event.h>

#include "daemon.h"
#include "log.h"

/* The privileged side's database state, shared by the dbstore files: defined in the lowest of them. */
struct dbstore store;

#define DB_BACKOFF_MIN_MS	1000
#define DB_BACKOFF_MAX_MS	30000
#define DB_LOG_EVERY_MS		10000	/* rate limit for repeated errors */

/* Server notices are for debugging, not for the session log. */
static void
notice_to_log(void *arg, const char *message)
{
	log_debug("database: %s", message);
}
void
dbconn_log_limited(struct dbconn *c, const char *what, const char *detail)
{
	int64_t now = now_ms();

	if (now - c->last_error_log_ms < DB_LOG_EVERY_MS)
		return;
	c->last_error_log_ms = now;
	log_warn("database %s: %s: %s", c->name, what, detail ? detail : "");
}

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

void
dbconn_fail(struct dbconn *c, const char *why)
{
	struct timeval tv;

	dbconn_log_limited(c, why, c->pg ? PQerrorMessage(c->pg) : NULL);
	dbconn_arm(c, 0);
	if (c->pg) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	if (c->state == DBC_UP)
		store.stats.reconnects++;
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
		if (c == &store.writer)
			store.stats.connected = true;
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

void
dbconn_start(struct dbconn *c)
{
	if (!store.enabled || c->state != DBC_DOWN)
		return;
	c->pg = PQconnectStart(store.conninfo);
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

bool
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

void
dbconn_close(struct dbconn *c)
{
	dbconn_arm(c, 0);
	if (c->retry_timer)
		event_free(c->retry_timer);
	c->retry_timer = NULL;
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
}
