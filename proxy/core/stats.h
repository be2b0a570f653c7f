#ifndef MXTIER_STATS_H
#define MXTIER_STATS_H

#include <stdint.h>

#include "config.h"
#include "reason.h"

/* Upper bounds (ms) of the backend reply time histogram's buckets; the last, +Inf, is implied. */
#define STATS_REPLY_BUCKETS	10
extern const unsigned stats_reply_bounds_ms[STATS_REPLY_BUCKETS];

/* Counters; updated where the event happens, printed on SIGUSR1 and at exit. */
struct stats {
	uint64_t	sessions;
	uint64_t	verdicts[VERDICT_COUNT];
	uint64_t	reasons[REASON_COUNT];
	uint64_t	messages_relayed;
	uint64_t	backend_failures;
	uint64_t	backend_probe_failures;
	uint64_t	backend_pool_parked;	/* connections given back at a session's end */
	uint64_t	backend_pool_reused;	/* sessions that took one */
	uint64_t	backend_pool_stale;	/* taken ones that failed before use: reconnected */
	uint64_t	accept_errors;
	uint64_t	accept_paused;
	uint64_t	dropped_overload;
	uint64_t	dns_queries;
	uint64_t	dns_unknown;
	uint64_t	dns_cache_hits;
	uint64_t	dns_cache_evictions;
	uint64_t	history_evictions;
	uint64_t	load_shed_entries;
	uint64_t	tier_verdicts[TIER_COUNT][VERDICT_COUNT];	/* sessions by the tier they came to */
	/* Backend reply time: a command (or end-of-data) sent to the reply read. */
	uint64_t	reply_buckets[STATS_REPLY_BUCKETS + 1];	/* not cumulative; last = beyond the last bound */
	uint64_t	reply_count;
	uint64_t	reply_sum_us;
};

struct session_record;

void	stats_log(const struct stats *st);
/* stats_session_end - a session's record counted (session_free). */
void	stats_session_end(struct stats *st, const struct session_record *r);
/* stats_backend_reply - one backend reply that took elapsed_us. */
void	stats_backend_reply(struct stats *st, int64_t elapsed_us);

#endif
