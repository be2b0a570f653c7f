#include "outq.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "daemon.h"

static void
outq_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct outq *q = arg;
	struct evbuffer *out = bufferevent_get_output(q->bev);
	evutil_socket_t sock = bufferevent_getfd(q->bev);

	if (evbuffer_get_length(out) > 0 && bufferevent_openssl_get_ssl(q->bev) != NULL) {
		/* TLS: never around OpenSSL; it writes on the next writable event, once per pass. */
		bufferevent_enable(q->bev, EV_WRITE);
		return;
	}
	if (evbuffer_get_length(out) > 0 && sock >= 0) {
		int n;

		/* A bufferevent keeps its output's start frozen; its own writer thaws it the same way. */
		evbuffer_unfreeze(out, 1);
		n = evbuffer_write(out, sock);
		evbuffer_freeze(out, 1);

		/* Partial, would block or failed: libevent takes over and reports drain or error. */
		if (evbuffer_get_length(out) > 0 || (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			bufferevent_enable(q->bev, EV_WRITE);
			return;
		}
	}
	if (evbuffer_get_length(out) == 0 && q->drained)
		q->drained(q->arg);	/* last: it may free q's owner */
}

int
outq_init(struct outq *q, struct bufferevent *bev, void (*drained)(void *), void *arg)
{
	q->bev = bev;
	q->drained = drained;
	q->arg = arg;
	q->flush = event_new(mxd->base, -1, 0, outq_flush_cb, q);
	/* A new bufferevent starts with EV_WRITE enabled; ours is off until a flush falls short. */
	bufferevent_disable(bev, EV_WRITE);
	return q->flush ? 0 : -1;
}

void
outq_kick(struct outq *q)
{
	/* Activating an already active event only merges: one flush per pass whatever the replies. */
	if (q->flush)
		event_active(q->flush, EV_TIMEOUT, 0);
}

void
outq_rebind(struct outq *q, struct bufferevent *bev)
{
	/*
	 * EV_WRITE stays as it is: a TLS bufferevent still handshaking needs
	 * its write event (libevent 2.1 removes it on disable even then). The
	 * owner turns it off once the handshake is done.
	 */
	q->bev = bev;
}

void
outq_free(struct outq *q)
{
	if (q->flush) {
		event_free(q->flush);
		q->flush = NULL;
	}
}
