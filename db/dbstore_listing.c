/*
 * dbstore_listing.c - an operator's listing from the dashboard, written to
 * the shared listings table by the privileged side, as `mxtierctl
 * block|allow add|del` writes it. Every appliance follows it by NOTIFY
 * (this one too, through its reader). Queued on the writer, so a slow
 * database delays the row, never the SMTP engine.
 */
#include "dbstore_internal.h"

#include <stdio.h>

int
dbstore_listing_change(bool add, bool block, const char *network, int64_t ttl_ms, const char *set_by)
{
	char seconds[32];
	const char *values[4] = { network, block ? "block" : "allow", seconds, set_by };

	if (!store.enabled)
		return -1;
	snprintf(seconds, sizeof(seconds), "%lld", (long long)(ttl_ms / 1000));
	if (add)
		dbstore_writer_push(DB_EVENT_STATEMENT, "INSERT INTO listings (network, kind, reason, expires_at, set_by) "
		    "VALUES ($1::cidr, $2, 'manual', now() + make_interval(secs => $3::integer), $4)", 4, values);
	else
		dbstore_writer_push(DB_EVENT_STATEMENT, "DELETE FROM listings WHERE network = $1::cidr AND kind = $2", 2, values);
	return 0;
}
