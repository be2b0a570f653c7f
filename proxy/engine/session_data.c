/*
 * session_data.c - message data: strict CRLF framing through the data
 * reader, streamed to the backend with back-pressure, never stored whole.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "daemon.h"
#include "relay.h"
#include "session.h"

void
session_data_begin(struct session *s)
{
	data_reader_init(&s->data, (uint64_t)s->config->message_size_limit);
	s->data_failed = false;
	s->data_unread = 0;
	s->data_started_ms = now_ms();
	session_enter_state(s, SESSION_DATA);
	session_arm_timer(s, s->config->data_timeout);
}

/* abort_backend_transaction - close the backend leg without end-of-data, so nothing is delivered. */
static void
abort_backend_transaction(struct session *s)
{
	if (s->relay) {
		relay_free(s->relay);
		s->relay = NULL;
	}
}

/*
 * data_rate_too_low - a client trickling data must not hold a slot for the
 * whole data timeout. Counted on every byte received, whole lines or not:
 * a drip inside one long line is as slow as one across many.
 */
static bool
data_rate_too_low(const struct session *s, int64_t now)
{
	int64_t elapsed = now - s->data_started_ms;
	uint64_t received = s->data.bytes + s->data_unread;

	if (s->config->min_data_rate == 0 || elapsed < s->config->min_data_rate_grace)
		return false;
	return (int64_t)(received * 1000 / (uint64_t)elapsed) < s->config->min_data_rate;
}

static void
data_finish(struct session *s)
{
	s->bytes += s->data.bytes;
	if (s->data.errors) {
		if (s->data.errors & DATA_ERR_LINE_TOO_LONG)
			session_reply(s, "552 5.5.6 Message line too long (limit %d octets)", SMTP_TEXT_LINE_MAX);
		else
			session_reply(s, "552 5.3.4 Message too big for system");
		session_reset_transaction(s);
		session_arm_command_timer(s);
		return;
	}
	if (s->data_failed || s->relay == NULL) {
		session_reply(s, "451 4.4.2 Backend connection lost, message not accepted");
		session_reset_transaction(s);
		session_arm_command_timer(s);
		return;
	}
	/* The client's 250 will be the backend's own reply to this end-of-data. */
	relay_data_end(s->relay);
	s->pending_command = CMD_DATA_END;
	s->waiting_backend = true;
	evtimer_del(s->timer);
}

void
session_data_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t len = evbuffer_get_length(in), consumed;
	enum data_status st;
	unsigned errors_before = s->data.errors;
	const char *buf;
	int64_t now;

	/* data_timeout is the longest silence: any new byte, even inside a line, is a sign of life. */
	bool arrived = len > s->data_unread;

	if (len == 0)
		return;
	buf = (const char *)evbuffer_pullup(in, (ssize_t)len);
	st = data_reader_scan(&s->data, buf, len, &consumed);
	if (st == DATA_BAD_NEWLINE) {
		abort_backend_transaction(s);
		s->bytes += s->data.bytes;
		session_policy_violation(s, REASON_BARE_LF);
		session_close(s, "521 5.5.2 %s Bare CR, LF or NUL in message data, closing connection",
		    s->config->hostname);
		return;
	}
	if (s->data.errors && !errors_before)
		abort_backend_transaction(s);
	if (consumed > 0) {
		if (s->relay && !s->data.errors && !s->data_failed)
			relay_data_move(s->relay, in, consumed);
		else
			evbuffer_drain(in, consumed);
	}
	s->data_unread = st == DATA_END ? 0 : len - consumed;
	if (arrived || consumed > 0) {
		now = now_ms();
		if (st != DATA_END && data_rate_too_low(s, now)) {
			abort_backend_transaction(s);
			session_add_reason(s, REASON_TIMEOUT);
			session_close(s, "421 4.4.2 %s Data rate too low, closing connection", s->config->hostname);
			return;
		}
		session_arm_timer(s, s->config->data_timeout);
	}
	if (st == DATA_END) {
		data_finish(s);
		return;
	}
	if (s->relay && relay_output_full(s->relay))
		session_pause_read(s, true);
}
