#ifndef MXTIER_HISTORY_H
#define MXTIER_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "netaddr.h"
#include "reason.h"

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

/* Pending retries: set by a primary deferral, answered by a retry. */
void	history_set_pending(const struct history_client *c);
/*
 * history_pending_age - age in ms of the oldest pending retry within
 * retry_window, or -1: the address's own, its domain's, and its /24 or /64's
 * only when a domain is given (a name that proves a mail pool).
 */
int64_t	history_pending_age(const struct history_client *c);
/* history_grant_pass - the client retried: clear its pending retries; pass for pass_ttl (address and domain). */
void	history_grant_pass(const struct history_client *c);
bool	history_passed(const struct history_client *c);
/* history_allowed - the address holds an operator's allow (mxtierctl allow): trusted like allow_networks. */
bool	history_allowed(const struct history_client *c);
/* history_revoke_pass - end the pass of the address and its domain (a hard protocol failure). */
void	history_revoke_pass(const struct history_client *c);

/* Blocks: escalate block_ttl up to block_ttl_max for repeat offenders; returns the TTL in ms. */
int64_t	history_block(const struct history_client *c, enum reason why);
/* history_blocked - true (and *why set) while the address (IPv6: its /64) is blocked. */
bool	history_blocked(const struct history_client *c, enum reason *why);

/* Operator listings (mxtierctl block/allow). ttl_ms > 0. */
void	history_block_manual(const struct history_client *c, int64_t ttl_ms);
bool	history_unblock(const struct history_client *c);
void	history_allow(const struct history_client *c, int64_t ttl_ms);
bool	history_unallow(const struct history_client *c);

/* Listing: fn gets the key without its kind prefix ("192.0.2.7", "2001:db8::/64", "example.org"). */
typedef void (*history_visit_fn)(const char *key, int64_t remaining_ms, enum reason why, unsigned count, void *arg);
void	history_foreach_block(history_visit_fn fn, void *arg);
void	history_foreach_pass(history_visit_fn fn, void *arg);

/*
 * Where blocks and passes go besides memory (the kernel sets): called with
 * the address (IPv6 blocks: the /64 prefix) and the TTL; ttl_ms 0 removes.
 */
typedef void (*history_listing_hook)(const struct netaddr *addr, unsigned prefix_len, int64_t ttl_ms, bool block);
void	history_set_listing_hook(history_listing_hook hook);

/*
 * News for peers (the database): every change of a history key, so other
 * appliances can judge the same sender as one history. Times are ms from
 * now (0 = nothing to say); the hook must not call back into history.
 */
struct history_news {
	const char	*key;		/* "a:ADDR", "p:PREFIX/LEN", "d:DOMAIN" */
	int		 tier;		/* contact at this tier, or -1 */
	bool		 pending_set;
	bool		 pending_clear;
	int64_t		 pass_ms;
	int64_t		 block_ms;
	enum reason	 block_reason;
};
typedef void (*history_news_hook)(const struct history_news *news);
void	history_set_news_hook(history_news_hook hook);

/* history_merge - what a peer knows about key (ages and remaining times in ms, -1 = none); max wins. */
void	history_merge(const char *key, const int64_t contact_age[TIER_COUNT], int64_t pending_age, int64_t pass_left,
	    int64_t block_left, enum reason block_reason);
/* history_keys - the keys a client is known by (domain only when given); returns how many. */
int	history_keys(const struct history_client *c, char keys[3][300]);

#endif
