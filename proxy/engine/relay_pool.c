/*
 * relay_pool.c - finished backend connections kept for the next session.
 *
 * A session that ends with its backend leg at rest gives the connection
 * back instead of QUIT; the next session to need the backend takes it and
 * starts with RSET, then (backend_client_info = xclient) XCLIENT with its
 * own client, whose fresh 220 and EHLO make the backend see a new session.
 * That saves a connect, a banner and an EHLO per relayed session.
 *
 * Only a connection nothing is wrong with is kept: at rest, nothing
 * unread or unsent, not broken, under backend_pool_max_uses sessions,
 * made under the running configuration, with the backend healthy. The
 * PROXY protocol modes never reuse (the header is once per connection, so
 * a second client cannot be announced), nor does backend_source = client
 * (the socket is bound to the first client's address). A parked
 * connection that the backend writes to or closes is dropped at once; one
 * idle for backend_pool_idle gets a QUIT; a failing health probe empties
 * the pool. The newest connection is reused first, so the oldest age out.
 */
#include "relay_internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"

static TAILQ_HEAD(relay_list, relay) pool = TAILQ_HEAD_INITIALIZER(pool);
static size_t pool_count;

/* relay_pool_usable - may r, at the end of its session, serve another? */
static bool
relay_pool_usable(const struct relay *r)
{
	const struct config *c = r->owner.config;

	if (c->backend_pool_size == 0 || pool_count >= (size_t)c->backend_pool_size)
		return false;
	if (c->backend_client_info != CLIENT_INFO_NONE && c->backend_client_info != CLIENT_INFO_XCLIENT)
		return false;
	if (c->backend_source == BACKEND_FROM_CLIENT)
		return false;
	if (!r->attached || r->state != RELAY_IDLE || r->broken || r->sessions >= (unsigned)c->backend_pool_max_uses)
		return false;
	if (c != mxd->config || mxd->draining || !mxd->backend_up)
		return false;
	return evbuffer_get_length(bufferevent_get_input(r->bev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(r->bev)) == 0;
}

bool
relay_pool_park(struct relay *r)
{
	int64_t idle = r->owner.config->backend_pool_idle;
	struct timeval tv = { .tv_sec = idle / 1000, .tv_usec = (idle % 1000) * 1000 };

	if (!relay_pool_usable(r))
		return false;
	r->attached = false;
	r->state = RELAY_POOLED;
	r->pooled = true;
	TAILQ_INSERT_HEAD(&pool, r, pool_entry);
	pool_count++;
	mxd->stats.backend_pool_parked++;
	evtimer_add(r->timer, &tv);
	return true;
}

struct relay *
relay_pool_take(const struct config *c)
{
	struct relay *r, *next;

	/* glibc's sys/queue.h has no TAILQ_FOREACH_SAFE. */
	for (r = TAILQ_FIRST(&pool); r != NULL; r = next) {
		next = TAILQ_NEXT(r, pool_entry);
		if (r->owner.config == c) {
			relay_pool_unlink(r);
			evtimer_del(r->timer);
			mxd->stats.backend_pool_reused++;
			return r;
		}
		/* Made under a configuration that has since been reloaded: its backend may be another. */
		relay_free(r);
	}
	return NULL;
}

void
relay_pool_unlink(struct relay *r)
{
	if (!r->pooled)
		return;
	TAILQ_REMOVE(&pool, r, pool_entry);
	r->pooled = false;
	pool_count--;
}

void
relay_pool_flush(const char *why)
{
	struct relay *r;
	size_t n = pool_count;

	while ((r = TAILQ_FIRST(&pool)) != NULL)
		relay_free(r);
	if (n > 0)
		log_info("backend connection pool emptied (%zu connections): %s", n, why);
}

size_t
relay_pool_count(void)
{
	return pool_count;
}
