/*
 * relay.c - the backend leg of an accepted session: connect, announce the
 * real client, EHLO, then one command at a time (the client's pipelined
 * commands are replayed in order, each reply passed back before the next
 * command goes out), and message data streamed with back-pressure.
 */
#include "relay.h"
#include "relay_internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_info.h"
#include "daemon.h"
#include "log.h"
#include "outq.h"
#include "priv.h"
#include "reply_parser.h"
#include "tls.h"

static const char *const relay_state_names[RELAY_STATE_COUNT] = {
	"CONNECTING", "GREETING", "EHLO", "STARTTLS", "TLS_HANDSHAKE", "EHLO_TLS", "XCLIENT", "EHLO_AGAIN", "IDLE", "COMMAND",
	"STREAMING", "QUITTING", "POOLED", "RESET"
};

#define RELAY_QUIT_LINGER_MS 2000

static void relay_read_cb(struct bufferevent *bev, void *arg);
static void relay_write_cb(struct bufferevent *bev, void *arg);
static void relay_event_cb(struct bufferevent *bev, short what, void *arg);
static void relay_timer_cb(evutil_socket_t fd, short what, void *arg);
static void relay_reconnect(struct relay *r, const char *why);

/* relay_drained - all written: a session holding back message data may go on. */
static void
relay_drained(void *arg)
{
	struct relay *r = arg;

	if (r->state == RELAY_STREAMING && r->attached)
		r->owner.drained(r->owner.arg);
}

static void
relay_enter_state(struct relay *r, enum relay_state next)
{
	if (r->attached)
		log_debug("session %010llx: backend %s -> %s", (unsigned long long)r->owner.session_id,
		    relay_state_names[r->state], relay_state_names[next]);
	r->state = next;
}

static void
relay_arm_timer(struct relay *r, int64_t ms)
{
	/* A broken relay keeps its zero timer: it goes on the next pass, whatever was asked of it since. */
	if (r->broken)
		return;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(r->timer, &tv);
}

/* relay_fail - tell the session (which frees us) or, when detached, just go. */
static void
relay_fail(struct relay *r, const char *why)
{
	if (!r->attached) {
		relay_free(r);
		return;
	}
	if (r->reusing) {
		relay_reconnect(r, why);
		return;
	}
	r->owner.failed(r->owner.arg, why);	/* frees r */
}

/*
 * relay_break_soon - the backend misbehaved after a reply that the session
 * has yet to get: the reply still goes to the session (after the dot, a
 * 250 means the backend took the message, and a 451 instead would make the
 * client send it twice), and the connection is dropped on the next loop
 * pass, so whatever the session asks of it next fails as a lost backend.
 */
static void
relay_break_soon(struct relay *r, const char *why)
{
	const struct timeval now = { 0, 0 };

	r->broken = why;
	bufferevent_disable(r->bev, EV_READ);
	evtimer_add(r->timer, &now);
}

const char *
relay_broken(const struct relay *r)
{
	return r->broken;
}

/* relay_send - every command sent expects a fresh reply. */
static void
relay_send(struct relay *r, const char *line, size_t len)
{
	memset(&r->reply, 0, sizeof(r->reply));
	evbuffer_add(bufferevent_get_output(r->bev), line, len);
	if (r->state != RELAY_CONNECTING)
		outq_kick(&r->out);
}

/*
 * relay_socket - -1 lets libevent make the socket, unless the backend must
 * see the client's own address (backend_source = client): then an
 * IP_TRANSPARENT socket bound to it, which needs CAP_NET_ADMIN, so in a
 * privilege split the privileged parent makes it and passes it over. If
 * that fails, *failed is set: the client gets a 4xx rather than a
 * connection from the appliance's own address, which a backend set up for
 * full transparency may trust more than the client.
 */
static evutil_socket_t
relay_socket(const struct relay_owner *o, bool *failed)
{
	int fd;

	*failed = false;
	if (o->config->backend_source != BACKEND_FROM_CLIENT || o->client.family != o->config->backend_addr.family)
		return -1;
	if ((fd = priv_transparent_socket(&o->client)) == -1) {
		log_warn("session %010llx: cannot connect from the client's address: %s", (unsigned long long)o->session_id,
		    strerror(errno));
		*failed = true;
		return -1;
	}
	return fd;
}

/*
 * relay_open - a new connection to the backend for r (CONNECTING); -1 if it
 * cannot even be started.
 */
static int
relay_open(struct relay *r)
{
	const struct config *c = r->owner.config;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct timeval write_timeout = { .tv_sec = c->backend_timeout / 1000, .tv_usec = (c->backend_timeout % 1000) * 1000 };
	bool failed;
	evutil_socket_t fd = relay_socket(&r->owner, &failed);

	if (failed)
		return -1;
	r->bev = bufferevent_socket_new(mxd->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (r->bev == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	r->state = RELAY_CONNECTING;
	r->sessions = 1;
	memset(&r->reply, 0, sizeof(r->reply));	/* a reconnect's greeting is a reply of its own */
	bufferevent_setcb(r->bev, relay_read_cb, relay_write_cb, relay_event_cb, r);
	bufferevent_setwatermark(r->bev, EV_WRITE, RELAY_OUTPUT_LOW, 0);
	bufferevent_setwatermark(r->bev, EV_READ, 0, REPLY_TEXT_MAX * 2);
	/* Output that the backend does not take for backend_timeout is a dead backend. */
	bufferevent_set_timeouts(r->bev, NULL, &write_timeout);
	netaddr_to_sockaddr(&c->backend_addr, c->backend_port, &ss, &sslen);
	if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&ss, (int)sslen) == -1)
		return -1;
	/* EV_WRITE only when a flush could not finish (outq); connecting works without it. */
	bufferevent_enable(r->bev, EV_READ);
	if (outq_init(&r->out, r->bev, relay_drained, r) == -1)
		return -1;
	relay_arm_timer(r, c->backend_connect_timeout);
	return 0;
}

/*
 * relay_reuse - a pooled connection goes on for a new owner: RSET ends
 * whatever the last session left open, and the handshake resumes after
 * EHLO (XCLIENT announces the new client, or the first command goes out).
 */
static void
relay_reuse(struct relay *r, const struct relay_owner *owner)
{
	config_unref(r->owner.config);
	r->owner = *owner;
	r->owner.config = config_ref(owner->config);
	r->attached = true;
	r->reusing = true;
	r->sessions++;
	if (r->tls)
		r->owner.tls_info(r->owner.arg, r->tls_desc);
	relay_send(r, "RSET\r\n", 6);
	relay_enter_state(r, RELAY_RESET);
	relay_arm_timer(r, owner->config->backend_timeout);
}

/*
 * relay_reconnect - a pooled connection failed before its new session's
 * first command went out (the backend timed it out, or refused RSET or
 * XCLIENT): the session loses nothing, it gets a new connection instead.
 */
static void
relay_reconnect(struct relay *r, const char *why)
{
	log_info("session %010llx: pooled backend connection unusable (%s); connecting afresh",
	    (unsigned long long)r->owner.session_id, why);
	mxd->stats.backend_pool_stale++;
	evtimer_del(r->timer);
	outq_free(&r->out);
	bufferevent_free(r->bev);
	r->bev = NULL;
	r->tls = false;
	r->reusing = false;
	r->broken = NULL;
	memset(&r->caps, 0, sizeof(r->caps));
	if (relay_open(r) == -1)
		r->owner.failed(r->owner.arg, "cannot connect");	/* frees r */
}

struct relay *
relay_start(const struct relay_owner *owner, const char *first_command, size_t len)
{
	struct relay *r;

	if (len >= sizeof(r->first_command))
		return NULL;
	if ((r = relay_pool_take(owner->config)) != NULL) {
		memcpy(r->first_command, first_command, len);
		r->first_command_len = len;
		relay_reuse(r, owner);
		return r;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->owner = *owner;
	r->owner.config = config_ref(owner->config);
	r->attached = true;
	memcpy(r->first_command, first_command, len);
	r->first_command_len = len;
	r->timer = evtimer_new(mxd->base, relay_timer_cb, r);
	if (r->timer == NULL || relay_open(r) == -1) {
		relay_free(r);
		return NULL;
	}
	return r;
}

void
relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	relay_pool_unlink(r);
	if (r->timer)
		event_free(r->timer);
	outq_free(&r->out);
	if (r->bev) {
		if (r->tls && r->state == RELAY_QUITTING)
			tls_shutdown(r->bev);
		bufferevent_free(r->bev);
	}
	if (r->owner.config)
		config_unref(r->owner.config);
	free(r);
}

static void
relay_identity(const struct relay *r, struct client_identity *id)
{
	const struct relay_owner *o = &r->owner;

	memset(id, 0, sizeof(*id));
	id->client = o->client;
	id->client_port = o->client_port;
	id->server = o->server;
	id->server_port = o->server_port;
	id->helo = o->helo;
	id->esmtp = o->esmtp;
	if (o->tls_version && o->tls_version[0]) {
		id->tls_version = o->tls_version;
		id->tls_cipher = o->tls_cipher;
	}
}

static void
relay_send_ehlo(struct relay *r, bool as_client)
{
	char line[SMTP_DOMAIN_MAX + 16];
	const char *name = r->owner.config->hostname;
	int n;

	/* After XCLIENT the backend should see the client's own HELO name (a validated token). */
	if (as_client && smtp_helo_token_valid(r->owner.helo))
		name = r->owner.helo;
	n = snprintf(line, sizeof(line), "EHLO %s\r\n", name);
	relay_send(r, line, (size_t)n);
}

/* relay_connected - returns false when the relay failed (and is gone). */
static bool
relay_connected(struct relay *r)
{
	const struct config *c = r->owner.config;
	struct client_identity id;
	int one = 1;
	uint8_t header[256];
	size_t n = 0;

	setsockopt(bufferevent_getfd(r->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	relay_identity(r, &id);
	if (c->backend_client_info == CLIENT_INFO_PROXY_V1)
		n = client_info_proxy_v1((char *)header, sizeof(header), &id);
	else if (c->backend_client_info == CLIENT_INFO_PROXY_V2)
		n = client_info_proxy_v2(header, sizeof(header), &id);
	if (c->backend_client_info == CLIENT_INFO_PROXY_V1 || c->backend_client_info == CLIENT_INFO_PROXY_V2) {
		if (n == 0) {
			relay_fail(r, "cannot encode the PROXY header for this client");
			return false;
		}
		relay_send(r, (const char *)header, n);
	}
	relay_enter_state(r, RELAY_GREETING);
	relay_arm_timer(r, c->backend_timeout);
	outq_kick(&r->out);
	return true;
}

/* relay_ready - handshake done: the session's first command goes out. */
static void
relay_ready(struct relay *r)
{
	r->reusing = false;
	relay_enter_state(r, RELAY_IDLE);
	relay_command(r, r->first_command, r->first_command_len);
}

/* ehlo_offers_starttls - a "250-STARTTLS" / "250 STARTTLS" line after the first. */
static bool
ehlo_offers_starttls(const struct smtp_reply *reply)
{
	const char *p = reply->text, *end = reply->text + reply->len;
	bool first = true;

	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));

		if (eol == NULL)
			eol = end;
		if (!first && eol - p == 12 && strncasecmp(p + 4, "STARTTLS", 8) == 0)
			return true;
		first = false;
		p = eol + 2;
	}
	return false;
}

/* relay_tls_fail - backend_tls could not be honoured: counted apart, then an ordinary relay failure. */
static void
relay_tls_fail(struct relay *r, const char *why)
{
	tls_counters.backend_failures++;
	if (r->attached)
		r->owner.tls_info(r->owner.arg, "failed");
	relay_fail(r, why);
}

/*
 * relay_start_tls - the backend said 220 to STARTTLS: the same socket goes
 * on as a TLS client. Its TLS comes before XCLIENT, so the client's
 * identity and its HELO never cross the wire in plaintext.
 */
static void
relay_start_tls(struct relay *r)
{
	const struct config *c = r->owner.config;
	struct bufferevent *bev;
	SSL *ssl;

	/* Bytes after the 220 were sent before TLS: the same injection as on the client leg. */
	if (evbuffer_get_length(bufferevent_get_input(r->bev)) > 0) {
		relay_tls_fail(r, "sent data after its 220 to STARTTLS");
		return;
	}
	if ((ssl = tls_client_new(c)) == NULL) {
		relay_tls_fail(r, "cannot create a TLS session");
		return;
	}
	bev = tls_upgrade(r->bev, ssl, false);
	r->bev = bev;	/* the plain one is gone either way */
	if (bev == NULL) {
		relay_tls_fail(r, "cannot start TLS on the socket");
		return;
	}
	bufferevent_setcb(bev, relay_read_cb, relay_write_cb, relay_event_cb, r);
	bufferevent_setwatermark(bev, EV_WRITE, RELAY_OUTPUT_LOW, 0);
	bufferevent_setwatermark(bev, EV_READ, 0, REPLY_TEXT_MAX * 2);
	outq_rebind(&r->out, bev);
	bufferevent_enable(bev, EV_READ);
	relay_enter_state(r, RELAY_TLS_HANDSHAKE);
	relay_arm_timer(r, c->tls_handshake_timeout);
}

/* relay_tls_established - TLS is up: the backend forgets the plaintext EHLO, so EHLO again. */
static void
relay_tls_established(struct relay *r)
{
	const struct config *c = r->owner.config;
	struct timeval write_timeout = { .tv_sec = c->backend_timeout / 1000, .tv_usec = (c->backend_timeout % 1000) * 1000 };

	evtimer_del(r->timer);
	r->tls = true;
	bufferevent_disable(r->bev, EV_WRITE);	/* outq enables it per flush */
	tls_counters.backend_handshakes++;
	{
		char info[96];

		tls_describe(r->bev, info, sizeof(info));
		snprintf(r->tls_desc, sizeof(r->tls_desc), "%s", info);
		r->owner.tls_info(r->owner.arg, info);
	}
	bufferevent_set_timeouts(r->bev, NULL, &write_timeout);
	relay_send_ehlo(r, false);
	relay_enter_state(r, RELAY_EHLO_TLS);
	relay_arm_timer(r, c->backend_timeout);
}

/* relay_after_ehlo - EHLO answered (in TLS when asked for): XCLIENT, or the session's first command. */
static void
relay_after_ehlo(struct relay *r)
{
	const struct config *c = r->owner.config;
	struct client_identity id;
	char line[2048];
	size_t n;

	if (c->backend_client_info != CLIENT_INFO_XCLIENT) {
		relay_ready(r);
		return;
	}
	if (!r->caps.xclient) {
		relay_fail(r, "does not offer XCLIENT (backend_client_info = xclient)");
		return;
	}
	relay_identity(r, &id);
	if ((n = client_info_xclient(line, sizeof(line), &id)) == 0) {
		relay_fail(r, "cannot encode XCLIENT");
		return;
	}
	relay_send(r, line, n);
	relay_enter_state(r, RELAY_XCLIENT);
	relay_arm_timer(r, c->backend_timeout);
}

/* relay_handshake_reply - a complete reply during greeting/EHLO/STARTTLS/XCLIENT. */
static void
relay_handshake_reply(struct relay *r)
{
	const struct config *c = r->owner.config;
	const char *first;
	size_t flen = reply_first_line(&r->reply, &first);
	char why[160];

	switch (r->state) {
	case RELAY_GREETING:
	case RELAY_XCLIENT:
		/*
		 * Postfix's smtpd answers XCLIENT with a fresh 220 greeting, as its
		 * XCLIENT_README says; its smtp-sink answers 250. Either is a yes,
		 * and EHLO follows both.
		 */
		if (r->reply.code != 220 && !(r->state == RELAY_XCLIENT && r->reply.code == 250))
			goto refused;
		relay_send_ehlo(r, r->state == RELAY_XCLIENT);
		relay_enter_state(r, r->state == RELAY_XCLIENT ? RELAY_EHLO_AGAIN : RELAY_EHLO);
		break;
	case RELAY_EHLO:
	case RELAY_EHLO_TLS:
	case RELAY_EHLO_AGAIN:
		if (r->reply.code != 250)
			goto refused;
		backend_caps_parse(&r->caps, r->reply.text, r->reply.len);
		mxd->backend_caps = r->caps;	/* the freshest word on what the backend offers */
		if (r->state == RELAY_EHLO_AGAIN) {
			relay_ready(r);
			return;
		}
		if (r->state == RELAY_EHLO && c->backend_tls != BACKEND_TLS_NONE) {
			if (ehlo_offers_starttls(&r->reply)) {
				relay_send(r, "STARTTLS\r\n", 10);
				relay_enter_state(r, RELAY_STARTTLS);
				break;
			}
			if (c->backend_tls == BACKEND_TLS_ENCRYPT) {
				relay_tls_fail(r, "does not offer STARTTLS (backend_tls = encrypt)");
				return;
			}
		}
		relay_after_ehlo(r);
		return;
	case RELAY_RESET:
		if (r->reply.code != 250)
			goto refused;
		relay_after_ehlo(r);
		return;
	case RELAY_STARTTLS:
		if (r->reply.code == 220) {
			relay_start_tls(r);
			return;
		}
		snprintf(why, sizeof(why), "refused STARTTLS: %.*s", (int)(flen > 100 ? 100 : flen), first);
		if (c->backend_tls == BACKEND_TLS_ENCRYPT) {
			relay_tls_fail(r, why);
			return;
		}
		/* may: a 4xx/5xx to STARTTLS leaves the plaintext session as it was. */
		log_info("session %010llx: backend %s; going on without TLS (backend_tls = may)",
		    (unsigned long long)r->owner.session_id, why);
		relay_after_ehlo(r);
		return;
	default:
		break;
	}
	relay_arm_timer(r, c->backend_timeout);
	return;
refused:
	snprintf(why, sizeof(why), "refused in %s: %.*s", relay_state_names[r->state], (int)(flen > 100 ? 100 : flen),
	    first);
	relay_fail(r, why);
}

/* relay_now_us - monotonic microseconds, for the backend reply time. */
static int64_t
relay_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* relay_reply_done - one whole reply is in r->reply. */
static void
relay_reply_done(struct relay *r)
{
	evtimer_del(r->timer);
	if (r->state == RELAY_COMMAND && r->sent_us != 0) {
		stats_backend_reply(&mxd->stats, relay_now_us() - r->sent_us);
		r->sent_us = 0;
	}
	if (r->state == RELAY_QUITTING) {
		relay_free(r);
		return;
	}
	/*
	 * One command, one reply: anything after it was never asked for, and
	 * the replies after it would answer the wrong commands. Only the reply
	 * to end-of-data is kept then: every reply before it came alone, so it
	 * is the backend's own, and a 2xx means the backend took the message.
	 */
	if (evbuffer_get_length(bufferevent_get_input(r->bev)) > 0) {
		if (r->state != RELAY_COMMAND || !r->awaiting_data_end || r->reply.code / 100 != 2) {
			relay_fail(r, "sent data after its reply");
			return;
		}
		relay_break_soon(r, "sent data after its reply");
	}
	if (r->state != RELAY_COMMAND) {
		relay_handshake_reply(r);
		return;
	}
	relay_enter_state(r, r->command_is_data && r->reply.code == 354 ? RELAY_STREAMING : RELAY_IDLE);
	r->owner.reply(r->owner.arg, &r->reply);	/* may free r: nothing after this */
}

static void
relay_read_cb(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	/* The greeting can be read before the connect event is seen: connected all the same. */
	if (r->state == RELAY_CONNECTING && !relay_connected(r))
		return;
	for (;;) {
		char line[REPLY_LINE_MAX + 1];
		struct evbuffer_ptr eol;
		size_t eol_len, n;

		if (r->state != RELAY_GREETING && r->state != RELAY_EHLO && r->state != RELAY_STARTTLS &&
		    r->state != RELAY_EHLO_TLS && r->state != RELAY_XCLIENT && r->state != RELAY_EHLO_AGAIN &&
		    r->state != RELAY_RESET && r->state != RELAY_COMMAND && r->state != RELAY_QUITTING) {
			if (evbuffer_get_length(in) > 0)
				relay_fail(r, "sent data nobody asked for");
			return;
		}
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos == -1) {
			if (evbuffer_get_length(in) > REPLY_LINE_MAX)
				relay_fail(r, "sent an over-long reply line");
			return;
		}
		n = (size_t)eol.pos;
		if (n + 1 > REPLY_LINE_MAX) {
			relay_fail(r, "sent an over-long reply line");
			return;
		}
		evbuffer_remove(in, line, n + 1);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		switch (reply_parser_line(&r->reply, line, n)) {
		case REPLY_MORE:
			continue;
		case REPLY_BAD:
			relay_fail(r, "sent a malformed reply");
			return;
		case REPLY_DONE:
			relay_reply_done(r);
			return;	/* r may be gone; more input is an error caught above next time */
		}
	}
}

static void
relay_write_cb(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);

	if (r->state == RELAY_STREAMING && r->attached)
		r->owner.drained(r->owner.arg);
}

static void
relay_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay *r = arg;
	char why[128];

	if (what & BEV_EVENT_CONNECTED) {
		if (r->state == RELAY_CONNECTING)
			(void)relay_connected(r);
		else if (r->state == RELAY_TLS_HANDSHAKE && r->attached)
			relay_tls_established(r);
		return;
	}
	if (r->state == RELAY_TLS_HANDSHAKE && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		char reason[96];

		tls_error_text(bev, reason, sizeof(reason));
		snprintf(why, sizeof(why), "TLS handshake failed: %s", reason);
		relay_tls_fail(r, why);
		return;
	}
	if (r->state == RELAY_STARTTLS && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		relay_tls_fail(r, "closed the connection at STARTTLS");
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		relay_fail(r, "timed out taking data");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		relay_fail(r, "closed the connection");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();

		snprintf(why, sizeof(why), "connection error in %s: %s", relay_state_names[r->state],
		    err ? evutil_socket_error_to_string(err) : "unknown");
		relay_fail(r, why);
	}
}

static void
relay_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	char why[64];

	if (r->broken) {
		relay_fail(r, r->broken);
		return;
	}
	if (r->state == RELAY_POOLED) {
		/* Idle for backend_pool_idle: out of the pool with a polite QUIT. */
		relay_pool_unlink(r);
		relay_send(r, "QUIT\r\n", 6);
		r->state = RELAY_QUITTING;
		relay_arm_timer(r, RELAY_QUIT_LINGER_MS);
		return;
	}
	snprintf(why, sizeof(why), "timed out in %s", relay_state_names[r->state]);
	if (r->state == RELAY_TLS_HANDSHAKE)
		relay_tls_fail(r, why);
	else
		relay_fail(r, why);
}

void
relay_command(struct relay *r, const char *line, size_t len)
{
	const struct config *c = r->owner.config;

	/* The session sends one command at a time, only to a relay at rest. */
	if (r->state != RELAY_IDLE)
		fatalx("relay_command in state %s", relay_state_names[r->state]);
	r->command_is_data = len == 6 && memcmp(line, "DATA\r\n", 6) == 0;
	r->awaiting_data_end = false;
	if (!r->broken)
		relay_send(r, line, len);
	r->sent_us = relay_now_us();
	relay_enter_state(r, RELAY_COMMAND);
	relay_arm_timer(r, c->backend_timeout);
}

void
relay_data_move(struct relay *r, struct evbuffer *src, size_t len)
{
	evbuffer_remove_buffer(src, bufferevent_get_output(r->bev), len);
	outq_kick(&r->out);
}

void
relay_data_end(struct relay *r)
{
	memset(&r->reply, 0, sizeof(r->reply));
	r->command_is_data = false;
	r->awaiting_data_end = true;
	r->sent_us = relay_now_us();
	relay_enter_state(r, RELAY_COMMAND);
	relay_arm_timer(r, r->owner.config->backend_data_timeout);
}

bool
relay_output_full(const struct relay *r)
{
	return evbuffer_get_length(bufferevent_get_output(r->bev)) > RELAY_OUTPUT_HIGH;
}

void
relay_release(struct relay *r)
{
	if (!relay_pool_park(r))
		relay_quit(r);
}

void
relay_quit(struct relay *r)
{
	/* Only a backend at rest gets a polite QUIT; anything mid-way is cut. */
	if (r->state != RELAY_IDLE) {
		relay_free(r);
		return;
	}
	r->attached = false;
	relay_send(r, "QUIT\r\n", 6);
	r->state = RELAY_QUITTING;
	relay_arm_timer(r, RELAY_QUIT_LINGER_MS);
}
