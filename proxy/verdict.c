/*
 * verdict.c - from tier role, listings and check results to relay,
 * tempfail or reject. Behaviour checks plug in as a file in checks/ and a
 * row in check_table; the DNS, history and database inputs of later work
 * join here the same way.
 */
#include "verdict.h"

#include "checks/check.h"
#include "daemon.h"
#include "db.h"
#include "history.h"
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

/* Every behaviour check, in the order they run; the stage column says when. */
static const struct check *const check_table[] = {
	&check_no_rdns,
	&check_rdns_mismatch,
	&check_dynamic_rdns,
	&check_dynamic_range,
	&check_dnsbl,
	&check_reputation,
	&check_non_smtp,
	&check_pregreet,
	&check_pipelining,
	&check_helo_invalid,
	&check_trap_recipient,
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

/*
 * run_checks - run the checks of one stage; every reason is recorded, the
 * worst result returned. fail_only: the client earned trust (retried,
 * passed, good reputation, DNSWL) that lifts the suspicions, so only the
 * hard failures (pregreet, pipelining, non-SMTP, trap) count and are noted.
 */
static enum check_result
run_checks_of(struct session *s, enum check_stage stage, bool fail_only)
{
	enum check_result worst = CHECK_PASS;

	for (size_t i = 0; i < sizeof(check_table) / sizeof(check_table[0]); i++) {
		const struct check *c = check_table[i];
		enum reason reason = REASON_COUNT;
		enum check_result r;

		if (c->stage != stage)
			continue;
		r = c->run(s, &reason);
		if (r == CHECK_PASS || (fail_only && r != CHECK_FAIL))
			continue;
		if (reason < REASON_COUNT)
			session_add_reason(s, reason);
		if (r > worst)
			worst = r;
	}
	return worst;
}

static enum check_result
run_checks(struct session *s, enum check_stage stage)
{
	return run_checks_of(s, stage, false);
}

/*
 * pool_name - the client's forward-confirmed name proves a mail pool: it
 * does not look dynamic and the address is in no dynamic range. Only such
 * a name earns a domain-wide pass, and only then do its /24 (or /64) and
 * domain siblings' pending retries count for it: one host of an ISP's
 * access pool that retried must not wave the whole ISP through.
 */
static bool
pool_name(const struct session *s)
{
	enum reason unused;

	return s->dns.fcrdns && s->dns.domain[0] && check_dynamic_rdns.run(s, &unused) == CHECK_PASS &&
	    check_dynamic_range.run(s, &unused) == CHECK_PASS;
}

static void
history_client_of(const struct session *s, struct history_client *hc)
{
	hc->addr = s->client;
	hc->domain = pool_name(s) ? s->dns.domain : NULL;
}

static bool
allowlisted(const struct session *s)
{
	return (s->reasons & (UINT64_C(1) << REASON_ALLOWLIST)) != 0;
}

/*
 * behaviour_block - blocks that come from what a sender did, not from an
 * operator or a reject-weight DNSBL. A real MTA caught by a DNS mistake
 * (the bait at MX 10) or an odd moment must keep its mail queued: these
 * are answered 4xx, never 5xx (Exim and Sendmail bounce at a 5xx).
 */
static bool
behaviour_block(enum reason why)
{
	return why == REASON_BAIT_FIRST_CONTACT || why == REASON_HIT_AND_RUN || why == REASON_TRAP_RECIPIENT;
}

/* lower_tiers_healthy - in one appliance the primary's health is ours: not shedding, backend up. */
static bool
lower_tiers_healthy(void)
{
	return !mxd->shedding && mxd->backend_up;
}

enum verdict_action
verdict_at_connect(struct session *s)
{
	const struct config *c = s->config;
	struct history_client hc = { .addr = s->client, .domain = NULL };
	enum reason why;
	int listing = db_listing(&s->client);

	/* A blocked client is refused at every tier, the bait included: no re-offending while blocked. */
	if (history_blocked(&hc, &why)) {
		if (behaviour_block(why)) {
			session_set_verdict(s, VERDICT_TEMPFAIL, why);
			return ACTION_TEMPFAIL;
		}
		session_set_verdict(s, VERDICT_REJECT, why);
		return ACTION_REJECT;
	}
	if (listing > 0) {
		session_set_verdict(s, VERDICT_REJECT, REASON_MANUAL);
		return ACTION_REJECT;
	}
	/* Otherwise the bait answers 4xx whatever is true; it decides about blocks once DNS has answered. */
	if (s->tier == TIER_BAIT)
		return ACTION_CONTINUE;
	if (cidr_list_contains(&c->allow_networks, &s->client) || listing < 0) {
		session_set_verdict(s, VERDICT_RELAY, REASON_ALLOWLIST);
		return ACTION_RELAY;
	}
	if (cidr_list_contains(&c->block_networks, &s->client)) {
		session_set_verdict(s, VERDICT_REJECT, REASON_BLOCKLIST);
		return ACTION_REJECT;
	}
	if (history_passed(&hc)) {
		history_record_contact(&hc, s->tier);
		session_set_verdict(s, VERDICT_RELAY, REASON_PASSED);
		return ACTION_RELAY;
	}
	/* The shared reputation (database): the well-reputed are fast-tracked; the ill-reputed are suspects (checks/reputation.c). */
	if (db_reputation(&s->client) > 0) {
		history_record_contact(&hc, s->tier);
		session_set_verdict(s, VERDICT_RELAY, REASON_REPUTATION_GOOD);
		return ACTION_RELAY;
	}
	/* Load shedding is the primary's alone: the secondary is where real MTAs go next. */
	if (s->tier == TIER_PRIMARY && mxd->shedding) {
		/* Remembered all the same: it came down the MX list, the bait must not block it. */
		history_record_contact(&hc, s->tier);
		session_set_verdict(s, VERDICT_TEMPFAIL, mxd->shed_reason);
		return ACTION_TEMPFAIL;
	}
	return ACTION_CONTINUE;
}

/*
 * suspect_rules - the tier semantics for a suspicious client. The primary
 * defers it and remembers a pending retry; whoever comes back for it (the
 * secondary at once, or the primary after retry_min_delay) is relayed and
 * earns a pass. A suspect at the secondary that skipped a healthy primary
 * is deferred without a pending retry: it must come down the MX list.
 */
static enum verdict_action
suspect_rules(struct session *s, const struct history_client *hc, bool at_greeting)
{
	const struct config *c = s->config;
	int64_t age = history_pending_age(hc);
	bool retried = s->tier == TIER_PRIMARY ? age >= c->retry_min_delay : age >= 0;

	if (retried) {
		history_grant_pass(hc);
		session_set_verdict(s, VERDICT_RELAY, REASON_RETRIED);
		return ACTION_RELAY;
	}
	/*
	 * With a healthy primary, a suspect at the secondary without a pending
	 * retry of its own skipped MX 10: deferred, and nothing is remembered
	 * that a later contact could take for a retry. Only a primary deferral
	 * (or a secondary standing in for an unhealthy primary) creates one.
	 */
	if (s->tier == TIER_SECONDARY && lower_tiers_healthy()) {
		session_set_verdict(s, VERDICT_TEMPFAIL, REASON_SKIPPED_PRIMARY);
	} else {
		/* The primary, or a secondary standing in for an unhealthy one. */
		history_set_pending(hc);
		session_set_verdict(s, VERDICT_TEMPFAIL, REASON_COUNT);
	}
	/* With tempfail_stage = rcpt the banner is friendly and every RCPT gets the 4xx. */
	if (at_greeting && c->tempfail_stage == TEMPFAIL_AT_RCPT)
		return ACTION_CONTINUE;
	return ACTION_TEMPFAIL;
}

enum verdict_action
verdict_at_greeting(struct session *s)
{
	struct history_client hc;

	if (s->verdict != VERDICT_NONE)
		return action_for(s->verdict);
	history_client_of(s, &hc);
	if (s->tier == TIER_BAIT) {
		/* First contact at MX 30 while MX 10 and 20 were there to take it: a back door. */
		if (!history_lower_tier_contact(&hc, s->config->bait_window) && lower_tiers_healthy() &&
		    !history_passed(&hc) && !cidr_list_contains(&s->config->allow_networks, &s->client)) {
			history_block(&hc, REASON_BAIT_FIRST_CONTACT);
			session_add_reason(s, REASON_BAIT_FIRST_CONTACT);
		}
		history_record_contact(&hc, TIER_BAIT);
		session_set_verdict(s, VERDICT_TEMPFAIL, REASON_BAIT);
		return ACTION_TEMPFAIL;
	}
	history_record_contact(&hc, s->tier);
	if (history_passed(&hc)) {
		session_set_verdict(s, VERDICT_RELAY, REASON_PASSED);
		return ACTION_RELAY;
	}
	if (dnsbl_allowlisted(s)) {
		session_set_verdict(s, VERDICT_RELAY, REASON_DNSWL);
		return ACTION_RELAY;
	}
	switch (run_checks(s, CHECK_AT_GREETING)) {
	case CHECK_FAIL:
		if (s->reasons & (UINT64_C(1) << REASON_DNSBL))
			history_block(&hc, REASON_DNSBL);
		session_set_verdict(s, VERDICT_REJECT, REASON_COUNT);
		return ACTION_REJECT;
	case CHECK_SUSPECT:
		return suspect_rules(s, &hc, true);
	case CHECK_PASS:
		break;
	}
	return ACTION_CONTINUE;
}

void
verdict_hard_failure(struct session *s, enum reason r)
{
	const uint64_t earned = (UINT64_C(1) << REASON_RETRIED) | (UINT64_C(1) << REASON_PASSED);
	struct history_client hc;

	session_set_verdict(s, VERDICT_REJECT, r);
	if (s->reasons & earned) {
		history_client_of(s, &hc);
		history_revoke_pass(&hc);
	}
}

enum verdict_action
verdict_at_command(struct session *s)
{
	/* Hard protocol checks hold for every client but the operator's own networks. */
	if (allowlisted(s))
		return ACTION_CONTINUE;
	if (run_checks(s, CHECK_AT_COMMAND) == CHECK_FAIL) {
		verdict_hard_failure(s, REASON_COUNT);
		return ACTION_REJECT;
	}
	return ACTION_CONTINUE;
}

enum verdict_action
verdict_at_mail(struct session *s)
{
	struct history_client hc;

	/* Trust earned by retrying (or reputation) lifts suspicions, not the protocol checks. */
	if (s->verdict == VERDICT_RELAY && !allowlisted(s) && run_checks_of(s, CHECK_AT_MAIL, true) == CHECK_FAIL)
		verdict_hard_failure(s, REASON_COUNT);
	if (s->verdict != VERDICT_NONE)
		return action_for(s->verdict);
	history_client_of(s, &hc);
	switch (run_checks(s, CHECK_AT_MAIL)) {
	case CHECK_FAIL:
		s->verdict = VERDICT_REJECT;
		break;
	case CHECK_SUSPECT:
		return suspect_rules(s, &hc, false);
	case CHECK_PASS:
		s->verdict = VERDICT_RELAY;
		break;
	}
	return action_for(s->verdict);
}

enum verdict_action
verdict_at_rcpt(struct session *s)
{
	struct history_client hc;

	if (allowlisted(s))
		return ACTION_CONTINUE;
	if (run_checks(s, CHECK_AT_RCPT) != CHECK_FAIL)
		return ACTION_CONTINUE;
	history_client_of(s, &hc);
	if (s->reasons & (UINT64_C(1) << REASON_TRAP_RECIPIENT))
		history_block(&hc, REASON_TRAP_RECIPIENT);
	session_set_verdict(s, VERDICT_REJECT, REASON_COUNT);
	return ACTION_REJECT;
}
