/*
 * dynamic_rdns.c - a PTR name that looks like an access line, not a mail
 * server: the address's own octets in the name (1-2-3-4, 4.3.2.1,
 * 001002003004) or words like dyn, dhcp, pool, dsl, cable, ppp. Operators
 * add patterns (POSIX extended regular expressions, one per line, case
 * insensitive) in dynamic_rdns_patterns_file.
 */
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "checks/check.h"
#include "facts.h"

/* Access-line words as whole labels or label parts followed by digits or a dash. */
static const char builtin_pattern[] =
    "(^|[.-])(dyn|dynamic|dhcp|dialup|dial|dip|pool|dsl|adsl|vdsl|xdsl|cable|ppp|pppoe|"
    "broadband|bb|customer|cust|client|residential|res|user|host)[0-9-]*([.-]|$)";

static regex_t builtin_regex;
static bool builtin_ready;

/* name_has_octets - the address's octets, in either order, with any separators or zero padding. */
static bool
name_has_octets(const struct netaddr *a, const char *name)
{
	char forms[6][32];
	const uint8_t *b = a->bytes;

	if (a->family != AF_INET)
		return false;
	snprintf(forms[0], sizeof(forms[0]), "%u-%u-%u-%u", b[0], b[1], b[2], b[3]);
	snprintf(forms[1], sizeof(forms[1]), "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
	snprintf(forms[2], sizeof(forms[2]), "%u-%u-%u-%u", b[3], b[2], b[1], b[0]);
	snprintf(forms[3], sizeof(forms[3]), "%u.%u.%u.%u", b[3], b[2], b[1], b[0]);
	snprintf(forms[4], sizeof(forms[4]), "%03u%03u%03u%03u", b[0], b[1], b[2], b[3]);
	snprintf(forms[5], sizeof(forms[5]), "%03u%03u%03u%03u", b[3], b[2], b[1], b[0]);
	for (int i = 0; i < 6; i++)
		if (strstr(name, forms[i]))
			return true;
	return false;
}

static enum check_result
dynamic_rdns_run(const struct client_facts *f, enum reason *reason)
{
	const struct pattern_list *ops = &f->config->dynamic_rdns_patterns;
	const regex_t *re = ops->regexes;
	const char *name = f->dns.ptr_name;

	if (!f->config->dns_checks || f->dns.ptr_status != DNS_FOUND)
		return CHECK_PASS;
	if (!builtin_ready) {
		builtin_ready = regcomp(&builtin_regex, builtin_pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0;
		if (!builtin_ready)
			return CHECK_PASS;
	}
	*reason = REASON_DYNAMIC_RDNS;
	if (name_has_octets(&f->client, name) || regexec(&builtin_regex, name, 0, NULL, 0) == 0)
		return CHECK_SUSPECT;
	for (size_t i = 0; i < ops->count; i++)
		if (regexec(&re[i], name, 0, NULL, 0) == 0)
			return CHECK_SUSPECT;
	return CHECK_PASS;
}

const struct check check_dynamic_rdns = { "dynamic-rdns", CHECK_AT_GREETING, dynamic_rdns_run };
