/*
 * pipelining.c - commands sent in a burst before EHLO announced PIPELINING
 * (RFC 2920 allows it only after the EHLO reply). Ratware pushes the whole
 * transaction at once; MTAs that said HELO wait for each reply.
 */
#include "checks/check.h"
#include "facts.h"

static enum check_result
pipelining_run(const struct client_facts *f, enum reason *reason)
{
	if (!f->obs.pipelined_before_ehlo)
		return CHECK_PASS;
	*reason = REASON_PIPELINING;
	return CHECK_FAIL;
}

const struct check check_pipelining = { "pipelining", CHECK_AT_MAIL, pipelining_run };
