/*
 * rdns_mismatch.c - the PTR name does not resolve back to the client's
 * address (no forward confirmation, FCrDNS). Anyone can publish a PTR
 * claiming a big provider's name; only the provider can confirm it.
 */
#include "checks/check.h"
#include "facts.h"

static enum check_result
rdns_mismatch_run(const struct client_facts *f, enum reason *reason)
{
	if (!f->config->dns_checks || f->dns.ptr_status != DNS_FOUND || f->dns.fcrdns)
		return CHECK_PASS;
	*reason = f->dns.forward_status == DNS_UNKNOWN ? REASON_DNS_UNKNOWN : REASON_RDNS_MISMATCH;
	return CHECK_SUSPECT;
}

const struct check check_rdns_mismatch = { "rdns-mismatch", CHECK_AT_GREETING, rdns_mismatch_run };
