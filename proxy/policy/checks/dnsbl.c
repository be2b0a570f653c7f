/*
 * dnsbl.c - the weighted DNSBL/DNSWL score, postscreen style: each listing
 * site adds its weight (negative for allow-lists). At or above
 * dnsbl_reject_score the client fails; at or above dnsbl_suspect_score it
 * is suspicious; a net negative score is an allow-listing (dnswl). A site
 * that did not answer in time leaves the score unknown, never clean.
 */
#include "checks/check.h"
#include "facts.h"

bool
dnsbl_allowlisted(const struct client_facts *f)
{
	return f->config->dns_checks && f->dns.dnsbl_score < 0;
}

static enum check_result
dnsbl_run(const struct client_facts *f, enum reason *reason)
{
	const struct config *c = f->config;

	if (!c->dns_checks || c->dnsbl_sites.count == 0)
		return CHECK_PASS;
	*reason = REASON_DNSBL;
	if (f->dns.dnsbl_score >= c->dnsbl_reject_score)
		return CHECK_FAIL;
	if (f->dns.dnsbl_score >= c->dnsbl_suspect_score)
		return CHECK_SUSPECT;
	if (f->dns.dnsbl_unknown && f->dns.dnsbl_score >= 0) {
		*reason = REASON_DNS_UNKNOWN;
		return CHECK_SUSPECT;
	}
	return CHECK_PASS;
}

const struct check check_dnsbl = { "dnsbl", CHECK_AT_GREETING, dnsbl_run };
