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
	REASON_COUNT
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
/* verdict_at_command - after an unrecognised command (non-SMTP detection). */
enum verdict_action	verdict_at_command(struct session *s);
/* verdict_at_mail - behaviour checks once the client asks to send mail. */
enum verdict_action	verdict_at_mail(struct session *s);

#endif
