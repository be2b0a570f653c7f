/*
 * verdict.c - the tier rules: from a client's facts (tier role, listings,
 * DNS, observations, history) to relay, tempfail or reject, the reasons,
 * the history effects and the refusal text. Pure: it reads only the facts
 * and writes only the decision, so the session engine applies it and the
 * unit tests drive it from tables. Behaviour checks plug in as a file in
 * checks/ and a row in check_table.
 */
#include "verdict.h"

#include <string.h>

#include "checks/check.h"
#include "facts.h"

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

/* The greeting refusals, each a format taking the host name and the client address. */
static const char *const refusal_texts[REFUSE_COUNT] = {
	[REFUSE_TEMPFAIL] = "421 4.7.0 %s Service temporarily unavailable, try again later",
	[REFUSE_BAIT] = "421 4.7.0 %s Service not available, try a lower MX",
	[REFUSE_TOO_MANY_SESSIONS] = "421 4.3.2 %s Too many sessions, try again later",
	[REFUSE_TOO_MANY_CLIENT_SESSIONS] = "421 4.7.0 %s Too many sessions from your address",
	[REFUSE_BUSY] = "421 4.3.2 %s Service busy, try again later",
	[REFUSE_HELD] = "421 4.7.1 %s Client [%s] temporarily blocked, try again later",
	[REFUSE_DNSBL] = "554 5.7.1 %s Service unavailable; client [%s] listed by DNSBL",
	[REFUSE_BLOCKED] = "554 5.7.1 %s Service unavailable; client [%s] blocked",
};

const char *
verdict_refusal_text(enum refusal r)
{
	return (unsigned)r < REFUSE_COUNT ? refusal_texts[r] : refusal_texts[REFUSE_TEMPFAIL];
}

#define BIT(r) (UINT64_C(1) << (r))

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

/* decide - set the decision's verdict and one reason (REASON_COUNT: none); returns the action. */
static enum verdict_action
decide(struct decision *d, enum verdict v, enum reason r)
{
	d->verdict = v;
	if (r < REASON_COUNT)
		d->reasons |= BIT(r);
	return action_for(v);
}

static void
decision_clear(struct decision *d)
{
	memset(d, 0, sizeof(*d));
	d->verdict = VERDICT_NONE;
	d->block_reason = REASON_COUNT;
}

static void
block(struct decision *d, enum reason why)
{
	d->effects |= EFFECT_BLOCK;
	d->block_reason = why;
}

/*
 * run_checks - run the checks of one stage; every reason goes into the
 * decision, the worst result is returned. fail_only: the client earned
 * trust (retried, passed, good reputation, DNSWL) that lifts the
 * suspicions, so only the hard failures (pregreet, pipelining, non-SMTP,
 * trap) count and are noted.
 */
static enum check_result
run_checks(const struct client_facts *f, enum check_stage stage, bool fail_only, struct decision *d)
{
	enum check_result worst = CHECK_PASS;

	for (size_t i = 0; i < sizeof(check_table) / sizeof(check_table[0]); i++) {
		const struct check *c = check_table[i];
		enum reason reason = REASON_COUNT;
		enum check_result r;

		if (c->stage != stage)
			continue;
		r = c->run(f, &reason);
		if (r == CHECK_PASS || (fail_only && r != CHECK_FAIL))
			continue;
		if (reason < REASON_COUNT)
			d->reasons |= BIT(reason);
		if (r > worst)
			worst = r;
	}
	return worst;
}

/*
 * verdict_pool_name - the client's forward-confirmed name proves a mail
 * pool: it does not look dynamic and the address is in no dynamic range.
 * Only such a name earns a domain-wide pass, and only then do its /24 (or
 * /64) and domain siblings' pending retries count for it: one host of an
 * ISP's access pool that retried must not wave the whole ISP through.
 */
bool
verdict_pool_name(const struct client_facts *f)
{
	enum reason unused;

	return f->dns.fcrdns && f->dns.domain && f->dns.domain[0] && check_dynamic_rdns.run(f, &unused) == CHECK_PASS &&
	    check_dynamic_range.run(f, &unused) == CHECK_PASS;
}

static bool
allowlisted(const struct client_facts *f)
{
	return facts_has_reason(f, REASON_ALLOWLIST);
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

enum verdict_action
verdict_at_connect(const struct client_facts *f, struct decision *d)
{
	const struct config *c = f->config;

	decision_clear(d);
	/* A blocked client is refused at every tier, the bait included: no re-offending while blocked. */
	if (f->history.blocked)
		return decide(d, behaviour_block(f->history.block_reason) ? VERDICT_TEMPFAIL : VERDICT_REJECT,
		    f->history.block_reason);
	if (f->listing > 0)
		return decide(d, VERDICT_REJECT, REASON_MANUAL);
	/* Otherwise the bait answers 4xx whatever is true; it decides about blocks once DNS has answered. */
	if (f->tier == TIER_BAIT)
		return ACTION_CONTINUE;
	/* The operator's trust: allow_networks, an allow listing in the database or by mxtierctl. */
	if (cidr_list_contains(&c->allow_networks, &f->client) || f->listing < 0 || f->history.allowed)
		return decide(d, VERDICT_RELAY, REASON_ALLOWLIST);
	if (cidr_list_contains(&c->block_networks, &f->client))
		return decide(d, VERDICT_REJECT, REASON_BLOCKLIST);
	if (f->history.passed) {
		d->effects |= EFFECT_RECORD_CONTACT;
		return decide(d, VERDICT_RELAY, REASON_PASSED);
	}
	/* The shared reputation (database): the well-reputed are fast-tracked; the ill-reputed are suspects (checks/reputation.c). */
	if (f->reputation > 0) {
		d->effects |= EFFECT_RECORD_CONTACT;
		return decide(d, VERDICT_RELAY, REASON_REPUTATION_GOOD);
	}
	/* Load shedding is the primary's alone: the secondary is where real MTAs go next. */
	if (f->tier == TIER_PRIMARY && f->shedding) {
		/* Remembered all the same: it came down the MX list, the bait must not block it. */
		d->effects |= EFFECT_RECORD_CONTACT;
		return decide(d, VERDICT_TEMPFAIL, f->shed_reason);
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
suspect_rules(const struct client_facts *f, bool at_greeting, struct decision *d)
{
	const struct config *c = f->config;
	int64_t age = f->history.pending_age;
	bool retried = f->tier == TIER_PRIMARY ? age >= c->retry_min_delay : age >= 0;

	if (retried) {
		d->effects |= EFFECT_GRANT_PASS;
		return decide(d, VERDICT_RELAY, REASON_RETRIED);
	}
	/*
	 * With a healthy primary, a suspect at the secondary without a pending
	 * retry of its own skipped MX 10: deferred, and nothing is remembered
	 * that a later contact could take for a retry. Only a primary deferral
	 * (or a secondary standing in for an unhealthy primary) creates one.
	 */
	if (f->tier == TIER_SECONDARY && f->lower_tiers_healthy) {
		decide(d, VERDICT_TEMPFAIL, REASON_SKIPPED_PRIMARY);
	} else {
		/* The primary, or a secondary standing in for an unhealthy one. */
		d->effects |= EFFECT_SET_PENDING;
		decide(d, VERDICT_TEMPFAIL, REASON_COUNT);
	}
	/* With tempfail_stage = rcpt the banner is friendly and every RCPT gets the 4xx. */
	if (at_greeting && c->tempfail_stage == TEMPFAIL_AT_RCPT)
		return ACTION_CONTINUE;
	return ACTION_TEMPFAIL;
}

enum verdict_action
verdict_at_greeting(const struct client_facts *f, struct decision *d)
{
	const struct config *c = f->config;

	decision_clear(d);
	if (f->verdict != VERDICT_NONE)
		return action_for(f->verdict);
	d->effects |= EFFECT_RECORD_CONTACT;
	if (f->tier == TIER_BAIT) {
		/* First contact at MX 30 while MX 10 and 20 were there to take it: a back door. */
		if (!f->history.lower_tier_contact && f->lower_tiers_healthy && !f->history.passed &&
		    !cidr_list_contains(&c->allow_networks, &f->client)) {
			block(d, REASON_BAIT_FIRST_CONTACT);
			d->reasons |= BIT(REASON_BAIT_FIRST_CONTACT);
		}
		return decide(d, VERDICT_TEMPFAIL, REASON_BAIT);
	}
	if (f->history.passed)
		return decide(d, VERDICT_RELAY, REASON_PASSED);
	if (dnsbl_allowlisted(f))
		return decide(d, VERDICT_RELAY, REASON_DNSWL);
	switch (run_checks(f, CHECK_AT_GREETING, false, d)) {
	case CHECK_FAIL:
		if (d->reasons & BIT(REASON_DNSBL))
			block(d, REASON_DNSBL);
		return decide(d, VERDICT_REJECT, REASON_COUNT);
	case CHECK_SUSPECT:
		return suspect_rules(f, true, d);
	case CHECK_PASS:
		break;
	}
	return ACTION_CONTINUE;
}

void
verdict_hard_failure(const struct client_facts *f, enum reason r, struct decision *d)
{
	decision_clear(d);
	decide(d, VERDICT_REJECT, r);
	if (f->reasons & (BIT(REASON_RETRIED) | BIT(REASON_PASSED)))
		d->effects |= EFFECT_REVOKE_PASS;
}

/* hard_failure - a check stage failed hard: like verdict_hard_failure, keeping the checks' reasons. */
static enum verdict_action
hard_failure(const struct client_facts *f, struct decision *d)
{
	uint64_t reasons = d->reasons;

	verdict_hard_failure(f, REASON_COUNT, d);
	d->reasons |= reasons;
	return ACTION_REJECT;
}

enum verdict_action
verdict_at_command(const struct client_facts *f, struct decision *d)
{
	decision_clear(d);
	/* Hard protocol checks hold for every client but the operator's own networks. */
	if (allowlisted(f))
		return ACTION_CONTINUE;
	if (run_checks(f, CHECK_AT_COMMAND, false, d) == CHECK_FAIL)
		return hard_failure(f, d);
	return ACTION_CONTINUE;
}

enum verdict_action
verdict_at_mail(const struct client_facts *f, struct decision *d)
{
	decision_clear(d);
	/* Trust earned by retrying (or reputation) lifts suspicions, not the protocol checks. */
	if (f->verdict == VERDICT_RELAY && !allowlisted(f) && run_checks(f, CHECK_AT_MAIL, true, d) == CHECK_FAIL)
		return hard_failure(f, d);
	if (f->verdict != VERDICT_NONE)
		return action_for(f->verdict);
	switch (run_checks(f, CHECK_AT_MAIL, false, d)) {
	case CHECK_FAIL:
		return decide(d, VERDICT_REJECT, REASON_COUNT);
	case CHECK_SUSPECT:
		return suspect_rules(f, false, d);
	case CHECK_PASS:
		break;
	}
	return decide(d, VERDICT_RELAY, REASON_COUNT);
}

enum verdict_action
verdict_at_rcpt(const struct client_facts *f, struct decision *d)
{
	decision_clear(d);
	if (allowlisted(f))
		return ACTION_CONTINUE;
	if (run_checks(f, CHECK_AT_RCPT, false, d) != CHECK_FAIL)
		return ACTION_CONTINUE;
	if (d->reasons & BIT(REASON_TRAP_RECIPIENT))
		block(d, REASON_TRAP_RECIPIENT);
	return decide(d, VERDICT_REJECT, REASON_COUNT);
}

/* verdict_refusal - the refusal for a greeting verdict, in one priority order. */
enum refusal
verdict_refusal(const struct client_facts *f)
{
	if (f->verdict == VERDICT_TEMPFAIL && !facts_has_reason(f, REASON_BAIT) &&
	    (facts_has_reason(f, REASON_BAIT_FIRST_CONTACT) || facts_has_reason(f, REASON_HIT_AND_RUN) ||
	    facts_has_reason(f, REASON_TRAP_RECIPIENT)))
		return REFUSE_HELD;
	if (facts_has_reason(f, REASON_BAIT))
		return REFUSE_BAIT;
	if (facts_has_reason(f, REASON_TOO_MANY_SESSIONS))
		return REFUSE_TOO_MANY_SESSIONS;
	if (facts_has_reason(f, REASON_TOO_MANY_CLIENT_SESSIONS))
		return REFUSE_TOO_MANY_CLIENT_SESSIONS;
	if (facts_has_reason(f, REASON_LOAD_SHED) || facts_has_reason(f, REASON_BACKEND_DOWN))
		return REFUSE_BUSY;
	if (f->verdict == VERDICT_REJECT && facts_has_reason(f, REASON_DNSBL))
		return REFUSE_DNSBL;
	if (f->verdict == VERDICT_REJECT)
		return REFUSE_BLOCKED;
	return REFUSE_TEMPFAIL;
}
