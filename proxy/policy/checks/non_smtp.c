/*
 * non_smtp.c - a client speaking another protocol at the SMTP port: HTTP
 * proxies abused as relays, web scanners, POP/IMAP clients. No real MTA
 * sends these, so the session fails at once.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "checks/check.h"
#include "facts.h"

static const char *const non_smtp_verbs[] = {
	"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE", "PATCH", "TRACE", "USER", "PASS", NULL
};

/* non_smtp_line - true for a command line (raw, any length) that belongs to another protocol. */
bool
non_smtp_line(const char *line)
{
	size_t n = strcspn(line, " ");

	for (size_t i = 0; non_smtp_verbs[i]; i++)
		if (strlen(non_smtp_verbs[i]) == n && strncasecmp(line, non_smtp_verbs[i], n) == 0)
			return true;
	/* A header line such as "Host:" or "Accept-Language:". */
	return n > 1 && line[n - 1] == ':';
}

static enum check_result
non_smtp_run(const struct client_facts *f, enum reason *reason)
{
	if (!f->obs.non_smtp_command)
		return CHECK_PASS;
	*reason = REASON_NON_SMTP;
	return CHECK_FAIL;
}

const struct check check_non_smtp = { "non-smtp", CHECK_AT_COMMAND, non_smtp_run };
