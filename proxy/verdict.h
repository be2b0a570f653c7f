#ifndef MXTIER_VERDICT_H
#define MXTIER_VERDICT_H

#include <stdint.h>

struct session;

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

/* What the session does next, decided from the verdict. */
enum verdict_action {
	ACTION_CONTINUE = 0,	/* no decision yet: keep talking */
	ACTION_RELAY,		/* talk to the backend */
	ACTION_TEMPFAIL,	/* 4xx */
	ACTION_REJECT		/* 5xx */
};

const char	*reason_name(enum reason r);
const char	*verdict_name(enum verdict v);

/* verdict_at_connect - listings and tier role, before the banner. */
enum verdict_action	verdict_at_connect(struct session *s);
/* verdict_at_greeting - once DNS answered: DNS checks and the tier rules for suspects. */
enum verdict_action	verdict_at_greeting(struct session *s);
/* verdict_at_rcpt - per recipient (trap recipients). */
enum verdict_action	verdict_at_rcpt(struct session *s);
/* verdict_at_command - after an unrecognised command (non-SMTP detection). */
enum verdict_action	verdict_at_command(struct session *s);
/* verdict_at_mail - behaviour checks once the client asks to send mail. */
enum verdict_action	verdict_at_mail(struct session *s);
/* verdict_hard_failure - a hard protocol rule broken (pipelining after DATA, bare LF): reject, revoke a pass. */
void			verdict_hard_failure(struct session *s, enum reason r);

#endif
