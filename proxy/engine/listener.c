/*
 * listener.c - one listening socket per tier address. The tier role
 * belongs to the address, so a reload can change roles without touching
 * the socket. On fd exhaustion (EMFILE/ENFILE) accepting pauses for a
 * moment instead of spinning on the error.
 */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "daemon.h"
#include "log.h"
#include "priv.h"
#include "session.h"
#include "sockets.h"

#define ACCEPT_PAUSE_MS		250

struct listener {
	LIST_ENTRY(listener)	 entry;
	struct evconnlistener	*lev;
	struct netaddr		 addr;
	uint16_t		 port;
	enum tier_role		 tier;
	bool			 transparent;
	bool			 keep;
};

struct listener_set {
	LIST_HEAD(, listener)	 list;
	struct event		*resume_timer;
	bool			 paused;
};

static struct listener_set listeners = { LIST_HEAD_INITIALIZER(listeners.list), NULL, false };

static void
listener_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;

	session_accept(fd, sa, l->tier);
}

static void
listeners_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l;

	listeners.paused = false;
	LIST_FOREACH(l, &listeners.list, entry)
		evconnlistener_enable(l->lev);
	log_info("accepting again after fd exhaustion (%zu sessions active)", mxd->active_sessions);
}

static void
listener_error_cb(struct evconnlistener *lev, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct listener *l;
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };

	mxd->stats.accept_errors++;
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warn("accept: %s", evutil_socket_error_to_string(err));
		return;
	}
	/* Out of descriptors: the pending connection stays in the backlog; retry shortly. */
	if (listeners.paused)
		return;
	listeners.paused = true;
	mxd->stats.accept_paused++;
	LIST_FOREACH(l, &listeners.list, entry)
		evconnlistener_disable(l->lev);
	if (listeners.resume_timer == NULL)
		listeners.resume_timer = evtimer_new(mxd->base, listeners_resume_cb, NULL);
	evtimer_add(listeners.resume_timer, &tv);
	log_warn("accept paused for %d ms: %s (%zu sessions active)", ACCEPT_PAUSE_MS,
	    evutil_socket_error_to_string(err), mxd->active_sessions);
}

static struct listener *
listener_open(const struct netaddr *addr, uint16_t port, enum tier_role tier, bool transparent, char *err,
    size_t errlen)
{
	struct listener *l = calloc(1, sizeof(*l));
	char text[NETADDR_STRLEN];
	int fd;

	if (l == NULL)
		return NULL;
	l->addr = *addr;
	l->port = port;
	l->tier = tier;
	l->transparent = transparent;
	/* After the engine dropped root, port 25 and IP_TRANSPARENT come from the privileged parent. */
	fd = priv_listener_socket(addr, port, transparent);
	l->lev = fd == -1 ? NULL : evconnlistener_new(mxd->base, listener_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l->lev == NULL) {
		if (fd != -1)
			close(fd);
		int saved = errno;
		size_t used = strlen(err);

		log_warn("cannot listen on %s port %u (%s): %s", netaddr_format(addr, text, sizeof(text)), port,
		    tier_role_name(tier), strerror(saved));
		snprintf(err + used, errlen - used, "%scannot listen on %s port %u (%s): %s", used ? "; " : "", text, port,
		    tier_role_name(tier), strerror(saved));
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->lev, listener_error_cb);
	if (listeners.paused)
		evconnlistener_disable(l->lev);
	log_info("listening on %s port %u as %s%s", netaddr_format(addr, text, sizeof(text)), port, tier_role_name(tier),
	    transparent ? " (transparent)" : "");
	return l;
}

static void
listener_close(struct listener *l)
{
	char text[NETADDR_STRLEN];

	log_info("closed listener %s port %u", netaddr_format(&l->addr, text, sizeof(text)), l->port);
	LIST_REMOVE(l, entry);
	evconnlistener_free(l->lev);
	free(l);
}

int
listeners_apply(const struct config *c, char *err, size_t errlen)
{
	struct listener *l, *next;
	int rc = 0;

	err[0] = '\0';
	LIST_FOREACH(l, &listeners.list, entry)
		l->keep = false;
	for (int t = 0; t < TIER_COUNT; t++) {
		for (size_t i = 0; i < c->tier_ips[t].count; i++) {
			const struct netaddr *a = &c->tier_ips[t].items[i];
			bool found = false;

			LIST_FOREACH(l, &listeners.list, entry) {
				if (l->port == c->listen_port && netaddr_equal(&l->addr, a) && l->transparent == (bool)c->transparent) {
					if (l->tier != (enum tier_role)t) {
						char text[NETADDR_STRLEN];

						log_info("%s is now %s (was %s)", netaddr_format(a, text, sizeof(text)),
						    tier_role_name(t), tier_role_name(l->tier));
					}
					l->tier = t;
					l->keep = true;
					found = true;
				}
			}
			if (found)
				continue;
			if ((l = listener_open(a, (uint16_t)c->listen_port, t, c->transparent, err, errlen)) == NULL) {
				rc = -1;
				continue;
			}
			l->keep = true;
			LIST_INSERT_HEAD(&listeners.list, l, entry);
		}
	}
	for (l = LIST_FIRST(&listeners.list); l; l = next) {
		next = LIST_NEXT(l, entry);
		if (!l->keep)
			listener_close(l);
	}
	return rc;
}

/* listeners_foreach - each open listener, for the control socket's "listeners". */
void
listeners_foreach(void (*fn)(const struct netaddr *addr, uint16_t port, enum tier_role tier, bool transparent,
    void *arg), void *arg)
{
	struct listener *l;

	LIST_FOREACH(l, &listeners.list, entry)
		fn(&l->addr, l->port, l->tier, l->transparent, arg);
}

void
listeners_close_all(void)
{
	while (!LIST_EMPTY(&listeners.list))
		listener_close(LIST_FIRST(&listeners.list));
	if (listeners.resume_timer) {
		event_free(listeners.resume_timer);
		listeners.resume_timer = NULL;
	}
}
