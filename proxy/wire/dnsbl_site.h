#ifndef MXTIER_DNSBL_SITE_H
#define MXTIER_DNSBL_SITE_H

#include <stdbool.h>
#include <stdint.h>

#include "netaddr.h"

/*
 * One DNSBL/DNSWL site in postscreen's syntax: zone[=filter][*weight].
 * The filter matches the answer address octet by octet; each octet is a
 * number, "[a..b]" or "[a;b;c]" (e.g. 127.0.0.[2..11]). A negative weight
 * makes it an allow-list.
 */
struct dnsbl_site {
	char		zone[256];
	bool		has_filter;
	uint8_t		octet_set[4][32];	/* bitmap of accepted values per octet */
	int		weight;
};

int	dnsbl_site_parse(const char *text, struct dnsbl_site *out);
bool	dnsbl_site_matches(const struct dnsbl_site *site, const struct netaddr *answer);
/* dnsbl_query_name - "4.3.2.1.zone" or the IPv6 nibble form; -1 if it does not fit. */
int	dnsbl_query_name(const struct netaddr *client, const char *zone, char *buf, size_t len);

#endif
