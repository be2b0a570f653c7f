/*
 * verdict.c - from tier role, listings and check results to relay,
 * tempfail or reject. Behaviour checks plug in as a file in checks/ and a
 * row in check_table; the DNS, history and database inputs of later work
 * join here the same way.
 */
#include "verdict.h"

#include "checks/check.h"
#include "session.h"

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
};

static const char *const verdict_names[VERDICT_COUNT] = {
	[VERDICT_NONE] = "none",
	[VERDICT_RELAY] = "relay",
	[VERDICT_TEMPFAIL] = "tempfail",
	[VERDICT_REJECT] = "reject",
};

/* Every behaviour check, in the order they run. */
static const struct check *const check_table[] = {
	&check_non_smtp,
	&check_pregreet,
	&check_pipelining,
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

static enum verdict_action
action_for(enum verdict v)
{
	switch (v) {
	case VERDICT_RELAY:
		return ACTION_RELAY;
	case VERDICT_TEMPFAIL:
		return ACTION_TEMPFAIL;
	case VERDICT_REJECT:
		return ACTION_REJECT;
	default:
		return ACTION_CONTINUE;
	}
}

/* run_checks - run the checks of one stage; every reason is recorded, the worst result returned. */
static enum check_result
run_checks(struct session *s, enum check_stage stage)
{
	enum check_result worst = CHECK_PASS;

	for (size_t i = 0; i < sizeof(check_table) / sizeof(check_table[0]); i++) {
		const struct check *c = check_table[i];
		enum reason reason = REASON_COUNT;
		enum check_result r;

		if (c->stage != stage)
			continue;
		r = c->run(s, &reason);
		if (r == CHECK_PASS)
			continue;
		if (reason < REASON_COUNT)
			session_add_reason(s, reason);
		if (r > worst)
			worst = r;
	}
	return worst;
}

enum verdict_action
verdict_at_connect(struct session *s)
{
	const struct config *c = s->config;

	/* The bait answers 4xx whatever else is true of the client. */
	if (s->tier == TIER_BAIT) {
		session_set_verdict(s, VERDICT_TEMPFAIL, REASON_BAIT);
		return ACTION_TEMPFAIL;
	}
	if (cidr_list_contains(&c->allow_networks, &s->client)) {
		session_set_verdict(s, VERDICT_RELAY, REASON_ALLOWLIST);
		return ACTION_RELAY;
	}
	if (cidr_list_contains(&c->block_networks, &s->client)) {
		session_set_verdict(s, VERDICT_REJECT, REASON_BLOCKLIST);
		return ACTION_REJECT;
	}
	return ACTION_CONTINUE;
}

enum verdict_action
verdict_at_command(struct session *s)
{
	if (s->verdict == VERDICT_RELAY && (s->reasons & (1u << REASON_ALLOWLIST)))
		return ACTION_CONTINUE;
	if (run_checks(s, CHECK_AT_COMMAND) == CHECK_FAIL) {
		session_set_verdict(s, VERDICT_REJECT, REASON_COUNT);
		return ACTION_REJECT;
	}
	return ACTION_CONTINUE;
}

enum verdict_action
verdict_at_mail(struct session *s)
{
	if (s->verdict != VERDICT_NONE)
		return action_for(s->verdict);
	switch (run_checks(s, CHECK_AT_MAIL)) {
	case CHECK_FAIL:
		s->verdict = VERDICT_REJECT;
		break;
	case CHECK_SUSPECT:
		/* Tier rules for suspects (tempfail at the primary) come with retry tracking. */
	case CHECK_PASS:
		s->verdict = VERDICT_RELAY;
		break;
	}
	return action_for(s->verdict);
}
