/*
 * pregreet.c - the client spoke before the last line of our multi-line
 * banner. Real MTAs wait for "220 " (RFC 5321 4.3.1); bulk spam engines
 * that fire their commands blind do not.
 */
#include "checks/check.h"
#include "facts.h"

static enum check_result
pregreet_run(const struct client_facts *f, enum reason *reason)
{
	if (f->obs.pregreet_bytes == 0)
		return CHECK_PASS;
	*reason = REASON_PREGREET;
	return CHECK_FAIL;
}

const struct check check_pregreet = { "pregreet", CHECK_AT_MAIL, pregreet_run };
