/*
 * nftset_stats.c - what the kernel set writer counts and how it reports
 * failures. Every failure is counted in struct nftset_stats where it
 * happens; the log lines about them are rate-limited (one per
 * LOG_INTERVAL_MS per kind, with the number suppressed since), so a kernel
 * that refuses every write cannot flood the log.
 */
#include "nftset_internal.h"

#include <errno.h>
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

/*
 * nftset_error_text - what err means from the set writer: the kernel says
 * ENFILE for a set at its size limit, which strerror would call "Too many
 * open files in system".
 */
const char *
nftset_error_text(int err)
{
	return err == ENFILE ? "set full" : strerror(err);
}

/* nftset_log_error - a failure (already counted by the caller), logged at most once per interval and kind. */
void
nftset_log_error(struct nftset *ns, struct ratelimit *rl, const char *what, int err)
{
	uint64_t suppressed;

	if (ratelimit_pass(rl, &suppressed))
		log_warn("nftset: table inet %s: %s: %s (%llu similar since last report)", ns->table, what,
		    nftset_error_text(err), (unsigned long long)suppressed);
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

/* nftset_elements - per set (block4, block6, trust4, trust6), the elements mxtierd wants in the kernel now. */
void
nftset_elements(const struct nftset *ns, uint64_t out[NFTSET_SETS])
{
	int64_t now = nftset_now_ms();

	memset(out, 0, NFTSET_SETS * sizeof(out[0]));
	if (ns == NULL)
		return;
	for (uint32_t i = 0; i < ns->never_used && i < NFTSET_QUEUE_MAX; i++) {
		const struct shadow_entry *e = &ns->entries[i];

		if (e->in_use && e->set < NFTSET_SETS && entry_want_now(e, now))
			out[e->set]++;
	}
}

const char *
nftset_set_name(unsigned set)
{
	return set < SET_COUNT ? nftset_set_names[set] : "?";
}
