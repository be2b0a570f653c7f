#ifndef MXTIER_CTL_H
#define MXTIER_CTL_H

/*
 * ctl.h - what the parts of mxtierctl share: talking to the running
 * daemon, the commands each part implements, the resolver.
 */
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* What the daemon said to one control request. */
enum ctl_answer {
	CTL_ANSWER_OK = 0,		/* the reply starts with "ok" */
	CTL_ANSWER_ERROR,		/* the reply starts with "error: ..." */
	CTL_ANSWER_UNREACHABLE,		/* no control_socket, or nothing listens there: no daemon */
	CTL_ANSWER_BROKEN		/* reached, but no complete answer */
};

#define CTL_REPLY_MAX	(256 * 1024)

/*
 * ctl_control_ask - send one request line to the daemon and read its whole
 * reply into *reply (malloc'd, NUL-terminated, control characters replaced;
 * on UNREACHABLE/BROKEN it says why). The caller frees *reply.
 */
enum ctl_answer	ctl_control_ask(const struct config *c, const char *request, char **reply);

/* Commands: argv[0] is the command's name; the return value is the exit status. */
int	ctl_cmd_control(const struct config *c, int argc, char **argv);	/* status, block, allow */
int	ctl_cmd_db(const struct config *c, int argc, char **argv);		/* db migrate */
int	ctl_cmd_why(const struct config *c, int argc, char **argv);		/* why, rep */
int	ctl_cmd_tier(const struct config *c, int argc, char **argv);		/* tier list | set */
int	ctl_cmd_dns_check(const struct config *c, int argc, char **argv);	/* dns-check DOMAIN */
/* ctl_listing_change - block/allow with a database: the row, then the local daemon. */
int	ctl_listing_change(const struct config *c, int argc, char **argv);

#endif
