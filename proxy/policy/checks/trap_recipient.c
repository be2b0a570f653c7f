/*
 * trap_recipient.c - mail to an address that no person uses (published
 * only where harvesters find it). trap_recipients lists addresses, or
 * "@domain" for a whole domain; matching is case-insensitive.
 */
#include <string.h>
#include <strings.h>

#include "checks/check.h"
#include "facts.h"

static enum check_result
trap_recipient_run(const struct client_facts *f, enum reason *reason)
{
	const struct string_list *traps = &f->config->trap_recipients;
	const char *rcpt = f->rcpt, *at = strrchr(rcpt, '@');

	for (size_t i = 0; i < traps->count; i++) {
		const char *t = traps->items[i];

		if (strcasecmp(t, rcpt) == 0 || (t[0] == '@' && at && strcasecmp(t, at) == 0)) {
			*reason = REASON_TRAP_RECIPIENT;
			return CHECK_FAIL;
		}
	}
	return CHECK_PASS;
}

const struct check check_trap_recipient = { "trap-recipient", CHECK_AT_RCPT, trap_recipient_run };
