/* reason.c - the names of verdicts and reason codes. */
#include "reason.h"

static const char *const reason_names[REASON_COUNT] = {
	[REASON_ALLOWLIST] = "allowlist",
	[REASON_BLOCKLIST] = "blocklist",
	[REASON_BAIT] = "bait",
	[REASON_PREGREET] = "pregreet",
	[REASON_NON_SMTP] = "non-smtp",
	[REASON_PIPELINING] = "pipelining",
	[REASON_BARE_LF] = "bare-lf",
	[REASON_TOO_MANY_SESSIONS] = "too-many-sessions",
	[REASON_TOO_MANY_CLIENT_SESSIONS] = "too-many-client-sessions",
	[REASON_TIMEOUT] = "timeout",
	[REASON_TOO_MANY_ERRORS] = "too-many-errors",
	[REASON_BACKEND_DOWN] = "backend-down",
	[REASON_SHUTDOWN] = "shutdown",
	[REASON_PASSED] = "passed",
	[REASON_RETRIED] = "retried",
	[REASON_NO_RDNS] = "no-rdns",
	[REASON_RDNS_MISMATCH] = "rdns-mismatch",
	[REASON_DYNAMIC_RDNS] = "dynamic-rdns",
	[REASON_DYNAMIC_RANGE] = "dynamic-range",
	[REASON_HELO_INVALID] = "helo-invalid",
	[REASON_DNSBL] = "dnsbl",
	[REASON_DNSWL] = "dnswl",
	[REASON_DNS_UNKNOWN] = "dns-unknown",
	[REASON_TRAP_RECIPIENT] = "trap-recipient",
	[REASON_SKIPPED_PRIMARY] = "skipped-primary",
	[REASON_BAIT_FIRST_CONTACT] = "bait-first-contact",
	[REASON_HIT_AND_RUN] = "hit-and-run",
	[REASON_LOAD_SHED] = "load-shed",
	[REASON_MANUAL] = "manual",
	[REASON_REPUTATION_GOOD] = "reputation-good",
	[REASON_REPUTATION_BAD] = "reputation-bad",
};

static const char *const verdict_names[VERDICT_COUNT] = {
	[VERDICT_NONE] = "none",
	[VERDICT_RELAY] = "relay",
	[VERDICT_TEMPFAIL] = "tempfail",
	[VERDICT_REJECT] = "reject",
};

const char *
reason_name(enum reason r)
{
	return (unsigned)r < REASON_COUNT && reason_names[r] ? reason_names[r] : "?";
}

const char *
verdict_name(enum verdict v)
{
	return (unsigned)v < VERDICT_COUNT ? verdict_names[v] : "?";
}
