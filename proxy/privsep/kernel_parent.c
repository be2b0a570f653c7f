/*
 * kernel_parent.c - the privileged half of the kernel sets (the privileged
 * parent runs it): listings from the engine checked and handed to the
 * nftables set writer. The engine only says "list this address for this
 * long" (kernel_engine.c); this side owns the netlink writer and decides
 * what may be written. Some addresses are never written whatever the verdict:
 * loopback, the backend, the tier addresses and the appliance's own, so
 * no listing (and no compromised engine) can cut the appliance off from
 * its own network.
 */
#include "kernel.h"

#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "nftset.h"
#include "priv.h"

#define OWN_ADDRESSES_MAX 256

static struct {
	struct nftset	*writer;
	struct netaddr	 own[OWN_ADDRESSES_MAX];
	size_t		 own_count;
	uint64_t	 refused;
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

/*
 * kernel_priv_excluded - would a/prefix_len cover loopback, the backend, a
 * tier or an own address? The engine's value is normalised first (mapped
 * IPv4 becomes IPv4, as the writer writes it) and masked, so that the
 * check sees exactly the network that would be written.
 */
bool
kernel_priv_excluded(const struct netaddr *engine_addr, unsigned prefix_len)
{
	const struct config *c = mxd->config;
	struct netaddr norm = *engine_addr;
	const struct netaddr *a = &norm;
	struct cidr covered;

	if (norm.family == AF_INET6 && prefix_len > 128)
		return true;
	netaddr_normalize(&norm);
	if (engine_addr->family == AF_INET6 && norm.family == AF_INET)
		prefix_len = prefix_len >= 96 ? prefix_len - 96 : 0;
	if (norm.family == AF_INET && prefix_len > 32)
		return true;
	netaddr_mask(&norm, prefix_len);
	covered.addr = norm;
	covered.prefix_len = prefix_len;
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

/* kernel_listing_refuse - a listing the engine should never have sent. */
static void
kernel_listing_refuse(const struct priv_kernel_listing *m, const char *why)
{
	kernel.refused++;
	log_warn("kernel: refused a listing from the engine: %s", why);
}

/* kernel_listing_cb - check one listing (every field) and hand it to the writer. */
static void
kernel_listing_cb(const void *payload, size_t len)
{
	const struct config *c = mxd->config;
	struct priv_kernel_listing m;
	char text[NETADDR_STRLEN];
	int64_t ttl_max;

	memcpy(&m, payload, sizeof(m));
	if (m.addr.family != AF_INET && m.addr.family != AF_INET6) {
		kernel_listing_refuse(&m, "address family");
		return;
	}
	if (m.prefix_len > (m.addr.family == AF_INET ? 32u : 128u) || m.block > 1 || m.ttl_ms < 0) {
		kernel_listing_refuse(&m, "prefix, kind or TTL out of range");
		return;
	}
	if (kernel.writer == NULL || (!m.block && !c->kernel_fast_path))
		return;
	/*
	 * The fast path DNATs to the backend, so only clients of the backend's
	 * family can take it; and an IPv6 trust element would be a whole /64
	 * (the writer keys IPv6 by prefix), trusting neighbours nobody vouched for.
	 */
	if (!m.block && (m.addr.family != c->backend_addr.family || m.addr.family == AF_INET6))
		return;
	/*
	 * The writer keys what it writes by the address alone: IPv4 per address
	 * (mapped IPv4 as IPv4), IPv6 per /64. Check that key, not the prefix the
	 * engine named, so no listing can reach an excluded neighbour.
	 */
	netaddr_normalize(&m.addr);
	m.prefix_len = m.addr.family == AF_INET ? 32 : 64;
	if (kernel_priv_excluded(&m.addr, m.prefix_len)) {
		log_info("kernel: not listing %s/%u (loopback, backend, tier or own address)",
		    netaddr_format(&m.addr, text, sizeof(text)), m.prefix_len);
		return;
	}
	if (m.ttl_ms == 0) {
		nftset_del(kernel.writer, m.block ? NFTSET_BLOCK : NFTSET_TRUST, &m.addr);
		return;
	}
	/* Kernel elements live at most as long as the config lets a verdict last; longer listings stay in mxtierd. */
	ttl_max = m.block ? c->block_ttl_max : c->pass_ttl;
	if (m.ttl_ms > ttl_max)
		m.ttl_ms = ttl_max;
	nftset_add(kernel.writer, m.block ? NFTSET_BLOCK : NFTSET_TRUST, &m.addr, m.ttl_ms);
}

void
kernel_priv_stats(struct priv_parent_stats *out)
{
	const struct nftset_stats *st;

	out->kernel_refused = kernel.refused;
	out->kernel_sets = kernel.writer != NULL;
	if (kernel.writer == NULL)
		return;
	st = nftset_stats(kernel.writer);
	out->set_adds = st->adds;
	out->set_dels = st->dels;
	out->set_batches = st->batches;
	out->set_acks_ok = st->acks_ok;
	out->set_enoent = st->enoent;
	out->set_full = st->enfile;
	out->set_errors = st->other_errors;
	out->set_queue_dropped = st->queue_dropped;
	out->set_restores = st->restores;
	out->set_reseeded = st->reseeded;
	nftset_elements(kernel.writer, out->set_elements);
}

int
kernel_priv_start(const struct config *c)
{
	collect_own_addresses();
	priv_on(PRIV_MSG_KERNEL_LISTING, kernel_listing_cb);
	if (!c->kernel_sets)
		return 0;
	kernel.writer = nftset_open(mxd->base, c->nft_table, (uint16_t)c->listen_port);
	if (kernel.writer == NULL) {
		log_warn("kernel: cannot open the nftables set writer; refusals stay in mxtierd only");
		return -1;
	}
	log_info("kernel sets on: table inet %s", c->nft_table);
	return 0;
}

void
kernel_priv_reconfigure(const struct config *c)
{
	if (kernel.writer && !c->kernel_sets) {
		kernel_priv_stop();
		return;
	}
	if (kernel.writer == NULL && c->kernel_sets) {
		kernel_priv_start(c);
		return;
	}
	collect_own_addresses();
	/* SIGHUP follows a ruleset reload (nft -f replaces the table, emptying its sets): put them back. */
	if (kernel.writer)
		nftset_reseed(kernel.writer);
}

void
kernel_priv_stop(void)
{
	if (kernel.writer) {
		nftset_flush(kernel.writer);
		nftset_close(kernel.writer);
		kernel.writer = NULL;
	}
}
