#ifndef MXTIER_CHECK_H
#define MXTIER_CHECK_H

#include "verdict.h"

struct session;

/*
 * The shared vocabulary of behaviour checks: each file in proxy/checks/
 * defines one struct check, listed in verdict.c's table. A check only
 * reads the session's observations; it never replies to the client.
 */
enum check_result {
	CHECK_PASS = 0,
	CHECK_SUSPECT,
	CHECK_FAIL
};

enum check_stage {
	CHECK_AT_COMMAND = 0,	/* after each unrecognised command line */
	CHECK_AT_MAIL		/* when the client asks to send mail */
};

struct check {
	const char		*name;
	enum check_stage	 stage;
	enum check_result	(*run)(const struct session *s, enum reason *reason);
};

extern const struct check check_pregreet;
extern const struct check check_pipelining;
extern const struct check check_non_smtp;

/* Used by the command reader to record what non_smtp judges. */
#include <stdbool.h>
bool non_smtp_line(const char *verb);

#endif
