/*
 * no_rdns.c - the client's address has no PTR record. Operated mail
 * servers have one; botnets on consumer lines mostly don't. A PTR lookup
 * that timed out is "unknown", which is not clean either.
 */
#include "checks/check.h"
#include "facts.h"

static enum check_result
no_rdns_run(const struct client_facts *f, enum reason *reason)
{
	if (!f->config->dns_checks || f->dns.ptr_status == DNS_FOUND)
		return CHECK_PASS;
	*reason = f->dns.ptr_status == DNS_NONE ? REASON_NO_RDNS : REASON_DNS_UNKNOWN;
	return CHECK_SUSPECT;
}

const struct check check_no_rdns = { "no-rdns", CHECK_AT_GREETING, no_rdns_run };
