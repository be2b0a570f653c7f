/*
 * control_status.c - the "status" answer: every counter the daemon keeps,
 * as "name value" lines, the engine's own and those the privileged side
 * sends it (the set writer's, the channel's, the HTTP process's). The
 * HTTP process turns the same lines into /metrics and /api/live, so a
 * counter added here reaches mxtierctl status, Prometheus and the
 * dashboard at once.
 */
#include "control.h"

#include <event2/buffer.h>
#include <string.h>

#include "daemon.h"
#include "db.h"
#include "history.h"
#include "nftset.h"
#include "priv.h"
#include "tls.h"

static struct priv_parent_stats parent_stats;

/* parent_stats_cb - the privileged side's counters, sent when they change. */
static void
parent_stats_cb(const void *payload, size_t len)
{
	memcpy(&parent_stats, payload, sizeof(parent_stats));
}

void
control_status_listen(void)
{
	priv_on(PRIV_MSG_PARENT_STATS, parent_stats_cb);
}

#define LINE(name, v)	evbuffer_add_printf(out, "%s %llu\n", (name), (unsigned long long)(v))

static void
status_engine_counters(struct evbuffer *out, const struct stats *st)
{
	uint64_t cumulative = 0;

	LINE("backend_failures", st->backend_failures);
	LINE("backend_probe_failures", st->backend_probe_failures);
	LINE("backend_pool_parked", st->backend_pool_parked);
	LINE("backend_pool_reused", st->backend_pool_reused);
	LINE("backend_pool_stale", st->backend_pool_stale);
	LINE("accept_errors", st->accept_errors);
	LINE("accept_paused", st->accept_paused);
	LINE("dropped_overload", st->dropped_overload);
	LINE("dns_queries", st->dns_queries);
	LINE("dns_unknown", st->dns_unknown);
	LINE("dns_cache_hits", st->dns_cache_hits);
	LINE("dns_cache_evictions", st->dns_cache_evictions);
	LINE("history_evictions", st->history_evictions);
	LINE("load_shed_entries", st->load_shed_entries);
	LINE("tls_handshakes", tls_counters.handshakes);
	LINE("tls_handshake_failures", tls_counters.handshake_failures);
	LINE("tls_handshake_timeouts", tls_counters.handshake_timeouts);
	LINE("tls_errors", tls_counters.errors);
	LINE("tls_discarded_sessions", tls_counters.discarded_sessions);
	LINE("tls_discarded_bytes", tls_counters.discarded_bytes);
	LINE("tls_backend_handshakes", tls_counters.backend_handshakes);
	LINE("tls_backend_failures", tls_counters.backend_failures);
	for (int t = 0; t < TIER_COUNT; t++)
		for (int v = 0; v < VERDICT_COUNT; v++)
			evbuffer_add_printf(out, "tier_verdict_%s_%s %llu\n", tier_role_name(t), verdict_name(v),
			    (unsigned long long)st->tier_verdicts[t][v]);
	/* Cumulative, as Prometheus buckets are: "le" = at most that many milliseconds. */
	for (int b = 0; b < STATS_REPLY_BUCKETS; b++) {
		cumulative += st->reply_buckets[b];
		evbuffer_add_printf(out, "backend_reply_le_ms_%u %llu\n", stats_reply_bounds_ms[b],
		    (unsigned long long)cumulative);
	}
	LINE("backend_reply_le_ms_inf", cumulative + st->reply_buckets[STATS_REPLY_BUCKETS]);
	LINE("backend_reply_count", st->reply_count);
	LINE("backend_reply_sum_us", st->reply_sum_us);
}

static void
status_parent_counters(struct evbuffer *out, const struct priv_parent_stats *ps)
{
	evbuffer_add_printf(out, "kernel_sets %s\n", ps->kernel_sets ? "yes" : "no");
	LINE("kernel_set_adds", ps->set_adds);
	LINE("kernel_set_dels", ps->set_dels);
	LINE("kernel_set_batches", ps->set_batches);
	LINE("kernel_set_acks_ok", ps->set_acks_ok);
	LINE("kernel_set_enoent", ps->set_enoent);
	LINE("kernel_set_full", ps->set_full);
	LINE("kernel_set_errors", ps->set_errors);
	LINE("kernel_set_queue_dropped", ps->set_queue_dropped);
	LINE("kernel_set_restores", ps->set_restores);
	LINE("kernel_set_reseeded", ps->set_reseeded);
	for (unsigned i = 0; i < NFTSET_SETS; i++)
		evbuffer_add_printf(out, "kernel_set_elements_%s %llu\n", nftset_set_name(i),
		    (unsigned long long)ps->set_elements[i]);
	LINE("kernel_listings_refused", ps->kernel_refused);
	LINE("privsep_from_engine", ps->from_engine);
	LINE("privsep_from_engine_refused", ps->from_engine_refused);
	LINE("privsep_to_engine", ps->to_engine);
	LINE("privsep_to_engine_dropped", ps->to_engine_dropped);
	evbuffer_add_printf(out, "http %s\n", ps->http_up ? "up" : "off");
	LINE("http_requests", ps->http_requests);
	LINE("http_refused", ps->http_refused);
}

void
control_status(struct evbuffer *out)
{
	const struct stats *st = &mxd->stats;
	struct db_stats ds;

	evbuffer_add_printf(out, "ok\n");
	evbuffer_add_printf(out, "sessions_active %zu\n", mxd->active_sessions);
	LINE("sessions_total", st->sessions);
	evbuffer_add_printf(out, "backend %s\n", mxd->backend_up ? "up" : "down");
	evbuffer_add_printf(out, "privsep %s\n", priv_split() ? "yes" : "no");
	LINE("privsep_dropped", priv_engine_dropped());
	evbuffer_add_printf(out, "shedding %s\n", mxd->shedding ? reason_name(mxd->shed_reason) : "no");
	evbuffer_add_printf(out, "history_entries %zu\n", history_entries());
	LINE("messages_relayed", st->messages_relayed);
	db_get_stats(&ds);
	evbuffer_add_printf(out, "db_enabled %s\n", db_enabled() ? "yes" : "no");
	evbuffer_add_printf(out, "db_connected %s\n", ds.connected ? "yes" : "no");
	LINE("db_written", ds.written);
	LINE("db_dropped", ds.dropped);
	LINE("db_sessions_dropped", ds.sessions_dropped);
	LINE("db_errors", ds.errors);
	LINE("db_reconnects", ds.reconnects);
	LINE("db_reads_late", ds.reads_late);
	LINE("db_reads_unwaited", ds.reads_unwaited);
	evbuffer_add_printf(out, "db_queue %zu\n", ds.queued);
	for (int v = 0; v < VERDICT_COUNT; v++)
		evbuffer_add_printf(out, "verdict_%s %llu\n", verdict_name(v), (unsigned long long)st->verdicts[v]);
	for (int r = 0; r < REASON_COUNT; r++)
		evbuffer_add_printf(out, "reason_%s %llu\n", reason_name(r), (unsigned long long)st->reasons[r]);
	status_engine_counters(out, st);
	status_parent_counters(out, &parent_stats);
}
