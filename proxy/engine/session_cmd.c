/*
 * session_cmd.c - the SMTP command table: each verb, the state it needs
 * and its handler. Handlers answer locally or hand the command to the
 * backend (s->waiting_backend); they never free the session.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "checks/check.h"
#include "daemon.h"
#include "log.h"
#include "relay.h"
#include "session.h"
#include "tls.h"

enum command_needs {
	NEEDS_NOTHING = 0,
	NEEDS_HELO,		/* EHLO/HELO first */
	NEEDS_MAIL,		/* inside a transaction */
	NEEDS_RCPT		/* at least one recipient accepted */
};

struct command {
	const char		*verb;
	enum command_id		 id;
	enum command_needs	 needs;
	void			(*run)(struct session *s, const char *arg);
};

static void cmd_ehlo(struct session *s, const char *arg);
static void cmd_helo(struct session *s, const char *arg);
static void cmd_mail(struct session *s, const char *arg);
static void cmd_rcpt(struct session *s, const char *arg);
static void cmd_data(struct session *s, const char *arg);
static void cmd_rset(struct session *s, const char *arg);
static void cmd_noop(struct session *s, const char *arg);
static void cmd_quit(struct session *s, const char *arg);
static void cmd_help(struct session *s, const char *arg);
static void cmd_vrfy(struct session *s, const char *arg);
static void cmd_starttls(struct session *s, const char *arg);
static void cmd_not_implemented(struct session *s, const char *arg);
static void cmd_bdat(struct session *s, const char *arg);

static const struct command command_table[] = {
	{ "EHLO",	CMD_EHLO,	NEEDS_NOTHING,	cmd_ehlo },
	{ "HELO",	CMD_HELO,	NEEDS_NOTHING,	cmd_helo },
	{ "MAIL",	CMD_MAIL,	NEEDS_HELO,	cmd_mail },
	{ "RCPT",	CMD_RCPT,	NEEDS_MAIL,	cmd_rcpt },
	{ "DATA",	CMD_DATA,	NEEDS_RCPT,	cmd_data },
	{ "RSET",	CMD_RSET,	NEEDS_NOTHING,	cmd_rset },
	{ "NOOP",	CMD_NOOP,	NEEDS_NOTHING,	cmd_noop },
	{ "QUIT",	CMD_QUIT,	NEEDS_NOTHING,	cmd_quit },
	{ "HELP",	CMD_HELP,	NEEDS_NOTHING,	cmd_help },
	{ "VRFY",	CMD_VRFY,	NEEDS_NOTHING,	cmd_vrfy },
	/* Its own checks: without a certificate it is 502 whatever the state. */
	{ "STARTTLS",	CMD_STARTTLS,	NEEDS_NOTHING,	cmd_starttls },
	/* Known verbs mxtierd deliberately does not offer to clients. */
	{ "EXPN",	CMD_NOT_IMPLEMENTED, NEEDS_NOTHING, cmd_not_implemented },
	{ "BDAT",	CMD_NOT_IMPLEMENTED, NEEDS_NOTHING, cmd_bdat },
	{ "XCLIENT",	CMD_NOT_IMPLEMENTED, NEEDS_NOTHING, cmd_not_implemented },
	{ "XFORWARD",	CMD_NOT_IMPLEMENTED, NEEDS_NOTHING, cmd_not_implemented },
	{ "AUTH",	CMD_NOT_IMPLEMENTED, NEEDS_NOTHING, cmd_not_implemented },
	{ "ETRN",	CMD_NOT_IMPLEMENTED, NEEDS_NOTHING, cmd_not_implemented },
	{ "TURN",	CMD_NOT_IMPLEMENTED, NEEDS_NOTHING, cmd_not_implemented },
	{ "ATRN",	CMD_NOT_IMPLEMENTED, NEEDS_NOTHING, cmd_not_implemented },
	{ "PROXY",	CMD_NOT_IMPLEMENTED, NEEDS_NOTHING, cmd_not_implemented },
};

static const struct command *
command_find(const char *verb)
{
	for (size_t i = 0; i < sizeof(command_table) / sizeof(command_table[0]); i++)
		if (strcmp(command_table[i].verb, verb) == 0)
			return &command_table[i];
	return NULL;
}

/* command_state_ok - the table's "needs" column against the session state; answers 503/554 itself. */
static bool
command_state_ok(struct session *s, const struct command *cmd)
{
	switch (cmd->needs) {
	case NEEDS_NOTHING:
		return true;
	case NEEDS_HELO:
		if (s->state >= SESSION_READY)
			return true;
		session_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return false;
	case NEEDS_MAIL:
		if (s->state == SESSION_MAIL || s->state == SESSION_RCPT)
			return true;
		session_reply(s, "503 5.5.1 Error: need MAIL command");
		return false;
	case NEEDS_RCPT:
		if (s->state == SESSION_RCPT)
			return true;
		if (s->state == SESSION_MAIL)
			session_reply(s, "554 5.5.1 No valid recipients");
		else
			session_reply(s, "503 5.5.1 Error: need RCPT command");
		return false;
	}
	return false;
}

/* drop_pipelined_data - bytes after a DATA that got no 354: message text sent blind, never to be run. */
static void
drop_pipelined_data(struct session *s, size_t pending)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	evbuffer_drain(in, evbuffer_get_length(in));
	log_info("session %010llx: %zu bytes sent after a refused DATA; none executed", (unsigned long long)s->id,
	    pending);
	session_policy_violation(s, REASON_PIPELINING);
	session_close(s, "554 5.5.0 %s Error: SMTP protocol synchronization (data after a refused DATA), closing connection",
	    s->config->hostname);
}

/* client_bytes_waiting - the kernel already holds more from the client than libevent has read. */
static bool
client_bytes_waiting(const struct session *s)
{
	char c;
	ssize_t n = recv(bufferevent_getfd(s->bev), &c, 1, MSG_PEEK | MSG_DONTWAIT);

	return n > 0;
}

/*
 * session_data_refused - RFC 2920 makes DATA the last command of a group: a
 * client may send nothing after it before the 354. When DATA was refused
 * (by mxtierd or the backend), bytes that came with or right behind it are
 * the message body: the client is dropped (reason pipelining) and nothing
 * of them runs, whoever the client is. When none has come yet, the next
 * line must be a command that can follow a refused DATA: RSET or QUIT as
 * real MTAs send, NOOP, EHLO, HELO, HELP. Not MAIL (the transaction, if
 * any, is still open) and not text: a body that arrives a moment after the
 * refusal starts with neither.
 */
void
session_data_refused(struct session *s)
{
	size_t pending = evbuffer_get_length(bufferevent_get_input(s->bev));

	if (s->state == SESSION_CLOSING)
		return;
	if (pending > 0 || (!s->client_eof && client_bytes_waiting(s))) {
		drop_pipelined_data(s, pending);
		return;
	}
	s->after_refused_data = true;
}

/* may_follow_refused_data - what a client that waited for the DATA refusal sends next. */
static bool
may_follow_refused_data(const struct command *cmd)
{
	switch (cmd ? cmd->id : CMD_NONE) {
	case CMD_RSET:
	case CMD_QUIT:
	case CMD_NOOP:
	case CMD_EHLO:
	case CMD_HELO:
	case CMD_HELP:
		return true;
	default:
		return false;
	}
}

void
session_execute_command(struct session *s, char *line, size_t len, bool more_input)
{
	char verb[16];
	const char *arg = smtp_split_verb(line, verb, sizeof(verb));
	const struct command *cmd = verb[0] ? command_find(verb) : NULL;

	if (s->after_refused_data) {
		s->after_refused_data = false;
		if (!may_follow_refused_data(cmd)) {
			drop_pipelined_data(s, len + evbuffer_get_length(bufferevent_get_input(s->bev)));
			return;
		}
	}
	/* RFC 2920: only after the EHLO reply may a client send without waiting. */
	if (more_input && !s->esmtp)
		s->obs.pipelined_before_ehlo = true;

	if (cmd == NULL) {
		if (non_smtp_line(line))
			s->obs.non_smtp_command = true;
		if (session_policy_command(s) == ACTION_REJECT) {
			session_close(s, "521 5.7.0 non-SMTP command, closing connection");
			return;
		}
		session_reply(s, "500 5.5.2 Command unrecognized");
		session_error(s);
		return;
	}
	if (!command_state_ok(s, cmd)) {
		if (!session_error(s) && cmd->id == CMD_DATA)
			session_data_refused(s);
		return;
	}
	cmd->run(s, arg);
}

/* The relay's answers, to the session that owns it. */
static void
relay_replied(void *arg, const struct smtp_reply *reply)
{
	session_backend_reply(arg, reply);
}

static void
relay_failed(void *arg, const char *why)
{
	session_backend_failed(arg, why);
}

static void
relay_drained(void *arg)
{
	session_backend_drained(arg);
}

static void
relay_tls_info(void *arg, const char *info)
{
	struct session *s = arg;

	snprintf(s->backend_tls_info, sizeof(s->backend_tls_info), "%s", info);
}

/* session_relay_start - the backend leg, told who the client is and how to answer the session. */
static struct relay *
session_relay_start(struct session *s, const char *line, size_t len)
{
	struct relay_owner o = {
		.session_id = s->id, .config = s->config, .client = s->client, .server = s->server,
		.client_port = s->client_port, .server_port = s->server_port, .esmtp = s->esmtp,
		.tls_version = s->tls ? tls_version_name(s->bev) : "", .tls_cipher = s->tls ? tls_cipher_name(s->bev) : "",
		.reply = relay_replied, .failed = relay_failed, .drained = relay_drained, .tls_info = relay_tls_info,
		.arg = s,
	};

	snprintf(o.helo, sizeof(o.helo), "%s", s->helo);
	return relay_start(&o, line, len);
}

/* session_drop_relay - the backend leg failed: logged, counted, and gone. */
static void
session_drop_relay(struct session *s, const char *why)
{
	log_warn("session %010llx: backend %s", (unsigned long long)s->id, why);
	mxd->stats.backend_failures++;
	snprintf(s->backend_reply, sizeof(s->backend_reply), "(backend failed: %s)", why);
	relay_free(s->relay);
	s->relay = NULL;
}

/* send_to_backend - hand one command to the relay, opening it if needed. */
static void
send_to_backend(struct session *s, enum command_id id, const char *line, size_t len)
{
	/*
	 * A connection that misbehaved after the last transaction's reply goes
	 * on the next loop pass; a MAIL that came in before that pass starts a
	 * transaction afresh, so it gets a fresh connection, not a 451.
	 */
	if (s->relay && id == CMD_MAIL && relay_broken(s->relay))
		session_drop_relay(s, relay_broken(s->relay));
	if (s->relay) {
		relay_command(s->relay, line, len);
	} else if (id == CMD_MAIL) {
		s->relay = session_relay_start(s, line, len);
		if (s->relay == NULL) {
			mxd->stats.backend_failures++;
			session_reply(s, "451 4.4.1 Backend not available, try again later");
			return;
		}
	} else {
		/* The backend leg was lost between commands: the transaction went with it. */
		session_reply(s, "451 4.4.1 Backend not available, try again later");
		session_reset_transaction(s);
		return;
	}
	s->pending_command = id;
	s->waiting_backend = true;
	evtimer_del(s->timer);	/* the relay times the backend; the client is not to blame */
}

/* helo_common - what EHLO and HELO share; false when the argument was refused. */
static bool
helo_common(struct session *s, const char *arg, bool esmtp)
{
	if (!smtp_helo_token_valid(arg)) {
		session_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		session_error(s);
		return false;
	}
	/* EHLO inside a transaction resets it; the backend leg is dropped with it. */
	if (s->state == SESSION_MAIL || s->state == SESSION_RCPT) {
		if (s->relay) {
			relay_release(s->relay);
			s->relay = NULL;
		}
		session_reset_transaction(s);
	}
	snprintf(s->helo, sizeof(s->helo), "%s", arg);
	s->esmtp = esmtp;
	if (s->state < SESSION_READY)
		session_enter_state(s, SESSION_READY);
	return true;
}

static uint64_t
advertised_size(const struct session *s)
{
	uint64_t limit = (uint64_t)s->config->message_size_limit;

	if (mxd->backend_caps.size_limit && mxd->backend_caps.size_limit < limit)
		limit = mxd->backend_caps.size_limit;
	return limit;
}

static void
cmd_ehlo(struct session *s, const char *arg)
{
	if (!helo_common(s, arg, true))
		return;
	session_reply(s, "250-%s", s->config->hostname);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %llu", (unsigned long long)advertised_size(s));
	if (mxd->backend_caps.eightbitmime)
		session_reply(s, "250-8BITMIME");
	if (s->config->tls_server_ctx && !s->tls)
		session_reply(s, "250-STARTTLS");
	session_reply(s, "250 ENHANCEDSTATUSCODES");
}

static void
cmd_helo(struct session *s, const char *arg)
{
	if (helo_common(s, arg, false))
		session_reply(s, "250 %s", s->config->hostname);
}

static void
reply_path_error(struct session *s, enum path_status st, bool sender)
{
	const char *code = sender ? "5.1.7" : "5.1.3";
	const char *what = sender ? "sender" : "recipient";

	switch (st) {
	case PATH_TOO_LONG:
		session_reply(s, "501 %s Bad %s address syntax: path too long", code, what);
		break;
	case PATH_LOCAL_TOO_LONG:
		session_reply(s, "501 %s Bad %s address syntax: local part too long", code, what);
		break;
	case PATH_DOMAIN_TOO_LONG:
		session_reply(s, "501 %s Bad %s address syntax: domain too long", code, what);
		break;
	default:
		session_reply(s, "501 %s Bad %s address syntax", code, what);
		break;
	}
	session_error(s);
}

static void
cmd_mail(struct session *s, const char *arg)
{
	const char *path_text = smtp_strip_prefix(arg, "FROM:"), *rest;
	struct smtp_path path;
	struct mail_params params;
	enum path_status pst;
	char line[SMTP_COMMAND_LINE_MAX + 64];
	int n;

	if (s->state == SESSION_MAIL || s->state == SESSION_RCPT) {
		session_reply(s, "503 5.5.1 Error: nested MAIL command");
		session_error(s);
		return;
	}
	if (path_text == NULL) {
		session_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		session_error(s);
		return;
	}
	if ((pst = smtp_parse_path(path_text, true, false, &path, &rest)) != PATH_OK) {
		reply_path_error(s, pst, true);
		return;
	}
	switch (smtp_parse_mail_params(rest, mxd->backend_caps.eightbitmime, &params)) {
	case PARAM_OK:
		break;
	case PARAM_UNKNOWN:
		session_reply(s, "555 5.5.4 Unsupported MAIL parameter");
		session_error(s);
		return;
	default:
		session_reply(s, "501 5.5.4 Bad MAIL parameter syntax");
		session_error(s);
		return;
	}
	if (params.has_size && params.size > (uint64_t)s->config->message_size_limit) {
		session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	session_reset_transaction(s);
	s->mail_from = path;
	s->mail_params = params;
	snprintf(s->log_from, sizeof(s->log_from), "%s", path.address);

	switch (session_policy_mail(s)) {
	case ACTION_RELAY:
		break;
	case ACTION_TEMPFAIL:
	case ACTION_REJECT:
	case ACTION_CONTINUE:
		/* Take the envelope to log it; every recipient gets the verdict's answer. */
		session_reply(s, "250 2.1.0 Ok");
		session_enter_state(s, SESSION_MAIL);
		return;
	}
	/* The backend gets a MAIL rebuilt from what was parsed, never the client's bytes. */
	n = snprintf(line, sizeof(line), "MAIL FROM:<%s>", path.address);
	if (params.has_size)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " SIZE=%llu", (unsigned long long)params.size);
	if (params.body != BODY_UNSPECIFIED)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " BODY=%s",
		    params.body == BODY_8BITMIME ? "8BITMIME" : "7BIT");
	n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n");
	send_to_backend(s, CMD_MAIL, line, (size_t)n);
}

static void
cmd_rcpt(struct session *s, const char *arg)
{
	const char *path_text = smtp_strip_prefix(arg, "TO:"), *rest;
	struct smtp_path path;
	enum path_status pst;
	char line[SMTP_COMMAND_LINE_MAX + 16];
	int n;

	if (path_text == NULL) {
		session_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		session_error(s);
		return;
	}
	if ((pst = smtp_parse_path(path_text, false, true, &path, &rest)) != PATH_OK) {
		reply_path_error(s, pst, false);
		return;
	}
	if (*rest != '\0') {
		session_reply(s, "555 5.5.4 Unsupported RCPT parameter");
		session_error(s);
		return;
	}
	if (s->rcpt_attempts >= (size_t)s->config->max_recipients) {
		session_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	s->rcpt_attempts++;
	if (s->first_rcpt[0] == '\0')
		snprintf(s->first_rcpt, sizeof(s->first_rcpt), "%s", path.address);
	snprintf(s->current_rcpt, sizeof(s->current_rcpt), "%s", path.address);
	if (session_policy_rcpt(s) == ACTION_REJECT) {
		session_close(s, "554 5.7.1 %s Service unavailable; client [%s] blocked", s->config->hostname,
		    s->client_text);
		return;
	}
	if (s->verdict == VERDICT_TEMPFAIL) {
		session_reply(s, "451 4.7.1 Service temporarily unavailable, try again later");
		return;
	}
	if (s->verdict != VERDICT_RELAY) {
		session_reply(s, "550 5.5.1 Protocol error");
		return;
	}
	n = snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", path.address);
	send_to_backend(s, CMD_RCPT, line, (size_t)n);
}

static void
cmd_data(struct session *s, const char *arg)
{
	if (*arg != '\0') {
		session_reply(s, "501 5.5.4 Syntax: DATA");
		if (!session_error(s))
			session_data_refused(s);
		return;
	}
	send_to_backend(s, CMD_DATA, "DATA\r\n", 6);
	if (!s->waiting_backend)
		session_data_refused(s);	/* no backend leg: answered 451 */
}

static void
cmd_rset(struct session *s, const char *arg)
{
	/* Only a transaction open at the backend needs the backend's RSET. */
	if (s->relay && (s->state == SESSION_MAIL || s->state == SESSION_RCPT)) {
		send_to_backend(s, CMD_RSET, "RSET\r\n", 6);
		return;
	}
	session_reset_transaction(s);
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct session *s, const char *arg)
{
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct session *s, const char *arg)
{
	session_close(s, "221 2.0.0 %s closing connection", s->config->hostname);
}

static void
cmd_help(struct session *s, const char *arg)
{
	session_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY%s",
	    s->config->tls_server_ctx && !s->tls ? " STARTTLS" : "");
}

static void
cmd_vrfy(struct session *s, const char *arg)
{
	session_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

/*
 * cmd_starttls - RFC 3207. Refused inside a mail transaction rather than
 * resetting it: a client that sends STARTTLS there is confused, and the
 * envelope it gave in plaintext must not silently vanish.
 */
static void
cmd_starttls(struct session *s, const char *arg)
{
	const char *refusal = NULL;

	if (s->config->tls_server_ctx == NULL) {
		cmd_not_implemented(s, arg);
		return;
	}
	if (*arg != '\0')
		refusal = "501 5.5.4 Syntax: STARTTLS";
	else if (s->tls)
		refusal = "503 5.5.1 Error: TLS already active";
	else if (s->state < SESSION_READY)
		refusal = "503 5.5.1 Error: send EHLO first";
	else if (s->state == SESSION_MAIL || s->state == SESSION_RCPT)
		refusal = "503 5.5.1 Error: MAIL transaction in progress";
	if (refusal) {
		session_reply(s, "%s", refusal);
		session_error(s);
		return;
	}
	session_starttls(s);
}

static void
cmd_not_implemented(struct session *s, const char *arg)
{
	session_reply(s, "502 5.5.1 Command not implemented");
	session_error(s);
}

/*
 * cmd_bdat - CHUNKING is not offered, but a client that sends BDAT anyway
 * follows it with the announced octets. They are neither commands nor data:
 * read and discard them, so the chunk cannot be taken for commands. A size
 * that does not parse, or is beyond message_size_limit, leaves no way to
 * find the next command: refuse and close.
 */
static void
cmd_bdat(struct session *s, const char *arg)
{
	unsigned long long size;
	char *end;

	errno = 0;
	size = arg[0] >= '0' && arg[0] <= '9' ? strtoull(arg, &end, 10) : 0;
	if (arg[0] < '0' || arg[0] > '9' || errno != 0 || end - arg > 20 ||
	    size > (unsigned long long)s->config->message_size_limit ||
	    (*end != '\0' && strcasecmp(end, " LAST") != 0)) {
		session_close(s, "554 5.5.1 BDAT is not implemented and its chunk size is unusable, closing connection");
		return;
	}
	s->skip_octets = (uint64_t)size;
	session_reply(s, "502 5.5.1 Command not implemented");
	session_error(s);
}

/* session_backend_reply - the backend answered the pending command: pass it on, move state. */
void
session_backend_reply(struct session *s, const struct smtp_reply *reply)
{
	enum command_id id = s->pending_command;
	bool positive = reply->code >= 200 && reply->code < 400;
	const char *first;
	size_t flen = reply_first_line(reply, &first);

	s->waiting_backend = false;
	s->pending_command = CMD_NONE;
	if (flen >= sizeof(s->backend_reply))
		flen = sizeof(s->backend_reply) - 1;
	memcpy(s->backend_reply, first, flen);
	s->backend_reply[flen] = '\0';
	session_reply_raw(s, reply->text, reply->len);

	switch (id) {
	case CMD_MAIL:
		if (positive)
			session_enter_state(s, SESSION_MAIL);
		break;
	case CMD_RCPT:
		if (positive) {
			s->rcpt_accepted++;
			s->rcpt_total++;
			session_enter_state(s, SESSION_RCPT);
		}
		break;
	case CMD_DATA:
		if (reply->code == 354) {
			session_data_begin(s);
			session_process_input(s);
			return;
		}
		session_data_refused(s);
		break;
	case CMD_DATA_END:
		if (positive) {
			s->messages++;
			mxd->stats.messages_relayed++;
		}
		session_reset_transaction(s);
		break;
	case CMD_RSET:
		session_reset_transaction(s);
		break;
	default:
		break;
	}
	if (s->state != SESSION_CLOSING)
		session_arm_command_timer(s);
	session_process_input(s);
}

/* session_backend_failed - the backend leg is gone: 4xx for what was pending, never a 250. */
void
session_backend_failed(struct session *s, const char *why)
{
	enum command_id id = s->pending_command;

	session_drop_relay(s, why);

	if (s->state == SESSION_DATA && !s->waiting_backend) {
		/* Keep reading to the end of data; its reply will be the 451. */
		s->data_failed = true;
		if (s->read_paused)
			session_pause_read(s, false);
		session_process_input(s);
		return;
	}
	if (!s->waiting_backend)
		return;
	s->waiting_backend = false;
	s->pending_command = CMD_NONE;
	switch (id) {
	case CMD_RSET:
		session_reply(s, "250 2.0.0 Ok");
		break;
	case CMD_DATA:
	case CMD_DATA_END:
		session_reply(s, "451 4.4.2 Backend connection lost, message not accepted");
		break;
	default:
		session_reply(s, "451 4.4.1 Backend not available, try again later");
		break;
	}
	session_reset_transaction(s);
	if (id == CMD_DATA)
		session_data_refused(s);
	if (s->state != SESSION_CLOSING)
		session_arm_command_timer(s);
	session_process_input(s);
}

void
session_backend_drained(struct session *s)
{
	if (!s->read_paused)
		return;
	session_pause_read(s, false);
	session_process_input(s);
}
