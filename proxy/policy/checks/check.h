#ifndef MXTIER_CHECK_H
#define MXTIER_CHECK_H

#include <stdbool.h>

#include "verdict.h"

struct client_facts;

/*
 * The shared vocabulary of behaviour checks: each file in proxy/policy/checks/
 * defines one struct check, listed in verdict.c's table. A check only
 * reads the client's facts (facts.h); it never replies to the client and
 * changes nothing.
 */
enum check_result {
	CHECK_PASS = 0,
	CHECK_SUSPECT,
	CHECK_FAIL
};

enum check_stage {
	CHECK_AT_GREETING = 0,	/* DNS has answered, before the banner */
	CHECK_AT_COMMAND,	/* after each unrecognised command line */
	CHECK_AT_MAIL,		/* when the client asks to send mail */
	CHECK_AT_RCPT		/* for each recipient (s->current_rcpt) */
};

struct check {
	const char		*name;
	enum check_stage	 stage;
	enum check_result	(*run)(const struct client_facts *f, enum reason *reason);
};

extern const struct check check_pregreet;
extern const struct check check_pipelining;
extern const struct check check_non_smtp;
extern const struct check check_no_rdns;
extern const struct check check_rdns_mismatch;
extern const struct check check_dynamic_rdns;
extern const struct check check_dynamic_range;
extern const struct check check_dnsbl;
extern const struct check check_helo_invalid;
extern const struct check check_trap_recipient;
extern const struct check check_reputation;

/* A net negative DNSBL score: listed by allow-lists. */
bool dnsbl_allowlisted(const struct client_facts *f);

/* Used by the command reader to record what non_smtp judges. */
bool non_smtp_line(const char *verb);

#endif
