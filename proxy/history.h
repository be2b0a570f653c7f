#ifndef MXTIER_HISTORY_H
#define MXTIER_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "netaddr.h"
#include "verdict.h"

/*
 * Contact history: (client, tier, time, verdict) remembered per exact
 * address, per /24 (IPv4) or /64 (IPv6) and per forward-confirmed rDNS
 * registered domain, so a big sender retrying from another address of its
 * pool is recognised. Bounded by history_size (least recently used entries
 * go first, counted); pending retries that expire unanswered are swept and
 * counted as hit-and-run.
 */

/* Who a client is, for history purposes. domain is "" when not forward-confirmed. */
struct history_client {
	struct netaddr	addr;
	const char	*domain;
};

int	history_init(void);
void	history_shutdown(void);
size_t	history_entries(void);

void	history_record_contact(const struct history_client *c, enum tier_role tier);
/* history_lower_tier_contact - primary/secondary contact within window (bait-first-contact test). */
bool	history_lower_tier_contact(const struct history_client *c, int64_t window_ms);
bool	history_primary_contact(const struct history_client *c, int64_t window_ms);

/* Pending retries: set by a primary deferral, answered by a retry. */
void	history_set_pending(const struct history_client *c);
/* history_pending_age - age in ms of the oldest pending retry within retry_window, or -1. */
int64_t	history_pending_age(const struct history_client *c);
/* history_grant_pass - the client retried: clear its pending retries; pass for pass_ttl (address and domain). */
void	history_grant_pass(const struct history_client *c);
bool	history_passed(const struct history_client *c);

/* Blocks: escalate block_ttl up to block_ttl_max for repeat offenders; returns the TTL in ms. */
int64_t	history_block(const struct history_client *c, enum reason why);
/* history_blocked - true (and *why set) while the address (IPv6: its /64) is blocked. */
bool	history_blocked(const struct history_client *c, enum reason *why);

#endif
