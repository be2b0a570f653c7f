#ifndef MXTIER_FACTS_H
#define MXTIER_FACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dns_status.h"
#include "netaddr.h"
#include "reason.h"

/*
 * What the policy (checks and verdict) knows about one client at one
 * moment. The session engine fills it from the session, the resolver's
 * answers, the contact history and the database's listings; the policy
 * reads nothing else: no session, no socket, no DNS, no database. So every
 * rule can be tested from a table of facts (tests/unit/test_verdict.c).
 */

/* What DNS said about the client. */
struct client_dns_facts {
	enum dns_status	 ptr_status;
	const char	*ptr_name;		/* "" when none */
	enum dns_status	 forward_status;
	bool		 fcrdns;		/* the PTR name resolves back to the address */
	const char	*domain;		/* registered domain of ptr_name when forward-confirmed, else "" */
	int		 dnsbl_score;
	bool		 dnsbl_unknown;		/* a DNSBL site did not answer in time */
};

/* What the session saw the client do. */
struct client_observations {
	size_t	pregreet_bytes;		/* sent before the last banner line */
	bool	non_smtp_command;	/* HTTP verb, header line, ... */
	bool	pipelined_before_ehlo;
};

/* What the contact history (this appliance and its peers) says about the client. */
struct client_history_facts {
	bool		 blocked;
	enum reason	 block_reason;
	bool		 passed;		/* a pass entry for the address (or its pool domain) */
	bool		 allowed;		/* an operator's allow for the address (mxtierctl allow) */
	int64_t		 pending_age;		/* ms since the oldest pending retry that counts for it, -1 none */
	bool		 lower_tier_contact;	/* primary or secondary contact within bait_window */
};

struct client_facts {
	const struct config	*config;
	enum tier_role		 tier;
	struct netaddr		 client;
	struct client_dns_facts	 dns;
	struct client_observations obs;
	const char		*helo;		/* "" before HELO/EHLO */
	const char		*rcpt;		/* the recipient being checked, "" otherwise */
	int			 listing;	/* operator listing (database): > 0 block, < 0 allow, 0 none */
	int			 reputation;	/* shared reputation: > 0 good, < 0 bad, 0 neutral or unknown */
	struct client_history_facts history;
	bool			 lower_tiers_healthy;	/* primary not shedding, backend up */
	bool			 shedding;
	enum reason		 shed_reason;
	/* What this session has decided so far. */
	enum verdict		 verdict;
	uint64_t		 reasons;
};

/* What the session must do to the history as a consequence of a decision. */
enum policy_effect {
	EFFECT_RECORD_CONTACT	= 1 << 0,	/* a contact at facts.tier */
	EFFECT_SET_PENDING	= 1 << 1,	/* a primary deferral: a retry is awaited */
	EFFECT_GRANT_PASS	= 1 << 2,	/* the client retried: pass for pass_ttl */
	EFFECT_BLOCK		= 1 << 3,	/* block (escalating block_ttl), decision.block_reason */
	EFFECT_REVOKE_PASS	= 1 << 4	/* a hard protocol failure ends the pass it held or earned */
};

struct decision {
	enum verdict	 verdict;	/* VERDICT_NONE: unchanged */
	uint64_t	 reasons;	/* reason bits to add */
	unsigned	 effects;	/* enum policy_effect bits */
	enum reason	 block_reason;	/* with EFFECT_BLOCK */
};

static inline bool
facts_has_reason(const struct client_facts *f, enum reason r)
{
	return (f->reasons & (UINT64_C(1) << r)) != 0;
}

#endif
