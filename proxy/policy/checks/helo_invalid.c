/*
 * helo_invalid.c - a HELO/EHLO name no operated MTA would send: bad
 * host name syntax, a bare IP address without brackets, or a
 * claim to be us (our host name or one of our tier addresses).
 */
#include <string.h>
#include <strings.h>

#include "checks/check.h"
#include "facts.h"

/* helo_is_hostname - LDH labels of 1..63 characters ("_" tolerated: it is common and harmless). */
static bool
helo_is_hostname(const char *h)
{
	size_t label = 0;

	for (; *h; h++) {
		if (*h == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') || *h == '-' ||
		    *h == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	/*
	 * A trailing dot is fine; a dotless name ("mail", "WIN-ABC123") is
	 * poor practice but valid syntax, and too many small MTAs send one.
	 */
	return true;
}

/* helo_literal - "[1.2.3.4]" or "[IPv6:...]": the address inside, or -1. */
static int
helo_literal(const char *h, struct netaddr *out)
{
	char inner[64];
	size_t len = strlen(h);

	if (len < 3 || h[0] != '[' || h[len - 1] != ']' || len - 2 >= sizeof(inner))
		return -1;
	memcpy(inner, h + 1, len - 2);
	inner[len - 2] = '\0';
	if (strncasecmp(inner, "IPv6:", 5) == 0)
		return netaddr_parse(inner + 5, out);
	return netaddr_parse(inner, out);
}

static enum check_result
helo_invalid_run(const struct client_facts *f, enum reason *reason)
{
	const struct config *c = f->config;
	struct netaddr a;

	*reason = REASON_HELO_INVALID;
	if (netaddr_parse(f->helo, &a) == 0)
		return CHECK_SUSPECT;		/* bare address, no brackets */
	if (helo_literal(f->helo, &a) == 0) {
		netaddr_normalize(&a);
		return config_tier_of(c, &a) >= 0 ? CHECK_SUSPECT : CHECK_PASS;
	}
	if (!helo_is_hostname(f->helo) || strcasecmp(f->helo, c->hostname) == 0)
		return CHECK_SUSPECT;
	return CHECK_PASS;
}

const struct check check_helo_invalid = { "helo-invalid", CHECK_AT_MAIL, helo_invalid_run };
