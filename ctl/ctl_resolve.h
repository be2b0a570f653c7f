#ifndef MXTIER_CTL_RESOLVE_H
#define MXTIER_CTL_RESOLVE_H

/*
 * ctl_resolve - mxtierctl's blocking DNS lookups (MX, A/AAAA, PTR) against
 * the config's dns_servers ("addr", "addr:port", "[v6]:port"; none: the
 * system's resolv.conf). Queries are built and answers parsed by libresolv
 * (res_nmkquery, ns_initparse/ns_parserr); each server gets dns_timeout,
 * once. The daemon's evdns does not look up MX records.
 */
#include <stddef.h>

#include "config.h"
#include "netaddr.h"

enum ctl_dns_status {
	CTL_DNS_FOUND = 0,
	CTL_DNS_NONE,		/* NXDOMAIN, or the name has no record of the type */
	CTL_DNS_FAILED		/* timeout, SERVFAIL, unparseable: unknown */
};

#define CTL_DNS_NAME_MAX	256
#define CTL_DNS_ANSWERS_MAX	16

struct ctl_mx {
	unsigned	pref;
	char		host[CTL_DNS_NAME_MAX];
};

struct ctl_resolver;

struct ctl_resolver	*ctl_resolver_new(const struct config *c);
void			 ctl_resolver_free(struct ctl_resolver *r);
/* ctl_resolver_describe - "127.0.0.1:5353" or "resolv.conf", for the operator. */
const char		*ctl_resolver_describe(const struct ctl_resolver *r);

enum ctl_dns_status	 ctl_resolve_mx(struct ctl_resolver *r, const char *domain, struct ctl_mx *out, size_t *n);
/* ctl_resolve_addrs - A and AAAA; FAILED if either lookup failed and nothing was found. */
enum ctl_dns_status	 ctl_resolve_addrs(struct ctl_resolver *r, const char *name, struct netaddr *out, size_t *n);
enum ctl_dns_status	 ctl_resolve_ptr(struct ctl_resolver *r, const struct netaddr *a,
			    char out[][CTL_DNS_NAME_MAX], size_t *n);

/* Forward-confirmed reverse DNS of one address. */
struct ctl_fcrdns {
	enum ctl_dns_status	ptr_status;
	char			name[CTL_DNS_NAME_MAX];		/* the first PTR name ("" without) */
	char			confirmed[CTL_DNS_NAME_MAX];	/* a PTR name whose A/AAAA holds the address */
	bool			forward_failed;			/* a forward lookup failed: unknown */
};

void	ctl_fcrdns(struct ctl_resolver *r, const struct netaddr *a, struct ctl_fcrdns *out);

#endif
