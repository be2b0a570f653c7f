/*
 * session_record.c - a finished session's record as text: the reason
 * list every consumer shares and the summary log line.
 */
#include "session_record.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "smtp_parse.h"

/* A record's text is at most a path long (the session's buffers), escaped at worst 4 bytes a byte. */
#define SESSION_LOG_VALUE_MAX	(SMTP_PATH_MAX * 4 + 16)

const char *
reasons_format(char *buf, size_t len, uint64_t reasons)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int r = 0; r < REASON_COUNT && used < len; r++)
		if (reasons & (UINT64_C(1) << r))
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", reason_name(r));
	return buf;
}

/* quoted, token - a record's text for a "quoted" or a bare/<bracketed> field of the log line. */
static const char *
quoted(char *dst, const char *src)
{
	return log_escape(dst, SESSION_LOG_VALUE_MAX, src, strlen(src));
}

static const char *
token(char *dst, const char *src)
{
	return log_escape_token(dst, SESSION_LOG_VALUE_MAX, src, strlen(src));
}

void
session_record_log(const struct session_record *r)
{
	char helo[SESSION_LOG_VALUE_MAX], from[SESSION_LOG_VALUE_MAX], rcpt[SESSION_LOG_VALUE_MAX];
	char backend[SESSION_LOG_VALUE_MAX], rdns[SESSION_LOG_VALUE_MAX];

	token(rdns, r->rdns);
	log_info("session id=%010llx tier=%s client=%s:%u tls=%s rdns=%s fcrdns=%s dnsbl=%d helo=\"%s\" from=<%s> "
	    "rcpts=%zu first_rcpt=<%s> messages=%u verdict=%s reasons=%s bytes=%llu duration=%.3f backend_tls=%s "
	    "backend=\"%s\"",
	    (unsigned long long)r->id, tier_role_name(r->tier), r->client_text, r->client_port,
	    r->tls[0] ? r->tls : "no", rdns[0] ? rdns : "-", r->fcrdns ? "yes" : "no", r->dnsbl_score,
	    quoted(helo, r->helo), token(from, r->mail_from), r->rcpts, token(rcpt, r->first_rcpt), r->messages,
	    verdict_name(r->verdict), r->reason_list[0] ? r->reason_list : "-", (unsigned long long)r->bytes,
	    (double)r->duration_ms / 1000.0, r->backend_tls[0] ? r->backend_tls : "no", quoted(backend, r->backend_reply));
}
