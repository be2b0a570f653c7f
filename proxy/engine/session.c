/*
 * session.c - one client connection: lifecycle, I/O, timers, the command
 * line reader and the summary log line. Commands are in session_cmd.c,
 * message data in session_data.c, the backend leg in relay.c.
 */
#include "session.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_table.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "relay.h"
#include "session_record.h"
#include "tls.h"

static TAILQ_HEAD(session_list, session) all_sessions = TAILQ_HEAD_INITIALIZER(all_sessions);

static const char *const session_state_names[SESSION_STATE_COUNT] = {
	"RESOLVING", "GREETING", "STARTTLS", "HELO", "READY", "MAIL", "RCPT", "DATA", "CLOSING"
};

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_write_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);
static void session_timer_cb(evutil_socket_t fd, short what, void *arg);
static void session_drained(void *arg);
static void session_tls_begin(struct session *s);
static void session_tls_established(struct session *s);
static void session_eof_settle(struct session *s);
static void session_client_eof(struct session *s);

const char *
session_state_name(enum session_state st)
{
	return (unsigned)st < SESSION_STATE_COUNT ? session_state_names[st] : "?";
}

/* session_enter_state - the one place states change, traced with -v. */
void
session_enter_state(struct session *s, enum session_state next)
{
	if (s->state == next)
		return;
	log_debug("session %010llx: %s -> %s", (unsigned long long)s->id, session_state_name(s->state),
	    session_state_name(next));
	s->state = next;
}

void
session_add_reason(struct session *s, enum reason r)
{
	if (!(s->reasons & (UINT64_C(1) << r)))
		mxd->stats.reasons[r]++;
	s->reasons |= UINT64_C(1) << r;
}

void
session_set_verdict(struct session *s, enum verdict v, enum reason r)
{
	s->verdict = v;
	if (r < REASON_COUNT)
		session_add_reason(s, r);
}

/* session_arm_timer - fire after ms, or at the session deadline if sooner. */
void
session_arm_timer(struct session *s, int64_t ms)
{
	int64_t left = s->deadline_ms - now_ms();
	struct timeval tv;

	/* Clamped to the deadline: one millisecond past it, since the timer may
	 * fire within a millisecond early and the callback must see the deadline. */
	if (left < ms)
		ms = left > 0 ? left + 1 : 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(s->timer, &tv);
}

void
session_arm_command_timer(struct session *s)
{
	session_arm_timer(s, s->config->command_timeout);
}

void
session_reply_raw(struct session *s, const char *text, size_t len)
{
	if (s->state == SESSION_CLOSING)
		return;
	evbuffer_add(bufferevent_get_output(s->bev), text, len);
	outq_kick(&s->out);
}

void
session_reply(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	if (s->state == SESSION_CLOSING)
		return;
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	outq_kick(&s->out);
}

/* session_close - queue a last reply, stop reading; freed once it is written. */
void
session_close(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	if (s->state == SESSION_CLOSING)
		return;
	/* Between the 220 to STARTTLS and the end of the handshake a plaintext reply means nothing. */
	if (s->state == SESSION_STARTTLS)
		fmt = NULL;
	if (fmt) {
		va_start(ap, fmt);
		evbuffer_add_vprintf(out, fmt, ap);
		va_end(ap);
		evbuffer_add(out, "\r\n", 2);
	}
	session_enter_state(s, SESSION_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	client_dns_abandon(s);
	outq_kick(&s->out);
	if (s->relay) {
		relay_release(s->relay);
		s->relay = NULL;
	}
	/*
	 * Freed from the write callback once the reply is out, or from the
	 * timer: at once when nothing is queued, after a bounded linger when
	 * the client does not read. Never here, so callers may go on.
	 */
	evtimer_del(s->timer);
	session_arm_timer(s, evbuffer_get_length(out) == 0 ? 0 : SESSION_CLOSE_LINGER_MS);
}

/* session_error - count a client error; true when the limit closed the session. */
bool
session_error(struct session *s)
{
	if (++s->errors < (unsigned)s->config->max_errors)
		return false;
	session_add_reason(s, REASON_TOO_MANY_ERRORS);
	session_close(s, "421 4.7.0 %s Too many errors, closing connection", s->config->hostname);
	return true;
}

void
session_pause_read(struct session *s, bool pause)
{
	s->read_paused = pause;
	if (pause) {
		/* While the backend leg is full, its write timeout is the one that counts. */
		bufferevent_disable(s->bev, EV_READ);
		evtimer_del(s->timer);
	} else if (s->state != SESSION_CLOSING) {
		/* After the client's EOF there is nothing more to read: its buffered input still runs. */
		if (!s->client_eof)
			bufferevent_enable(s->bev, EV_READ);
		session_arm_timer(s, s->state == SESSION_DATA ? s->config->data_timeout : s->config->command_timeout);
		if (s->tls && !s->client_eof)
			tls_kick_read(s->bev);
	}
}

void
session_reset_transaction(struct session *s)
{
	memset(&s->mail_from, 0, sizeof(s->mail_from));
	memset(&s->mail_params, 0, sizeof(s->mail_params));
	s->rcpt_attempts = 0;
	s->rcpt_accepted = 0;
	s->data_failed = false;
	if (s->state == SESSION_MAIL || s->state == SESSION_RCPT || s->state == SESSION_DATA)
		session_enter_state(s, SESSION_READY);
}

/* session_record_make - what the session was, once, for the log line, its database row and the counters. */
static void
session_record_make(const struct session *s, struct session_record *r)
{
	memset(r, 0, sizeof(*r));
	r->id = s->id;
	r->tier = s->tier;
	r->client = s->client;
	r->client_text = s->client_text;
	r->client_port = s->client_port;
	r->tls = s->tls_info;
	r->rdns = s->dns.ptr_name;
	r->fcrdns = s->dns.fcrdns;
	r->rdns_domain = s->dns.domain;
	r->dnsbl_score = s->dns.dnsbl_score;
	r->helo = s->helo;
	r->mail_from = s->log_from;
	r->first_rcpt = s->first_rcpt;
	r->rcpts = s->rcpt_total;
	r->messages = s->messages;
	r->bytes = s->bytes;
	r->verdict = s->verdict;
	r->reasons = s->reasons;
	reasons_format(r->reason_list, sizeof(r->reason_list), s->reasons);
	r->duration_ms = now_ms() - s->started_ms;
	r->backend_tls = s->backend_tls_info;
	r->backend_reply = s->backend_reply;
}

void
session_free(struct session *s)
{
	struct session_record record;

	if (s == NULL)
		return;
	session_record_make(s, &record);
	session_record_log(&record);
	db_record_session(&record);
	stats_session_end(&mxd->stats, &record);
	client_dns_abandon(s);
	if (s->relay)
		relay_free(s->relay);
	if (s->timer)
		event_free(s->timer);
	outq_free(&s->out);
	if (s->bev) {
		/* A close we decided on ends TLS with close_notify; a peer that went needs none. */
		if (s->tls && s->state == SESSION_CLOSING)
			tls_shutdown(s->bev);
		bufferevent_free(s->bev);
	}
	if (s->counted)
		client_table_remove(mxd->clients, &s->client_key);
	TAILQ_REMOVE(&all_sessions, s, entry);
	mxd->active_sessions--;
	config_unref(s->config);
	free(s);
}

/*
 * session_stutter - spamd's tarpit: a suspect's refusal leaves one byte per
 * tarpit_delay, costing a bot's connection slot time while costing us one
 * timer. Bounded: tarpit_delay is at most 1 s and the line is short.
 */
static void
session_stutter(struct session *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->stutter, sizeof(s->stutter) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(s->stutter) - 3)
		n = (int)sizeof(s->stutter) - 3;
	memcpy(s->stutter + n, "\r\n", 2);
	s->stutter_len = (size_t)n + 2;
	s->stutter_sent = 0;
	session_enter_state(s, SESSION_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	evtimer_del(s->timer);
	session_arm_timer(s, 0);
}

static bool
has_reason(const struct session *s, enum reason r)
{
	return (s->reasons & (UINT64_C(1) << r)) != 0;
}

/* session_refuse - answer the greeting with the refusal the verdict chose, then close. */
static void
session_refuse(struct session *s)
{
	bool tarpit_able;
	const char *text = session_policy_refusal(s, &tarpit_able);

	/* The format is one of verdict.c's refusal texts: host name, then client address. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	if (tarpit_able && s->config->tarpit_delay > 0)
		session_stutter(s, text, s->config->hostname, s->client_text);
	else
		session_close(s, text, s->config->hostname, s->client_text);
#pragma GCC diagnostic pop
}

/* session_finish_banner - the last banner line; whatever the client sent before it was pregreet. */
static void
session_finish_banner(struct session *s)
{
	s->obs.pregreet_bytes += evbuffer_get_length(bufferevent_get_input(s->bev));
	session_reply(s, "220 %s ESMTP mxtier", s->config->hostname);
	session_enter_state(s, SESSION_HELO);
	session_arm_command_timer(s);
	session_process_input(s);
}

/* session_start_banner - the greeting verdict let the client in: banner, with the pregreet wait. */
static void
session_start_banner(struct session *s, bool fast)
{
	const struct config *c = s->config;

	if (fast || c->greet_wait == 0) {
		session_finish_banner(s);
		return;
	}
	/* Multi-line banner: a client that talks before the last line is a pregreet client. */
	session_reply(s, "220-%s ESMTP mxtier", c->hostname);
	session_enter_state(s, SESSION_GREETING);
	session_arm_timer(s, c->greet_wait);
}

/* session_greet - act on a greeting verdict; false when it is undecided (ACTION_CONTINUE). */
static bool
session_greet(struct session *s, enum verdict_action action)
{
	switch (action) {
	case ACTION_TEMPFAIL:
	case ACTION_REJECT:
		session_refuse(s);
		return true;
	case ACTION_RELAY:
		/* Only the operator's own networks skip the pregreet wait: trust earned by behaviour does not. */
		session_start_banner(s, has_reason(s, REASON_ALLOWLIST));
		return true;
	case ACTION_CONTINUE:
		break;
	}
	return false;
}

/* session_dns_done - DNS answered (or dns_timeout passed): the greeting verdict. */
void
session_dns_done(struct session *s)
{
	/* A session closed while it was resolving (shutdown, deadline) must not come back to life. */
	if (s->state != SESSION_RESOLVING)
		return;
	evtimer_del(s->timer);
	if (!session_greet(s, session_policy_greeting(s)))
		session_start_banner(s, false);
}

void
session_accept(int fd, const struct sockaddr *peer, enum tier_role tier)
{
	struct config *c = mxd->config;
	struct session *s;
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	int one = 1;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		close(fd);
		return;
	}
	s->id = mxd->next_session_id++;
	s->config = config_ref(c);
	s->tier = tier;
	s->verdict = VERDICT_NONE;
	s->state = SESSION_RESOLVING;
	s->pending_command = CMD_NONE;
	s->started_ms = now_ms();
	s->deadline_ms = s->started_ms + c->session_timeout;
	netaddr_from_sockaddr(peer, &s->client, &s->client_port);
	netaddr_normalize(&s->client);
	netaddr_format(&s->client, s->client_text, sizeof(s->client_text));
	netaddr_client_key(&s->client, &s->client_key);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
		netaddr_from_sockaddr((struct sockaddr *)&local, &s->server, &s->server_port);
		netaddr_normalize(&s->server);
	}
	TAILQ_INSERT_TAIL(&all_sessions, s, entry);
	mxd->active_sessions++;
	mxd->stats.sessions++;

	/* Small replies must leave at once: no Nagle delay on the client leg. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->bev = bufferevent_socket_new(mxd->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(mxd->base, session_timer_cb, s);
	if (s->bev == NULL || s->timer == NULL) {
		if (s->bev == NULL)
			close(fd);
		session_free(s);
		return;
	}
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_INPUT_HIGH);
	/* EV_WRITE only when a flush could not finish (outq). */
	bufferevent_enable(s->bev, EV_READ);
	if (outq_init(&s->out, s->bev, session_drained, s) == -1) {
		session_free(s);
		return;
	}

	s->counted = true;
	if (mxd->active_sessions > (size_t)c->max_sessions) {
		session_set_verdict(s, VERDICT_TEMPFAIL, REASON_TOO_MANY_SESSIONS);
		session_refuse(s);
		client_table_add(mxd->clients, &s->client_key);
		return;
	}
	/*
	 * The site's own relays and partners (allow_networks) are exempt from the
	 * per-client limit, as Postfix exempts mynetworks: they legitimately open
	 * many parallel sessions. max_sessions still bounds them.
	 */
	if (client_table_add(mxd->clients, &s->client_key) > (size_t)c->max_sessions_per_client &&
	    !cidr_list_contains(&c->allow_networks, &s->client)) {
		session_set_verdict(s, VERDICT_TEMPFAIL, REASON_TOO_MANY_CLIENT_SESSIONS);
		session_refuse(s);
		return;
	}

	/* Trusted clients are fast-tracked here: no DNS, no greet wait. */
	if (session_greet(s, session_policy_connect(s)))
		return;
	/* Nothing is sent until DNS has answered: a 421 must be the whole greeting, not "220-" then "421". */
	session_enter_state(s, SESSION_RESOLVING);
	client_dns_start(s);
	if (s->dns.done) {
		session_dns_done(s);
		return;
	}
	session_arm_timer(s, c->dns_timeout + DNS_GRACE_MS);
}

/*
 * session_read_line - take one command line out of the input. Returns 1
 * with a NUL-terminated line (CR/LF stripped), 0 when no whole line yet,
 * -1 when a line was refused (already answered).
 */
static int
session_read_line(struct session *s, char *line, size_t *len)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr eol;
	size_t eol_len, n;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos == -1) {
		n = evbuffer_get_length(in);
		if (n < SMTP_COMMAND_LINE_MAX)
			return 0;
		/* No line end within the limit: refuse it whole, never truncate and run it. */
		evbuffer_drain(in, n);
		if (s->discarding_line)
			return 0;
		s->discarding_line = true;
		session_reply(s, "500 5.5.2 Line too long (limit %d octets)", SMTP_COMMAND_LINE_MAX);
		return -1;
	}
	n = (size_t)eol.pos;
	if (s->discarding_line || n + 1 > SMTP_COMMAND_LINE_MAX) {
		evbuffer_drain(in, n + 1);
		if (s->discarding_line) {
			s->discarding_line = false;
			return -2;	/* the tail of a line already answered */
		}
		session_reply(s, "500 5.5.2 Line too long (limit %d octets)", SMTP_COMMAND_LINE_MAX);
		return -1;
	}
	evbuffer_remove(in, line, n + 1);
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	if (memchr(line, '\r', n) || memchr(line, '\0', n)) {
		session_reply(s, "500 5.5.2 Bad character in command");
		return -1;
	}
	*len = n;
	return 1;
}

void
session_process_input(struct session *s)
{
	char line[SMTP_COMMAND_LINE_MAX + 1];
	size_t len;

	if (s->processing)
		return;
	s->processing = true;
	while (s->state != SESSION_CLOSING && s->state != SESSION_GREETING && s->state != SESSION_RESOLVING &&
	    s->state != SESSION_STARTTLS && !s->waiting_backend &&
	    !s->read_paused) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		int rc;

		/* A client that does not read its replies gets no more work done. */
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SESSION_OUTPUT_HIGH)
			break;
		if (s->state == SESSION_DATA) {
			enum session_state before = s->state;

			session_data_input(s);
			if (s->state == before)
				break;
			continue;
		}
		if (s->skip_octets > 0) {
			size_t have = evbuffer_get_length(in);
			size_t take = have < s->skip_octets ? have : (size_t)s->skip_octets;

			evbuffer_drain(in, take);
			s->skip_octets -= take;
			if (s->skip_octets > 0)
				break;
			continue;
		}
		rc = session_read_line(s, line, &len);
		if (rc == 0)
			break;
		if (rc == -2)
			continue;
		if (rc == -1) {
			if (session_error(s))
				break;
			continue;
		}
		session_execute_command(s, line, len, evbuffer_get_length(in) > 0);
		if (s->state != SESSION_CLOSING && !s->waiting_backend && s->state != SESSION_DATA &&
		    s->state != SESSION_STARTTLS)
			session_arm_command_timer(s);
	}
	s->processing = false;
	if (s->client_eof) {
		session_eof_settle(s);
		return;
	}
	/* Input taken below the high-water mark: what OpenSSL still holds must not wait for the socket. */
	if (s->tls && s->state != SESSION_CLOSING)
		tls_kick_read(s->bev);
}

/*
 * session_eof_settle - the client half-closed (RFC 5321 lets it send QUIT
 * and shut down its side; Exim pipelines ".", QUIT and FIN in one
 * segment). Every reply it is owed is still written: the session waits for
 * the backend's answer to a command in flight and for the commands still
 * buffered, and closes once nothing more can come of the input. Message
 * data cut off by the EOF never reaches end-of-data at the backend: the
 * backend leg is dropped without it, so nothing is delivered or answered 250.
 */
static void
session_eof_settle(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	if (s->state == SESSION_CLOSING || s->processing)
		return;
	/* A reply is owed for what the backend has: session_backend_reply or _failed comes back here. */
	if (s->waiting_backend || s->read_paused)
		return;
	/* Commands held back until the client reads its replies: session_drained comes back here. */
	if (evbuffer_get_length(in) > 0 && s->state >= SESSION_HELO && s->state != SESSION_DATA &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) > SESSION_OUTPUT_HIGH)
		return;
	if (s->state == SESSION_DATA) {
		if (s->relay) {
			relay_free(s->relay);
			s->relay = NULL;
		}
		s->bytes += s->data.bytes;
		log_info("session %010llx: client closed its side inside message data after %llu bytes; message not accepted",
		    (unsigned long long)s->id, (unsigned long long)s->data.bytes);
	} else if (evbuffer_get_length(in) > 0) {
		log_debug("session %010llx: %zu bytes of an unfinished command line at the client's EOF",
		    (unsigned long long)s->id, evbuffer_get_length(in));
	}
	session_close(s, NULL);
}

/*
 * session_read_more - libevent reads at most 4 KiB per event; message data
 * comes in bulk, so take what the socket already holds (up to the input
 * bound) in one recv. Fewer wake-ups, larger writes to the backend.
 */
static void
session_read_more(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t have = evbuffer_get_length(in);
	struct evbuffer_iovec vec[2];
	int nvec;
	ssize_t n;

	if (have >= SESSION_INPUT_HIGH)
		return;
	nvec = evbuffer_reserve_space(in, (ev_ssize_t)(SESSION_INPUT_HIGH - have), vec, 2);
	if (nvec <= 0)
		return;
	n = recv(bufferevent_getfd(s->bev), vec[0].iov_base, vec[0].iov_len, MSG_DONTWAIT);
	if (n <= 0) {
		/* Nothing more, or EOF/error: libevent's own read reports those. */
		evbuffer_commit_space(in, vec, 0);
		return;
	}
	vec[0].iov_len = (size_t)n;
	evbuffer_commit_space(in, vec, 1);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_GREETING || s->state == SESSION_RESOLVING || s->state == SESSION_STARTTLS) {
		/* Talking before the banner ends: remember it, answer nothing yet. */
		return;
	}
	/* The bulk read takes bytes off the socket: under TLS they are OpenSSL's. */
	if (s->state == SESSION_DATA && !s->tls)
		session_read_more(s);
	session_process_input(s);
}

/* session_drained - everything queued was written: a closing session is done. */
static void
session_drained(void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_CLOSING) {
		if (s->stutter_sent == s->stutter_len)
			session_free(s);
		return;
	}
	/* The 220 to STARTTLS has left in plaintext: TLS takes the socket now. */
	if (s->state == SESSION_STARTTLS) {
		if (!s->tls_handshaking)
			session_tls_begin(s);
		return;
	}
	/* Commands held back while replies piled up may run now. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
		session_process_input(s);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	/* libevent finished what a flush could not: back to flushing ourselves. */
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);

	if (s->state == SESSION_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && s->stutter_sent == s->stutter_len)
			session_free(s);
		return;
	}
	if (s->state == SESSION_STARTTLS) {
		if (!s->tls_handshaking && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			session_tls_begin(s);
		return;
	}
	/* Output drained: commands held back for a non-reading client may run now. */
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		session_process_input(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	char why[160];

	if ((what & BEV_EVENT_CONNECTED) && s->tls_handshaking) {
		/* Closed (shutdown) while the handshake ran: the close stands, its timer frees s. */
		if (s->state != SESSION_CLOSING)
			session_tls_established(s);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !s->tls_handshaking &&
	    s->state != SESSION_STARTTLS) {
		session_client_eof(s);
		return;
	}
	if (s->tls_handshaking) {
		tls_error_text(bev, why, sizeof(why));
		tls_counters.handshake_failures++;
		snprintf(s->tls_info, sizeof(s->tls_info), "failed");
		log_info("session %010llx: TLS handshake failed: %s", (unsigned long long)s->id, why);
	} else if (s->tls && (what & BEV_EVENT_ERROR)) {
		/* A close without close_notify is an EOF (SSL_OP_IGNORE_UNEXPECTED_EOF): this is worse. */
		tls_error_text(bev, why, sizeof(why));
		tls_counters.errors++;
		log_info("session %010llx: TLS error: %s", (unsigned long long)s->id, why);
	} else if (what & BEV_EVENT_ERROR) {
		log_debug("session %010llx: %s", (unsigned long long)s->id, strerror(errno));
	}
	session_free(s);
}

/* session_client_eof - a read EOF is not the end of the session: see session_eof_settle. */
static void
session_client_eof(struct session *s)
{
	if (s->client_eof)
		return;
	s->client_eof = true;
	bufferevent_disable(s->bev, EV_READ);
	log_debug("session %010llx: client EOF in %s", (unsigned long long)s->id, session_state_name(s->state));
	/* Closing already: the last reply drains or the linger timer frees the session. */
	if (s->state == SESSION_CLOSING)
		return;
	/* Nothing was answered yet (no banner): nothing is owed. */
	if (s->state == SESSION_RESOLVING || s->state == SESSION_GREETING) {
		session_close(s, NULL);
		return;
	}
	session_process_input(s);
}

static void
session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	const char *host = s->config->hostname;

	if (s->state == SESSION_STARTTLS) {
		/* No reply can be sent mid-handshake: the connection just ends. */
		tls_counters.handshake_timeouts++;
		snprintf(s->tls_info, sizeof(s->tls_info), "timeout");
		session_add_reason(s, REASON_TIMEOUT);
		log_info("session %010llx: TLS handshake timed out (%s)", (unsigned long long)s->id,
		    s->tls_handshaking ? "handshake incomplete" : "220 to STARTTLS not taken");
		session_free(s);
		return;
	}
	if (s->state == SESSION_CLOSING && s->stutter_sent < s->stutter_len) {
		struct timeval tv = { s->config->tarpit_delay / 1000, (s->config->tarpit_delay % 1000) * 1000 };

		evbuffer_add(bufferevent_get_output(s->bev), s->stutter + s->stutter_sent++, 1);
		outq_kick(&s->out);
		if (s->stutter_sent < s->stutter_len)
			evtimer_add(s->timer, &tv);
		else
			session_arm_timer(s, SESSION_CLOSE_LINGER_MS);
		return;
	}
	if (s->state == SESSION_CLOSING) {
		session_free(s);
		return;
	}
	if (now_ms() >= s->deadline_ms) {
		session_add_reason(s, REASON_TIMEOUT);
		session_close(s, "421 4.4.2 %s Session time limit exceeded, closing connection", host);
		return;
	}
	if (s->state == SESSION_GREETING) {
		session_finish_banner(s);
		return;
	}
	if (s->state == SESSION_RESOLVING) {
		/* dns_timeout is over: what did not answer is unknown, never clean. */
		for (int i = 2; i < SESSION_DNS_SLOTS; i++)
			if (s->dns.slots[i].request)
				s->dns.dnsbl_unknown = true;
		client_dns_abandon(s);
		s->dns.done = true;
		session_dns_done(s);
		return;
	}
	session_add_reason(s, REASON_TIMEOUT);
	session_close(s, "421 4.4.2 %s Timeout, closing connection", host);
}

/*
 * session_starttls - STARTTLS was accepted. Whatever the client sent after
 * the command line is plaintext that must never be executed once TLS is up
 * (CVE-2011-0411): it is dropped with its buffer, counted and logged, the
 * way Postfix does. Reading stops until the 220 has left in plaintext; the
 * TLS bufferevent then takes over the socket (session_tls_begin).
 */
void
session_starttls(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t pipelined = evbuffer_get_length(in);

	if (pipelined > 0) {
		evbuffer_drain(in, pipelined);
		tls_counters.discarded_sessions++;
		tls_counters.discarded_bytes += pipelined;
		log_warn("session %010llx: %zu bytes pipelined after STARTTLS discarded", (unsigned long long)s->id,
		    pipelined);
	}
	s->discarding_line = false;
	/* A backend leg opened in plaintext was announced without TLS: the next MAIL opens a new one. */
	if (s->relay) {
		relay_quit(s->relay);
		s->relay = NULL;
	}
	bufferevent_disable(s->bev, EV_READ);
	session_reply(s, "220 2.0.0 Ready to start TLS");
	session_enter_state(s, SESSION_STARTTLS);
	evtimer_del(s->timer);
	session_arm_timer(s, s->config->tls_handshake_timeout);
}

/* session_tls_begin - the 220 is out: the same socket continues as a TLS server. May free s. */
static void
session_tls_begin(struct session *s)
{
	SSL *ssl = tls_server_new(s->config);
	struct bufferevent *bev;

	if (ssl == NULL) {
		bev = NULL;
	} else {
		bev = tls_upgrade(s->bev, ssl, true);
		s->bev = bev;	/* the plain one is gone either way */
	}
	if (bev == NULL) {
		tls_counters.handshake_failures++;
		snprintf(s->tls_info, sizeof(s->tls_info), "failed");
		log_warn("session %010llx: cannot start TLS: %s", (unsigned long long)s->id,
		    ssl == NULL ? "no TLS context" : strerror(errno));
		session_free(s);
		return;
	}
	s->tls_handshaking = true;
	bufferevent_setcb(bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(bev, EV_READ, 0, SESSION_INPUT_HIGH);
	outq_rebind(&s->out, bev);
	bufferevent_enable(bev, EV_READ);
}

/*
 * session_tls_established - handshake done. RFC 3207 4.2: the server forgets
 * all it learnt from the client before TLS, so EHLO is needed again, and the
 * EHLO reply no longer offers STARTTLS.
 */
static void
session_tls_established(struct session *s)
{
	s->tls_handshaking = false;
	s->tls = true;
	bufferevent_disable(s->bev, EV_WRITE);	/* outq enables it per flush */
	tls_describe(s->bev, s->tls_info, sizeof(s->tls_info));
	tls_counters.handshakes++;
	log_debug("session %010llx: TLS established: %s", (unsigned long long)s->id, s->tls_info);
	session_reset_transaction(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	session_enter_state(s, SESSION_HELO);
	evtimer_del(s->timer);
	session_arm_command_timer(s);
	session_process_input(s);
}

/* session_shutdown_all - the shutdown grace is over: tell every client and close. */
void
session_shutdown_all(void)
{
	struct session *s, *next;

	for (s = TAILQ_FIRST(&all_sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->state == SESSION_CLOSING)
			continue;
		session_add_reason(s, REASON_SHUTDOWN);
		session_close(s, "421 4.3.2 %s Service shutting down, try again later", s->config->hostname);
	}
}
