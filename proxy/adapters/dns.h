#ifndef MXTIER_DNS_H
#define MXTIER_DNS_H

#include <stddef.h>

#include "config.h"
#include "dns_status.h"
#include "netaddr.h"

/*
 * Asynchronous DNS over evdns with a bounded TTL cache. Answers always
 * arrive from the event loop, never inside dns_lookup_*(), so a caller
 * can start several lookups and count them safely.
 */


#define DNS_ANSWER_ADDRS_MAX 8

struct dns_answer {
	enum dns_status	status;
	size_t		count;
	struct netaddr	addrs[DNS_ANSWER_ADDRS_MAX];	/* A/AAAA */
	char		name[256];			/* PTR */
};

struct dns_request;
typedef void (*dns_callback)(const struct dns_answer *answer, void *arg);

int	dns_init(const struct config *c);	/* (re)configure servers and options */
void	dns_shutdown(void);

struct dns_request *dns_lookup_ptr(const struct netaddr *addr, dns_callback cb, void *arg);
/* family AF_INET asks A, AF_INET6 asks AAAA. */
struct dns_request *dns_lookup_addr(const char *name, int family, dns_callback cb, void *arg);
/* dns_abandon - the caller goes away: the answer still fills the cache, the callback is not called. */
void	dns_abandon(struct dns_request *r);

#endif
