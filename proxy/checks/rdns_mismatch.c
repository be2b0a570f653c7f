/*
 * rdns_mismatch.c - the PTR name does not resolve back to the client's
 * address (no forward confirmation, FCrDNS). Anyone can publish a PTR
 * claiming a big provider's name; only the provider can confirm it.
 */
#include "checks/check.h"
#include "session.h"

static enum check_result
rdns_mismatch_run(const struct session *s, enum reason *reason)
{
	if (!s->config->dns_checks || s->dns.ptr_status != DNS_FOUND || s->dns.fcrdns)
		return CHECK_PASS;
	*reason = s->dns.forward_status == DNS_UNKNOWN ? REASON_DNS_UNKNOWN : REASON_RDNS_MISMATCH;
	return CHECK_SUSPECT;
}

const struct check check_rdns_mismatch = { "rdns-mismatch", CHECK_AT_GREETING, rdns_mismatch_run };
