/*
 * nftset_stats.c - what the kernel set writer counts and how it reports
 * failures. Every failure is counted in struct nftset_stats where it
 * happens; the log lines about them are rate-limited (one per
 * LOG_INTERVAL_MS per kind, with the number suppressed since), so a kernel
 * that refuses every write cannot flood the log.
 */
#include "nftset_internal.h"

#include <string.h>

#include "log.h"

/* ratelimit_pass - true at most once per LOG_INTERVAL_MS; the others are counted for the next line. */
static bool
ratelimit_pass(struct ratelimit *rl, uint64_t *suppressed)
{
	int64_t now = nftset_now_ms();

	if (rl->last != 0 && now - rl->last < LOG_INTERVAL_MS) {
		rl->suppressed++;
		return false;
	}
	rl->last = now;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

/* nftset_log_error - a failure (already counted by the caller), logged at most once per interval and kind. */
void
nftset_log_error(struct nftset *ns, struct ratelimit *rl, const char *what, int err)
{
	uint64_t suppressed;

	if (ratelimit_pass(rl, &suppressed))
		log_warn("nftset: table inet %s: %s: %s (%llu similar since last report)", ns->table, what,
		    strerror(err), (unsigned long long)suppressed);
}

/* nftset_log_dropped - a change refused because the shadow table is full: counted and logged. */
void
nftset_log_dropped(struct nftset *ns, const struct netaddr *key)
{
	char a[NETADDR_STRLEN];
	uint64_t suppressed;

	ns->stats.queue_dropped++;
	if (ratelimit_pass(&ns->rl_dropped, &suppressed))
		log_warn("nftset: queue full (%d elements), dropped change for %s (%llu more dropped since last report)",
		    NFTSET_QUEUE_MAX, netaddr_format(key, a, sizeof(a)), (unsigned long long)suppressed);
}

size_t
nftset_pending(const struct nftset *ns)
{
	if (ns == NULL)
		return 0;
	return ns->ndirty + (ns->tx.active || ns->tx.built ? ns->tx.nitems : 0) + (ns->restore_needed ? 1 : 0);
}

const struct nftset_stats *
nftset_stats(const struct nftset *ns)
{
	return &ns->stats;
}
