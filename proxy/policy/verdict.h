#ifndef MXTIER_VERDICT_H
#define MXTIER_VERDICT_H

#include <stdbool.h>
#include <stdint.h>

#include "reason.h"

struct session;

/* What the session does next, decided from the verdict. */
enum verdict_action {
	ACTION_CONTINUE = 0,	/* no decision yet: keep talking */
	ACTION_RELAY,		/* talk to the backend */
	ACTION_TEMPFAIL,	/* 4xx */
	ACTION_REJECT		/* 5xx */
};

/* The refusal a client gets at the greeting; the texts are in verdict.c. */
enum refusal {
	REFUSE_TEMPFAIL = 0,		/* a suspect: try again later (tarpit-able) */
	REFUSE_BAIT,
	REFUSE_TOO_MANY_SESSIONS,
	REFUSE_TOO_MANY_CLIENT_SESSIONS,
	REFUSE_BUSY,			/* load shedding, backend down */
	REFUSE_HELD,			/* a behaviour block: 4xx, never a bounce */
	REFUSE_DNSBL,
	REFUSE_BLOCKED,			/* an operator's block */
	REFUSE_COUNT
};

struct client_facts;
struct decision;

/*
 * The verdict: from a client's facts to a decision (verdict, reasons and
 * history effects) that the session engine applies. Pure functions of
 * their facts; each clears *d first and returns what the session does next.
 */

/* verdict_at_connect - listings and tier role, before DNS. */
enum verdict_action	verdict_at_connect(const struct client_facts *f, struct decision *d);
/* verdict_at_greeting - once DNS answered: DNS checks and the tier rules for suspects. */
enum verdict_action	verdict_at_greeting(const struct client_facts *f, struct decision *d);
/* verdict_at_command - after an unrecognised command (non-SMTP detection). */
enum verdict_action	verdict_at_command(const struct client_facts *f, struct decision *d);
/* verdict_at_mail - behaviour checks once the client asks to send mail. */
enum verdict_action	verdict_at_mail(const struct client_facts *f, struct decision *d);
/* verdict_at_rcpt - per recipient (trap recipients). */
enum verdict_action	verdict_at_rcpt(const struct client_facts *f, struct decision *d);
/* verdict_hard_failure - a hard protocol rule broken (pipelining after DATA, bare LF): reject, revoke a pass. */
void			verdict_hard_failure(const struct client_facts *f, enum reason r, struct decision *d);

/* verdict_pool_name - the client's name proves a mail pool: its domain and /24 may stand for it in history. */
bool			verdict_pool_name(const struct client_facts *f);
/* verdict_refusal - which refusal a greeting verdict (tempfail or reject) is answered with. */
enum refusal		verdict_refusal(const struct client_facts *f);
/* verdict_refusal_text - the reply for a refusal: a printf format taking the host name, then the client address. */
const char		*verdict_refusal_text(enum refusal r);

#endif
