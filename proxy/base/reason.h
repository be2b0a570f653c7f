#ifndef MXTIER_REASON_H
#define MXTIER_REASON_H

/*
 * The vocabulary every part speaks: verdicts and their stable reason codes
 * (kebab-case names). Logs, counters, the database, the control socket and
 * the dashboards use these; they depend on nothing else.
 */

/* Stable reason codes: logs, metrics and (later) the database speak these. */
enum reason {
	REASON_ALLOWLIST = 0,
	REASON_BLOCKLIST,
	REASON_BAIT,
	REASON_PREGREET,
	REASON_NON_SMTP,
	REASON_PIPELINING,
	REASON_BARE_LF,
	REASON_TOO_MANY_SESSIONS,
	REASON_TOO_MANY_CLIENT_SESSIONS,
	REASON_TIMEOUT,
	REASON_TOO_MANY_ERRORS,
	REASON_BACKEND_DOWN,
	REASON_SHUTDOWN,
	REASON_PASSED,			/* a pass entry from an earlier retry */
	REASON_RETRIED,
	REASON_NO_RDNS,
	REASON_RDNS_MISMATCH,
	REASON_DYNAMIC_RDNS,
	REASON_DYNAMIC_RANGE,
	REASON_HELO_INVALID,
	REASON_DNSBL,
	REASON_DNSWL,
	REASON_DNS_UNKNOWN,		/* a lookup timed out: unknown is not clean */
	REASON_TRAP_RECIPIENT,
	REASON_SKIPPED_PRIMARY,
	REASON_BAIT_FIRST_CONTACT,
	REASON_HIT_AND_RUN,
	REASON_LOAD_SHED,
	REASON_MANUAL,			/* an operator's block (mxtierctl block add) */
	REASON_REPUTATION_GOOD,		/* shared reputation score >= 10 */
	REASON_REPUTATION_BAD,		/* shared reputation score <= -10 */
	REASON_COUNT			/* at most 64: reasons are a bit set */
};

enum verdict {
	VERDICT_NONE = 0,	/* not decided yet (client left early) */
	VERDICT_RELAY,
	VERDICT_TEMPFAIL,
	VERDICT_REJECT,
	VERDICT_COUNT
};

const char	*reason_name(enum reason r);
const char	*verdict_name(enum verdict v);

#endif
