/*
 * kernel.c - from history listings to nftables set elements. Some
 * addresses are never written whatever the verdict: loopback, the backend,
 * the tier addresses and the appliance's own, so no listing can cut the
 * appliance off from its own network.
 */
#include "kernel.h"

#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "history.h"
#include "log.h"
#include "nftset.h"

#define OWN_ADDRESSES_MAX 256

static struct {
	struct nftset	*writer;
	struct netaddr	 own[OWN_ADDRESSES_MAX];
	size_t		 own_count;
} kernel;

static void
collect_own_addresses(void)
{
	struct ifaddrs *ifa, *i;

	kernel.own_count = 0;
	if (getifaddrs(&ifa) == -1)
		return;
	for (i = ifa; i && kernel.own_count < OWN_ADDRESSES_MAX; i = i->ifa_next) {
		if (i->ifa_addr && netaddr_from_sockaddr(i->ifa_addr, &kernel.own[kernel.own_count], NULL) == 0)
			kernel.own_count++;
	}
	freeifaddrs(ifa);
}

/* kernel_never_listed - addresses no verdict may put into a kernel set. */
static bool
kernel_never_listed(const struct netaddr *a, unsigned prefix_len)
{
	const struct config *c = mxd->config;
	struct cidr covered = { .addr = *a, .prefix_len = prefix_len };

	if ((a->family == AF_INET && a->bytes[0] == 127) ||
	    (a->family == AF_INET6 && cidr_contains(&(struct cidr){ .addr = { .family = AF_INET6, .bytes = { [15] = 1 } },
	    .prefix_len = 128 }, a)))
		return true;
	if (cidr_contains(&covered, &c->backend_addr) || config_tier_of(c, a) >= 0)
		return true;
	for (int t = 0; t < TIER_COUNT; t++)
		for (size_t i = 0; i < c->tier_ips[t].count; i++)
			if (cidr_contains(&covered, &c->tier_ips[t].items[i]))
				return true;
	for (size_t i = 0; i < kernel.own_count; i++)
		if (cidr_contains(&covered, &kernel.own[i]))
			return true;
	return false;
}

static void
kernel_listing(const struct netaddr *addr, unsigned prefix_len, int64_t ttl_ms, bool block)
{
	char text[NETADDR_STRLEN];
	enum nftset_kind kind = block ? NFTSET_BLOCK : NFTSET_TRUST;

	if (kernel.writer == NULL || (!block && !mxd->config->kernel_fast_path))
		return;
	/*
	 * The fast path DNATs to the backend, so only clients of the backend's
	 * family can take it; and an IPv6 trust element would be a whole /64
	 * (the writer keys IPv6 by prefix), trusting neighbours nobody vouched for.
	 */
	if (!block && (addr->family != mxd->config->backend_addr.family || addr->family == AF_INET6))
		return;
	if (kernel_never_listed(addr, prefix_len)) {
		log_info("kernel: not listing %s/%u (loopback, backend, tier or own address)",
		    netaddr_format(addr, text, sizeof(text)), prefix_len);
		return;
	}
	if (ttl_ms > 0)
		nftset_add(kernel.writer, kind, addr, ttl_ms);
	else
		nftset_del(kernel.writer, kind, addr);
}

int
kernel_init(const struct config *c)
{
	if (!c->kernel_sets)
		return 0;
	collect_own_addresses();
	kernel.writer = nftset_open(mxd->base, c->nft_table, (uint16_t)c->listen_port);
	if (kernel.writer == NULL) {
		log_warn("kernel: cannot open the nftables set writer; refusals stay in mxtierd only");
		return -1;
	}
	history_set_listing_hook(kernel_listing);
	log_info("kernel sets on: table inet %s", c->nft_table);
	return 0;
}

void
kernel_reconfigure(const struct config *c)
{
	if (kernel.writer && !c->kernel_sets) {
		kernel_shutdown();
		return;
	}
	if (kernel.writer == NULL && c->kernel_sets) {
		kernel_init(c);
		return;
	}
	collect_own_addresses();
	/* SIGHUP follows a ruleset reload (nft -f replaces the table, emptying its sets): put them back. */
	if (kernel.writer)
		nftset_reseed(kernel.writer);
}

void
kernel_shutdown(void)
{
	history_set_listing_hook(NULL);
	if (kernel.writer) {
		nftset_flush(kernel.writer);
		nftset_close(kernel.writer);
		kernel.writer = NULL;
	}
}
