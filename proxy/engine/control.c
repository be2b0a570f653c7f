/*
 * control.c - the operator's unix socket (control_socket). Requests:
 *   status
 *   block add ADDRESS [TTL] | block del ADDRESS | block list
 *   allow add ADDRESS [TTL] | allow del ADDRESS | allow list
 *   listeners                 the open tier listeners: "ADDRESS PORT ROLE [transparent]"
 *   reload                    what SIGHUP does, answered with its outcome
 *                             (mxtierctl tier set waits for it)
 * Only root (the socket is created 0600) reaches it. The HTTP process's
 * requests come the same way, over the privileged side's channel
 * (PRIV_MSG_CONTROL). In a split the
 * unprivileged engine serves it; a block or allow still reaches the kernel
 * sets only through the privileged parent's checks.
 */
#include "control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "db.h"
#include "history.h"
#include "listener.h"
#include "log.h"
#include "priv.h"
#include "sockets.h"

#define CONTROL_LINE_MAX	512
#define CONTROL_TIMEOUT_S	5
#define CONTROL_RELOAD_WAIT_S	8	/* a split's reload: the parent checks, the engine binds (mxtierctl waits 10 s) */

/* control_reload_wait - a "reload" connection waiting for the outcome. */
struct control_reload_wait {
	struct bufferevent	*bev;
	struct event		*timer;
};

static struct evconnlistener *control_listener;

static void
visit_print(const char *key, int64_t remaining_ms, enum reason why, unsigned count, void *arg)
{
	struct evbuffer *out = arg;

	evbuffer_add_printf(out, "%s expires_in=%llds reason=%s offences=%u\n", key, (long long)(remaining_ms / 1000),
	    reason_name(why), count);
}

/* control_listing - "block|allow add|del|list [ADDRESS [TTL]]". */
static void
control_listing(struct evbuffer *out, bool block, const char *verb, const char *addr_text, const char *ttl_text)
{
	struct history_client hc = { .domain = NULL };
	int64_t ttl = block ? mxd->config->block_ttl : mxd->config->pass_ttl;

	if (strcmp(verb, "list") == 0) {
		evbuffer_add_printf(out, "ok\n");
		if (block)
			history_foreach_block(visit_print, out);
		else
			history_foreach_pass(visit_print, out);
		return;
	}
	if (addr_text == NULL || netaddr_parse(addr_text, &hc.addr) == -1) {
		evbuffer_add_printf(out, "error: expected an IPv4 or IPv6 address\n");
		return;
	}
	netaddr_normalize(&hc.addr);
	if (ttl_text && (config_parse_duration(ttl_text, &ttl) == -1 || ttl <= 0)) {
		evbuffer_add_printf(out, "error: bad TTL \"%s\" (use s, m, h or d)\n", ttl_text);
		return;
	}
	if (strcmp(verb, "add") == 0) {
		if (block)
			history_block_manual(&hc, ttl);
		else
			history_allow(&hc, ttl);
		evbuffer_add_printf(out, "ok\n");
	} else if (strcmp(verb, "del") == 0) {
		if (block ? history_unblock(&hc) : history_unallow(&hc))
			evbuffer_add_printf(out, "ok\n");
		else
			evbuffer_add_printf(out, "error: %s is not %s\n", addr_text, block ? "blocked" : "allowed");
	} else {
		evbuffer_add_printf(out, "error: expected add, del or list\n");
	}
}

static void
listener_print(const struct netaddr *addr, uint16_t port, enum tier_role tier, bool transparent, void *arg)
{
	char text[NETADDR_STRLEN];

	evbuffer_add_printf(arg, "%s %u %s%s\n", netaddr_format(addr, text, sizeof(text)), port, tier_role_name(tier),
	    transparent ? " transparent" : "");
}

void
control_execute(char *line, struct evbuffer *out)
{
	char *save = NULL;
	char *words[5] = { NULL };
	int n = 0;

	for (char *w = strtok_r(line, " \t", &save); w && n < 5; w = strtok_r(NULL, " \t", &save))
		words[n++] = w;
	if (n == 0) {
		evbuffer_add_printf(out, "error: empty request\n");
	} else if (strcmp(words[0], "status") == 0) {
		control_status(out);
	} else if ((strcmp(words[0], "block") == 0 || strcmp(words[0], "allow") == 0) && n >= 2) {
		control_listing(out, words[0][0] == 'b', words[1], words[2], words[3]);
	} else if (strcmp(words[0], "listeners") == 0) {
		evbuffer_add_printf(out, "ok\n");
		listeners_foreach(listener_print, out);
	} else {
		evbuffer_add_printf(out, "error: unknown request \"%s\"\n", words[0]);
	}
}

static void
control_write_cb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && arg != NULL)
		bufferevent_free(bev);
}

static void
control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

/* control_reply_then_close - one request per connection: close once the reply is out. */
static void
control_reply_then_close(struct bufferevent *bev)
{
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, control_write_cb, control_event_cb, bev);
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void
control_reload_wait_free(struct control_reload_wait *w)
{
	daemon_reload_forget(w);
	event_free(w->timer);
	free(w);
}

/* control_reload_done - the outcome of the reload this connection asked for. */
static void
control_reload_done(void *arg, bool ok, const char *text)
{
	struct control_reload_wait *w = arg;
	struct bufferevent *bev = w->bev;

	if (ok)
		evbuffer_add_printf(bufferevent_get_output(bev), "ok\n%s\n", text);
	else
		evbuffer_add_printf(bufferevent_get_output(bev), "error: %s\n", text);
	control_reload_wait_free(w);
	control_reply_then_close(bev);
}

static void
control_reload_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	char text[128];

	snprintf(text, sizeof(text), "no outcome of the reload within %d s (see the daemon's log)", CONTROL_RELOAD_WAIT_S);
	control_reload_done(arg, false, text);
}

static void
control_reload_event_cb(struct bufferevent *bev, short what, void *arg)
{
	control_reload_wait_free(arg);
	bufferevent_free(bev);
}

/* control_reload - ask for a reload; the reply waits for its outcome. */
static void
control_reload(struct bufferevent *bev)
{
	struct control_reload_wait *w = calloc(1, sizeof(*w));
	struct timeval tv = { CONTROL_RELOAD_WAIT_S, 0 };

	if (w == NULL || (w->timer = evtimer_new(mxd->base, control_reload_timeout_cb, w)) == NULL) {
		free(w);
		evbuffer_add_printf(bufferevent_get_output(bev), "error: out of memory\n");
		control_reply_then_close(bev);
		return;
	}
	w->bev = bev;
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, NULL, control_reload_event_cb, w);
	evtimer_add(w->timer, &tv);
	/* In one process the outcome comes at once, inside this call. */
	if (daemon_reload_request(control_reload_done, w) == -1)
		control_reload_done(w, false, "another reload is still waiting for its outcome; try again");
}

static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);

	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			bufferevent_free(bev);
		return;
	}
	if (len <= CONTROL_LINE_MAX && strcmp(line, "reload") == 0) {
		free(line);
		control_reload(bev);
		return;
	}
	if (len <= CONTROL_LINE_MAX)
		control_execute(line, bufferevent_get_output(bev));
	else
		evbuffer_add_printf(bufferevent_get_output(bev), "error: request too long\n");
	free(line);
	control_reply_then_close(bev);
}

static void
control_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(mxd->base, fd, BEV_OPT_CLOSE_ON_FREE);
	struct timeval tv = { CONTROL_TIMEOUT_S, 0 };

	if (bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, control_read_cb, NULL, control_event_cb, NULL);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/*
 * control_request_cb - a request line from the privileged side (the HTTP
 * process's, which the parent has checked): answered as at the socket.
 */
static void
control_request_cb(const void *payload, size_t len)
{
	char line[PRIV_CONTROL_LINE_MAX + 1];
	struct evbuffer *out = evbuffer_new();
	uint32_t id;
	size_t n;

	if (out == NULL)
		return;
	memcpy(&id, payload, sizeof(id));
	n = len - sizeof(id);
	memcpy(line, (const char *)payload + sizeof(id), n);
	line[n] = '\0';
	evbuffer_add(out, &id, sizeof(id));
	if (strlen(line) != n || strpbrk(line, "\r\n"))
		evbuffer_add_printf(out, "error: malformed request\n");
	else
		control_execute(line, out);
	n = evbuffer_get_length(out);
	if (n > PRIV_MSG_MAX)
		n = PRIV_MSG_MAX;	/* a list longer than one message is cut: the HTTP side says so */
	priv_to_privileged(PRIV_MSG_CONTROL_REPLY, evbuffer_pullup(out, (ssize_t)n), n);
	evbuffer_free(out);
}

/* control_start - accept on the socket control_open made, on this process's loop. */
int
control_start(void)
{
	int fd = control_socket_take();

	priv_on(PRIV_MSG_CONTROL, control_request_cb);
	control_status_listen();

	if (fd == -1)
		return 0;
	control_listener = evconnlistener_new(mxd->base, control_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16, fd);
	if (control_listener == NULL) {
		log_warn("control socket %s: %s", control_socket_path(), strerror(errno));
		close(fd);
		return -1;
	}
	log_info("control socket %s", control_socket_path());
	return 0;
}

void
control_stop(void)
{
	if (control_listener) {
		evconnlistener_free(control_listener);
		control_listener = NULL;
	}
	control_socket_close_inherited();
	/* In a split the engine may not remove it: the privileged parent does, after the engine stopped. */
	if (priv_role() == PRIV_ROLE_SINGLE)
		control_socket_unlink();
}
