/*
 * health.c - the periodic backend probe: connect, read the greeting, EHLO,
 * QUIT. It keeps mxd->backend_up (the backend-down state the tier rules
 * read) and the backend's EHLO capabilities, which decide what mxtierd
 * may advertise to clients.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_info.h"
#include "daemon.h"
#include "log.h"
#include "relay.h"
#include "reply_parser.h"

enum probe_state {
	PROBE_IDLE = 0,
	PROBE_CONNECTING,
	PROBE_GREETING,
	PROBE_EHLO,
	PROBE_QUIT
};

#define PROBE_FAILURES_FOR_DOWN	2
#define PROBE_TIMEOUT_MAX_MS	10000

static struct {
	struct event		*interval_timer;
	struct event		*timeout_timer;
	struct bufferevent	*bev;
	enum probe_state	 state;
	struct smtp_reply	 reply;
	unsigned		 failures;
} probe;

static void probe_schedule(void);
static void probe_connected(struct bufferevent *bev);

void
backend_caps_parse(struct backend_caps *caps, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	bool first = true;

	memset(caps, 0, sizeof(*caps));
	caps->known = true;
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		const char *kw = p + 4;
		size_t kwlen;

		if (eol == NULL)
			eol = end;
		if (first || eol - p < 4) {
			first = false;
			p = eol + 2;
			continue;
		}
		kwlen = (size_t)(eol - kw);
#define KEYWORD(k) (kwlen >= sizeof(k) - 1 && strncasecmp(kw, k, sizeof(k) - 1) == 0 && \
		    (kwlen == sizeof(k) - 1 || kw[sizeof(k) - 1] == ' '))
		if (KEYWORD("PIPELINING"))
			caps->pipelining = true;
		else if (KEYWORD("8BITMIME"))
			caps->eightbitmime = true;
		else if (KEYWORD("ENHANCEDSTATUSCODES"))
			caps->enhanced_codes = true;
		else if (KEYWORD("XCLIENT"))
			caps->xclient = true;
		else if (KEYWORD("SIZE") && kwlen > 5)
			caps->size_limit = strtoull(kw + 5, NULL, 10);
#undef KEYWORD
		p = eol + 2;
	}
}

static void
probe_close(void)
{
	if (probe.bev) {
		bufferevent_free(probe.bev);
		probe.bev = NULL;
	}
	evtimer_del(probe.timeout_timer);
	probe.state = PROBE_IDLE;
}

static void
probe_result(bool ok, const char *why)
{
	probe_close();
	if (ok) {
		if (!mxd->backend_up)
			log_info("backend up: probe succeeded");
		mxd->backend_up = true;
		probe.failures = 0;
	} else {
		mxd->stats.backend_probe_failures++;
		probe.failures++;
		/* Connections kept from before may be as dead as the one the probe just tried. */
		relay_pool_flush("the backend probe failed");
		log_debug("backend probe failed: %s", why);
		if (mxd->backend_up && probe.failures >= PROBE_FAILURES_FOR_DOWN) {
			log_warn("backend down: %u probes failed, last: %s", probe.failures, why);
			mxd->backend_up = false;
		}
	}
	probe_schedule();
}

static void
probe_send(const char *line)
{
	memset(&probe.reply, 0, sizeof(probe.reply));
	evbuffer_add(bufferevent_get_output(probe.bev), line, strlen(line));
}

static void
probe_reply_done(void)
{
	char line[300];

	switch (probe.state) {
	case PROBE_GREETING:
		if (probe.reply.code != 220) {
			probe_result(false, "greeting not 220");
			return;
		}
		snprintf(line, sizeof(line), "EHLO %s\r\n", mxd->config->hostname);
		probe_send(line);
		probe.state = PROBE_EHLO;
		return;
	case PROBE_EHLO:
		if (probe.reply.code != 250) {
			probe_result(false, "EHLO not 250");
			return;
		}
		backend_caps_parse(&mxd->backend_caps, probe.reply.text, probe.reply.len);
		probe_send("QUIT\r\n");
		probe.state = PROBE_QUIT;
		return;
	case PROBE_QUIT:
		probe_result(true, NULL);
		return;
	default:
		probe_result(false, "unexpected reply");
		return;
	}
}

static void
probe_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[REPLY_LINE_MAX + 1];

	/* The greeting may be read before the connect event is seen. */
	if (probe.state == PROBE_CONNECTING)
		probe_connected(bev);
	for (;;) {
		size_t eol_len, n;
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);

		if (eol.pos == -1) {
			if (evbuffer_get_length(in) > REPLY_LINE_MAX)
				probe_result(false, "over-long reply line");
			return;
		}
		n = (size_t)eol.pos;
		if (n + 1 > REPLY_LINE_MAX) {
			probe_result(false, "over-long reply line");
			return;
		}
		evbuffer_remove(in, line, n + 1);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		switch (reply_parser_line(&probe.reply, line, n)) {
		case REPLY_MORE:
			continue;
		case REPLY_BAD:
			probe_result(false, "malformed reply");
			return;
		case REPLY_DONE:
			probe_reply_done();
			if (probe.state == PROBE_IDLE)
				return;
			continue;
		}
	}
}

/* probe_connected - a backend expecting a PROXY header gets one that says "no client": the probe itself. */
static void
probe_connected(struct bufferevent *bev)
{
	static const char proxy_v2_local[16] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
	    0x54, 0x0a, 0x20, 0x00, 0x00, 0x00 };

	/* Each probe parses fresh replies: the last probe's 221 must not linger. */
	memset(&probe.reply, 0, sizeof(probe.reply));
	if (mxd->config->backend_client_info == CLIENT_INFO_PROXY_V1)
		evbuffer_add(bufferevent_get_output(bev), "PROXY UNKNOWN\r\n", 15);
	else if (mxd->config->backend_client_info == CLIENT_INFO_PROXY_V2)
		evbuffer_add(bufferevent_get_output(bev), proxy_v2_local, sizeof(proxy_v2_local));
	probe.state = PROBE_GREETING;
}

static void
probe_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & BEV_EVENT_CONNECTED) {
		if (probe.state == PROBE_CONNECTING)
			probe_connected(bev);
		return;
	}
	if (probe.state == PROBE_QUIT && (what & BEV_EVENT_EOF)) {
		probe_result(true, NULL);
		return;
	}
	probe_result(false, (what & BEV_EVENT_EOF) ? "connection closed" : "connection error");
}

static void
probe_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	probe_result(false, "timeout");
}

static void
probe_start(evutil_socket_t fd, short what, void *arg)
{
	const struct config *c = mxd->config;
	struct sockaddr_storage ss;
	socklen_t sslen;
	int64_t timeout = c->backend_connect_timeout < PROBE_TIMEOUT_MAX_MS ? c->backend_connect_timeout :
	    PROBE_TIMEOUT_MAX_MS;
	struct timeval tv = { .tv_sec = timeout / 1000, .tv_usec = (timeout % 1000) * 1000 };

	probe_close();
	probe.bev = bufferevent_socket_new(mxd->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (probe.bev == NULL) {
		probe_result(false, "no memory");
		return;
	}
	bufferevent_setcb(probe.bev, probe_read_cb, NULL, probe_event_cb, NULL);
	bufferevent_setwatermark(probe.bev, EV_READ, 0, REPLY_TEXT_MAX * 2);
	netaddr_to_sockaddr(&c->backend_addr, c->backend_port, &ss, &sslen);
	probe.state = PROBE_CONNECTING;
	evtimer_add(probe.timeout_timer, &tv);
	if (bufferevent_socket_connect(probe.bev, (struct sockaddr *)&ss, (int)sslen) == -1) {
		probe_result(false, "connect failed");
		return;
	}
	bufferevent_enable(probe.bev, EV_READ | EV_WRITE);
}

static void
probe_schedule(void)
{
	int64_t ms = mxd->config->backend_probe_interval;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(probe.interval_timer, &tv);
}

int
health_start(void)
{
	probe.interval_timer = evtimer_new(mxd->base, probe_start, NULL);
	probe.timeout_timer = evtimer_new(mxd->base, probe_timeout_cb, NULL);
	if (probe.interval_timer == NULL || probe.timeout_timer == NULL)
		return -1;
	/* Assume up until told otherwise, and ask at once. */
	mxd->backend_up = true;
	probe_start(-1, 0, NULL);
	return 0;
}

void
health_stop(void)
{
	probe_close();
	if (probe.interval_timer)
		event_free(probe.interval_timer);
	if (probe.timeout_timer)
		event_free(probe.timeout_timer);
	probe.interval_timer = probe.timeout_timer = NULL;
}
