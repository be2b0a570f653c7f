#include "stats.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "session_record.h"
#include "tls.h"

const unsigned stats_reply_bounds_ms[STATS_REPLY_BUCKETS] = { 1, 5, 10, 25, 50, 100, 250, 1000, 5000, 30000 };

void
stats_log(const struct stats *st)
{
	char reasons[1024] = "";
	size_t used = 0;

	for (int r = 0; r < REASON_COUNT; r++) {
		if (st->reasons[r] == 0)
			continue;
		used += (size_t)snprintf(reasons + used, sizeof(reasons) - used, "%s%s=%llu", used ? "," : "",
		    reason_name(r), (unsigned long long)st->reasons[r]);
		if (used >= sizeof(reasons))
			break;
	}
	log_info("stats sessions=%llu relay=%llu tempfail=%llu reject=%llu undecided=%llu messages=%llu "
	    "backend_failures=%llu probe_failures=%llu pool_parked=%llu pool_reused=%llu pool_stale=%llu accept_errors=%llu accept_paused=%llu dropped=%llu reasons=%s",
	    (unsigned long long)st->sessions, (unsigned long long)st->verdicts[VERDICT_RELAY],
	    (unsigned long long)st->verdicts[VERDICT_TEMPFAIL], (unsigned long long)st->verdicts[VERDICT_REJECT],
	    (unsigned long long)st->verdicts[VERDICT_NONE], (unsigned long long)st->messages_relayed,
	    (unsigned long long)st->backend_failures, (unsigned long long)st->backend_probe_failures,
	    (unsigned long long)st->backend_pool_parked, (unsigned long long)st->backend_pool_reused,
	    (unsigned long long)st->backend_pool_stale,
	    (unsigned long long)st->accept_errors, (unsigned long long)st->accept_paused,
	    (unsigned long long)st->dropped_overload, reasons[0] ? reasons : "-");
	tls_counters_log();
}

void
stats_session_end(struct stats *st, const struct session_record *r)
{
	st->verdicts[r->verdict]++;
	if ((unsigned)r->tier < TIER_COUNT)
		st->tier_verdicts[r->tier][r->verdict]++;
}

void
stats_backend_reply(struct stats *st, int64_t elapsed_us)
{
	unsigned b = 0;

	if (elapsed_us < 0)
		elapsed_us = 0;
	while (b < STATS_REPLY_BUCKETS && (uint64_t)elapsed_us > (uint64_t)stats_reply_bounds_ms[b] * 1000)
		b++;
	st->reply_buckets[b]++;
	st->reply_count++;
	st->reply_sum_us += (uint64_t)elapsed_us;
}
