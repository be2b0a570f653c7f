/*
 * session_policy.c - the session engine's side of the policy: it gathers a
 * session's facts (what the client did, what DNS said, what the contact
 * history, the shared listings and the health of the tiers say), asks the
 * verdict, and applies the decision: reasons and verdict to the session,
 * contact, pending retry, pass and block effects to the history. The
 * verdict itself (verdict.c, checks/) reads only the facts.
 */
#include <string.h>

#include "daemon.h"
#include "db.h"
#include "history.h"
#include "session.h"

/* history_client_for - who the client is for the history: its address, and its domain if the name proves a pool. */
static void
history_client_for(const struct session *s, const struct client_facts *f, struct history_client *hc)
{
	hc->addr = s->client;
	hc->domain = verdict_pool_name(f) ? s->dns.domain : NULL;
}

/* session_facts - the facts the policy judges, gathered now. */
static void
session_facts(const struct session *s, struct client_facts *f, struct history_client *hc)
{
	const struct config *c = s->config;

	memset(f, 0, sizeof(*f));
	f->config = c;
	f->tier = s->tier;
	f->client = s->client;
	f->dns.ptr_status = s->dns.ptr_status;
	f->dns.ptr_name = s->dns.ptr_name;
	f->dns.forward_status = s->dns.forward_status;
	f->dns.fcrdns = s->dns.fcrdns;
	f->dns.domain = s->dns.domain;
	f->dns.dnsbl_score = s->dns.dnsbl_score;
	f->dns.dnsbl_unknown = s->dns.dnsbl_unknown;
	f->obs = s->obs;
	f->helo = s->helo;
	f->rcpt = s->current_rcpt;
	f->listing = db_listing(&s->client);
	f->reputation = db_reputation(&s->client);
	f->lower_tiers_healthy = !mxd->shedding && mxd->backend_up;
	f->shedding = mxd->shedding;
	f->shed_reason = mxd->shed_reason;
	f->verdict = s->verdict;
	f->reasons = s->reasons;

	history_client_for(s, f, hc);
	f->history.block_reason = REASON_COUNT;
	f->history.blocked = history_blocked(hc, &f->history.block_reason);
	f->history.passed = history_passed(hc);
	f->history.allowed = history_allowed(hc);
	f->history.pending_age = history_pending_age(hc);
	f->history.lower_tier_contact = history_lower_tier_contact(hc, c->bait_window);
}

/* session_apply - the decision's reasons and verdict to the session, its effects to the history. */
static void
session_apply(struct session *s, const struct decision *d, const struct history_client *hc)
{
	for (int r = 0; r < REASON_COUNT; r++)
		if (d->reasons & (UINT64_C(1) << r))
			session_add_reason(s, (enum reason)r);
	if (d->verdict != VERDICT_NONE)
		s->verdict = d->verdict;
	if (d->effects & EFFECT_BLOCK)
		history_block(hc, d->block_reason);
	if (d->effects & EFFECT_RECORD_CONTACT)
		history_record_contact(hc, s->tier);
	if (d->effects & EFFECT_SET_PENDING)
		history_set_pending(hc);
	if (d->effects & EFFECT_GRANT_PASS)
		history_grant_pass(hc);
	if (d->effects & EFFECT_REVOKE_PASS)
		history_revoke_pass(hc);
}

typedef enum verdict_action (*verdict_stage)(const struct client_facts *, struct decision *);

static enum verdict_action
session_judge(struct session *s, verdict_stage stage)
{
	struct client_facts f;
	struct history_client hc;
	struct decision d;
	enum verdict_action action;

	session_facts(s, &f, &hc);
	action = stage(&f, &d);
	session_apply(s, &d, &hc);
	return action;
}

enum verdict_action
session_policy_connect(struct session *s)
{
	return session_judge(s, verdict_at_connect);
}

enum verdict_action
session_policy_greeting(struct session *s)
{
	return session_judge(s, verdict_at_greeting);
}

enum verdict_action
session_policy_command(struct session *s)
{
	return session_judge(s, verdict_at_command);
}

enum verdict_action
session_policy_mail(struct session *s)
{
	return session_judge(s, verdict_at_mail);
}

enum verdict_action
session_policy_rcpt(struct session *s)
{
	return session_judge(s, verdict_at_rcpt);
}

void
session_policy_violation(struct session *s, enum reason r)
{
	struct client_facts f;
	struct history_client hc;
	struct decision d;

	session_facts(s, &f, &hc);
	verdict_hard_failure(&f, r, &d);
	session_apply(s, &d, &hc);
}

const char *
session_policy_refusal(const struct session *s, bool *tarpit_able)
{
	struct client_facts f;
	struct history_client hc;
	enum refusal r;

	session_facts(s, &f, &hc);
	r = verdict_refusal(&f);
	*tarpit_able = r == REFUSE_TEMPFAIL;
	return verdict_refusal_text(r);
}
