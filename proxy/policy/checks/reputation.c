/*
 * reputation.c - an address whose reputation across all appliances sharing
 * the database is poor (score <= -10: hit-and-run, bait-first, traps,
 * rejections outweigh what it delivered) is suspicious: deferred at the
 * primary like any suspect, so a real MTA still gets through by retrying.
 * Refusing it outright would make one bad day a permanent ban.
 */
#include "checks/check.h"
#include "facts.h"

static enum check_result
reputation_run(const struct client_facts *f, enum reason *reason)
{
	if (f->reputation >= 0)
		return CHECK_PASS;
	*reason = REASON_REPUTATION_BAD;
	return CHECK_SUSPECT;
}

const struct check check_reputation = { "reputation-bad", CHECK_AT_GREETING, reputation_run };
