/*
 * test_verdict.c - every behaviour check and every tier rule, from tables
 * of facts, in the style of postscreen's own tests: no socket, no DNS
 * server, no database. A row names a situation (tier, what DNS said, what
 * the client did, what the history knows) and the decision it must give:
 * the action, the verdict, the reasons, the history effects and, for a
 * refusal, its reply.
 */
#include "unit.h"

#include <unistd.h>

#include "checks/check.h"
#include "config.h"
#include "facts.h"
#include "netaddr.h"
#include "verdict.h"

#define R(x) (UINT64_C(1) << REASON_##x)
#define NO_BLOCK REASON_COUNT

static char ranges_path[64];

static const char base_config[] =
    "primary_ips = 192.0.2.10\nsecondary_ips = 192.0.2.11\nbait_ips = 192.0.2.12\n"
    "hostname = mx.test\ndns_checks = yes\n"
    "dnsbl_sites = bl.test*1, big.test*3, wl.test*-2\n"
    "allow_networks = 198.51.100.0/24\nblock_networks = 203.0.113.0/24\n"
    "trap_recipients = trap@dest.test, @spamtrap.test\n"
    "retry_min_delay = 1m\nretry_window = 4h\nbait_window = 1h\n";

/* The facts of one row; unset fields are those of a clean, forward-confirmed mail server. */
struct row_facts {
	enum tier_role	 tier;
	const char	*client;
	enum dns_status	 ptr;
	const char	*ptr_name;
	bool		 not_fcrdns;
	enum dns_status	 forward;
	const char	*domain;
	int		 dnsbl;
	bool		 dnsbl_unknown;
	size_t		 pregreet;
	bool		 non_smtp, pipelined;
	const char	*helo, *rcpt;
	int		 listing, reputation;
	bool		 blocked;
	enum reason	 block_reason;
	bool		 passed, allowed;
	int64_t		 pending_age;	/* ms; 0 in a row means none (-1 to the policy) */
	bool		 lower_contact, unhealthy, shedding;
	enum verdict	 verdict;	/* decided so far */
	uint64_t	 reasons;
};

enum stage { AT_CONNECT, AT_GREETING, AT_COMMAND, AT_MAIL, AT_RCPT };

struct verdict_case {
	const char		*label;
	const char		*extra_config;
	enum stage		 stage;
	struct row_facts	 f;
	enum verdict_action	 action;
	enum verdict		 verdict;	/* VERDICT_NONE: unchanged */
	uint64_t		 reasons;	/* exactly the reasons the decision adds */
	unsigned		 effects;
	enum reason		 block_reason;
};

#define CLEAN .ptr_name = "mail.example.org", .domain = "example.org", .helo = "mail.example.org"
#define NO_PTR .ptr = DNS_NONE, .ptr_name = "", .domain = ""
#define DYN(name) .ptr_name = (name), .domain = "bigisp.test"

static const struct verdict_case cases[] = {
	/* -- connect: listings and tier role -- */
	{ "clean client: undecided at connect", NULL, AT_CONNECT, { TIER_PRIMARY, "192.0.2.50", CLEAN },
	  ACTION_CONTINUE, VERDICT_NONE, 0, 0, NO_BLOCK },
	{ "allow_networks: relay, no checks", NULL, AT_CONNECT, { TIER_PRIMARY, "198.51.100.7", NO_PTR },
	  ACTION_RELAY, VERDICT_RELAY, R(ALLOWLIST), 0, NO_BLOCK },
	{ "operator allow listing (database): relay", NULL, AT_CONNECT, { TIER_SECONDARY, "192.0.2.51", NO_PTR,
	  .listing = -1 }, ACTION_RELAY, VERDICT_RELAY, R(ALLOWLIST), 0, NO_BLOCK },
	{ "operator allow (mxtierctl allow): relay like allow_networks", NULL, AT_CONNECT, { TIER_PRIMARY,
	  "192.0.2.62", NO_PTR, .passed = true, .allowed = true }, ACTION_RELAY, VERDICT_RELAY, R(ALLOWLIST), 0,
	  NO_BLOCK },
	{ "block_networks: 554", NULL, AT_CONNECT, { TIER_PRIMARY, "203.0.113.9", CLEAN },
	  ACTION_REJECT, VERDICT_REJECT, R(BLOCKLIST), 0, NO_BLOCK },
	{ "operator block listing: 554 even at the bait", NULL, AT_CONNECT, { TIER_BAIT, "192.0.2.52", CLEAN,
	  .listing = 1 }, ACTION_REJECT, VERDICT_REJECT, R(MANUAL), 0, NO_BLOCK },
	{ "bait-first-contact block: 4xx, never a bounce", NULL, AT_CONNECT, { TIER_PRIMARY, "192.0.2.53", CLEAN,
	  .blocked = true, .block_reason = REASON_BAIT_FIRST_CONTACT }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL,
	  R(BAIT_FIRST_CONTACT), 0, NO_BLOCK },
	{ "hit-and-run block: 4xx", NULL, AT_CONNECT, { TIER_SECONDARY, "192.0.2.54", CLEAN,
	  .blocked = true, .block_reason = REASON_HIT_AND_RUN }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL,
	  R(HIT_AND_RUN), 0, NO_BLOCK },
	{ "trap-recipient block: 4xx", NULL, AT_CONNECT, { TIER_BAIT, "192.0.2.55", CLEAN,
	  .blocked = true, .block_reason = REASON_TRAP_RECIPIENT }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL,
	  R(TRAP_RECIPIENT), 0, NO_BLOCK },
	{ "DNSBL block: 554", NULL, AT_CONNECT, { TIER_PRIMARY, "192.0.2.56", CLEAN,
	  .blocked = true, .block_reason = REASON_DNSBL }, ACTION_REJECT, VERDICT_REJECT, R(DNSBL), 0, NO_BLOCK },
	{ "manual block in history: 554", NULL, AT_CONNECT, { TIER_PRIMARY, "192.0.2.57", CLEAN,
	  .blocked = true, .block_reason = REASON_MANUAL }, ACTION_REJECT, VERDICT_REJECT, R(MANUAL), 0, NO_BLOCK },
	{ "bait: always undecided at connect", NULL, AT_CONNECT, { TIER_BAIT, "198.51.100.8", CLEAN },
	  ACTION_CONTINUE, VERDICT_NONE, 0, 0, NO_BLOCK },
	{ "pass entry: relay, contact recorded", NULL, AT_CONNECT, { TIER_PRIMARY, "192.0.2.58", NO_PTR,
	  .passed = true }, ACTION_RELAY, VERDICT_RELAY, R(PASSED), EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "good shared reputation: relay", NULL, AT_CONNECT, { TIER_PRIMARY, "192.0.2.59", NO_PTR,
	  .reputation = 1 }, ACTION_RELAY, VERDICT_RELAY, R(REPUTATION_GOOD), EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "shedding at the primary: 4xx, contact kept", NULL, AT_CONNECT, { TIER_PRIMARY, "192.0.2.60", CLEAN,
	  .shedding = true, .unhealthy = true }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(LOAD_SHED),
	  EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "shedding is the primary's alone", NULL, AT_CONNECT, { TIER_SECONDARY, "192.0.2.61", CLEAN,
	  .shedding = true, .unhealthy = true }, ACTION_CONTINUE, VERDICT_NONE, 0, 0, NO_BLOCK },

	/* -- greeting: the DNS checks and the tier rules -- */
	{ "clean forward-confirmed client: undecided until MAIL", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.70",
	  CLEAN }, ACTION_CONTINUE, VERDICT_NONE, 0, EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "no PTR at the primary: 4xx and a pending retry", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.71", NO_PTR },
	  ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(NO_RDNS), EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "PTR lookup timed out: dns-unknown suspect", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.72",
	  .ptr = DNS_UNKNOWN, .ptr_name = "", .domain = "" }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(DNS_UNKNOWN),
	  EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "PTR not forward-confirmed: rdns-mismatch", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.73",
	  .ptr_name = "mail.example.org", .not_fcrdns = true, .forward = DNS_NONE, .domain = "" }, ACTION_TEMPFAIL,
	  VERDICT_TEMPFAIL, R(RDNS_MISMATCH), EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "forward lookup timed out: dns-unknown", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.74",
	  .ptr_name = "mail.example.org", .not_fcrdns = true, .forward = DNS_UNKNOWN, .domain = "" },
	  ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(DNS_UNKNOWN), EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "octets in the PTR name: dynamic-rdns", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.75",
	  DYN("192-0-2-75.cust.bigisp.test") }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(DYNAMIC_RDNS),
	  EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "access-line word in the PTR name: dynamic-rdns", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.76",
	  DYN("dsl-77.pool.bigisp.test") }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(DYNAMIC_RDNS),
	  EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "address in a dynamic range", NULL, AT_GREETING, { TIER_PRIMARY, "100.64.1.2", CLEAN },
	  ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(DYNAMIC_RANGE), EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "DNSBL score at the suspect threshold", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.77", CLEAN,
	  .dnsbl = 1 }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(DNSBL), EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING,
	  NO_BLOCK },
	{ "DNSBL score at the reject threshold: 554 and a block", NULL, AT_GREETING, { TIER_SECONDARY, "192.0.2.78",
	  CLEAN, .dnsbl = 3 }, ACTION_REJECT, VERDICT_REJECT, R(DNSBL), EFFECT_RECORD_CONTACT | EFFECT_BLOCK,
	  REASON_DNSBL },
	{ "a DNSBL site did not answer: unknown is not clean", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.79", CLEAN,
	  .dnsbl_unknown = true }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(DNS_UNKNOWN),
	  EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "net negative score: dnswl, relayed", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.80", NO_PTR,
	  .dnsbl = -2 }, ACTION_RELAY, VERDICT_RELAY, R(DNSWL), EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "bad shared reputation: suspect", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.81", CLEAN,
	  .reputation = -1 }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(REPUTATION_BAD),
	  EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "tempfail_stage = rcpt: banner, verdict tempfail", "tempfail_stage = rcpt\n", AT_GREETING,
	  { TIER_PRIMARY, "192.0.2.82", NO_PTR }, ACTION_CONTINUE, VERDICT_TEMPFAIL, R(NO_RDNS),
	  EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "suspect back at the primary after retry_min_delay: retried, pass", NULL, AT_GREETING,
	  { TIER_PRIMARY, "192.0.2.83", NO_PTR, .pending_age = 61000 }, ACTION_RELAY, VERDICT_RELAY,
	  R(NO_RDNS) | R(RETRIED), EFFECT_RECORD_CONTACT | EFFECT_GRANT_PASS, NO_BLOCK },
	{ "suspect back at the primary too soon: deferred again", NULL, AT_GREETING,
	  { TIER_PRIMARY, "192.0.2.84", NO_PTR, .pending_age = 5000 }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL,
	  R(NO_RDNS), EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "suspect at the secondary with its pending retry: retried at once", NULL, AT_GREETING,
	  { TIER_SECONDARY, "192.0.2.85", NO_PTR, .pending_age = 20 }, ACTION_RELAY, VERDICT_RELAY,
	  R(NO_RDNS) | R(RETRIED), EFFECT_RECORD_CONTACT | EFFECT_GRANT_PASS, NO_BLOCK },
	{ "suspect at the secondary, healthy primary, no retry: skipped-primary, nothing pending", NULL,
	  AT_GREETING, { TIER_SECONDARY, "192.0.2.86", NO_PTR, .lower_contact = true }, ACTION_TEMPFAIL,
	  VERDICT_TEMPFAIL, R(NO_RDNS) | R(SKIPPED_PRIMARY), EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "suspect at the secondary standing in for an unhealthy primary: deferred with a pending retry", NULL,
	  AT_GREETING, { TIER_SECONDARY, "192.0.2.87", NO_PTR, .unhealthy = true }, ACTION_TEMPFAIL,
	  VERDICT_TEMPFAIL, R(NO_RDNS), EFFECT_RECORD_CONTACT | EFFECT_SET_PENDING, NO_BLOCK },
	{ "pass at the greeting (domain known now): relay", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.88",
	  CLEAN, .passed = true }, ACTION_RELAY, VERDICT_RELAY, R(PASSED), EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "bait first contact with healthy lower tiers: 4xx and a block", NULL, AT_GREETING,
	  { TIER_BAIT, "192.0.2.89", CLEAN }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(BAIT) | R(BAIT_FIRST_CONTACT),
	  EFFECT_RECORD_CONTACT | EFFECT_BLOCK, REASON_BAIT_FIRST_CONTACT },
	{ "bait after lower-tier contact: only 4xx", NULL, AT_GREETING, { TIER_BAIT, "192.0.2.90", CLEAN,
	  .lower_contact = true }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(BAIT), EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "bait while the lower tiers are down: never a block", NULL, AT_GREETING, { TIER_BAIT, "192.0.2.91",
	  CLEAN, .unhealthy = true }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(BAIT), EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "bait for a passed client: no block", NULL, AT_GREETING, { TIER_BAIT, "192.0.2.92", CLEAN,
	  .passed = true }, ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(BAIT), EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "bait for allow_networks: no block", NULL, AT_GREETING, { TIER_BAIT, "198.51.100.9", CLEAN },
	  ACTION_TEMPFAIL, VERDICT_TEMPFAIL, R(BAIT), EFFECT_RECORD_CONTACT, NO_BLOCK },
	{ "verdict from connect stands", NULL, AT_GREETING, { TIER_PRIMARY, "192.0.2.93", NO_PTR,
	  .verdict = VERDICT_RELAY, .reasons = R(PASSED) }, ACTION_RELAY, VERDICT_NONE, 0, 0, NO_BLOCK },

	/* -- unrecognised commands -- */
	{ "non-SMTP command: reject", NULL, AT_COMMAND, { TIER_PRIMARY, "192.0.2.100", CLEAN, .non_smtp = true },
	  ACTION_REJECT, VERDICT_REJECT, R(NON_SMTP), 0, NO_BLOCK },
	{ "non-SMTP from a retried client: reject, pass revoked", NULL, AT_COMMAND, { TIER_SECONDARY, "192.0.2.101",
	  NO_PTR, .non_smtp = true, .verdict = VERDICT_RELAY, .reasons = R(NO_RDNS) | R(RETRIED) }, ACTION_REJECT,
	  VERDICT_REJECT, R(NON_SMTP), EFFECT_REVOKE_PASS, NO_BLOCK },
	{ "non-SMTP from allow_networks: not checked", NULL, AT_COMMAND, { TIER_PRIMARY, "198.51.100.10", CLEAN,
	  .non_smtp = true, .verdict = VERDICT_RELAY, .reasons = R(ALLOWLIST) }, ACTION_CONTINUE, VERDICT_NONE, 0, 0,
	  NO_BLOCK },

	/* -- MAIL: the protocol checks -- */
	{ "clean client at MAIL: relay", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.110", CLEAN },
	  ACTION_RELAY, VERDICT_RELAY, 0, 0, NO_BLOCK },
	{ "pregreet: reject", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.111", CLEAN, .pregreet = 12 },
	  ACTION_REJECT, VERDICT_REJECT, R(PREGREET), 0, NO_BLOCK },
	{ "pipelining before EHLO: reject", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.112", CLEAN, .pipelined = true },
	  ACTION_REJECT, VERDICT_REJECT, R(PIPELINING), 0, NO_BLOCK },
	{ "bare IP as HELO: suspect, deferred with a pending retry", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.113",
	  .ptr_name = "mail.example.org", .domain = "example.org", .helo = "192.0.2.113" }, ACTION_TEMPFAIL,
	  VERDICT_TEMPFAIL, R(HELO_INVALID), EFFECT_SET_PENDING, NO_BLOCK },
	{ "our own host name as HELO: helo-invalid", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.114",
	  .ptr_name = "mail.example.org", .domain = "example.org", .helo = "MX.test" }, ACTION_TEMPFAIL,
	  VERDICT_TEMPFAIL, R(HELO_INVALID), EFFECT_SET_PENDING, NO_BLOCK },
	{ "our tier address literal as HELO: helo-invalid", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.115",
	  .ptr_name = "mail.example.org", .domain = "example.org", .helo = "[192.0.2.11]" }, ACTION_TEMPFAIL,
	  VERDICT_TEMPFAIL, R(HELO_INVALID), EFFECT_SET_PENDING, NO_BLOCK },
	{ "dotless HELO is valid", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.116", .ptr_name = "mail.example.org",
	  .domain = "example.org", .helo = "WIN-ABC123" }, ACTION_RELAY, VERDICT_RELAY, 0, 0, NO_BLOCK },
	{ "another address literal as HELO is valid", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.117",
	  .ptr_name = "mail.example.org", .domain = "example.org", .helo = "[192.0.2.117]" }, ACTION_RELAY,
	  VERDICT_RELAY, 0, 0, NO_BLOCK },
	{ "retried client that pregreets: reject, pass revoked", NULL, AT_MAIL, { TIER_SECONDARY, "192.0.2.118",
	  NO_PTR, .pregreet = 40, .verdict = VERDICT_RELAY, .reasons = R(NO_RDNS) | R(RETRIED) }, ACTION_REJECT,
	  VERDICT_REJECT, R(PREGREET), EFFECT_REVOKE_PASS, NO_BLOCK },
	{ "passed client that pipelines: reject, pass revoked", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.119",
	  NO_PTR, .pipelined = true, .verdict = VERDICT_RELAY, .reasons = R(PASSED) }, ACTION_REJECT,
	  VERDICT_REJECT, R(PIPELINING), EFFECT_REVOKE_PASS, NO_BLOCK },
	{ "good reputation does not lift pregreet", NULL, AT_MAIL, { TIER_PRIMARY, "192.0.2.120", NO_PTR,
	  .pregreet = 3, .verdict = VERDICT_RELAY, .reasons = R(REPUTATION_GOOD) }, ACTION_REJECT, VERDICT_REJECT,
	  R(PREGREET), 0, NO_BLOCK },
	{ "retried client with a bad HELO: the suspicion is lifted", NULL, AT_MAIL, { TIER_SECONDARY, "192.0.2.121",
	  NO_PTR, .helo = "192.0.2.121", .verdict = VERDICT_RELAY, .reasons = R(NO_RDNS) | R(RETRIED) },
	  ACTION_RELAY, VERDICT_NONE, 0, 0, NO_BLOCK },
	{ "allow_networks: pregreet not checked", NULL, AT_MAIL, { TIER_PRIMARY, "198.51.100.11", CLEAN,
	  .pregreet = 5, .verdict = VERDICT_RELAY, .reasons = R(ALLOWLIST) }, ACTION_RELAY, VERDICT_NONE, 0, 0,
	  NO_BLOCK },
	{ "tempfail from the greeting stands at MAIL", "tempfail_stage = rcpt\n", AT_MAIL, { TIER_PRIMARY,
	  "192.0.2.122", NO_PTR, .verdict = VERDICT_TEMPFAIL, .reasons = R(NO_RDNS) }, ACTION_TEMPFAIL, VERDICT_NONE,
	  0, 0, NO_BLOCK },

	/* -- RCPT: trap recipients -- */
	{ "ordinary recipient", NULL, AT_RCPT, { TIER_PRIMARY, "192.0.2.130", CLEAN, .rcpt = "user@dest.test",
	  .verdict = VERDICT_RELAY }, ACTION_CONTINUE, VERDICT_NONE, 0, 0, NO_BLOCK },
	{ "trap address: reject and block", NULL, AT_RCPT, { TIER_PRIMARY, "192.0.2.131", CLEAN,
	  .rcpt = "Trap@Dest.test", .verdict = VERDICT_RELAY }, ACTION_REJECT, VERDICT_REJECT, R(TRAP_RECIPIENT),
	  EFFECT_BLOCK, REASON_TRAP_RECIPIENT },
	{ "trap domain: reject and block", NULL, AT_RCPT, { TIER_SECONDARY, "192.0.2.132", CLEAN,
	  .rcpt = "anyone@SPAMTRAP.test", .verdict = VERDICT_RELAY }, ACTION_REJECT, VERDICT_REJECT,
	  R(TRAP_RECIPIENT), EFFECT_BLOCK, REASON_TRAP_RECIPIENT },
	{ "trap domain is not a suffix match", NULL, AT_RCPT, { TIER_PRIMARY, "192.0.2.133", CLEAN,
	  .rcpt = "a@notspamtrap.test", .verdict = VERDICT_RELAY }, ACTION_CONTINUE, VERDICT_NONE, 0, 0, NO_BLOCK },
	{ "trap from allow_networks: not checked", NULL, AT_RCPT, { TIER_PRIMARY, "198.51.100.12", CLEAN,
	  .rcpt = "trap@dest.test", .verdict = VERDICT_RELAY, .reasons = R(ALLOWLIST) }, ACTION_CONTINUE,
	  VERDICT_NONE, 0, 0, NO_BLOCK },
};

static struct config *
case_config(const char *extra)
{
	char text[2048], err[512];
	struct config *c;

	snprintf(text, sizeof(text), "%sdynamic_ranges_file = %s\n%s", base_config, ranges_path, extra ? extra : "");
	c = config_load_string("verdict.conf", text, err, sizeof(err));
	if (c == NULL)
		fail_msg("config: %s", err);
	return c;
}

static void
facts_of(const struct row_facts *r, const struct config *c, struct client_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->config = c;
	f->tier = r->tier;
	assert_int_equal(netaddr_parse(r->client, &f->client), 0);
	f->dns.ptr_status = r->ptr;
	f->dns.ptr_name = r->ptr_name ? r->ptr_name : "";
	f->dns.fcrdns = r->ptr == DNS_FOUND && !r->not_fcrdns;
	f->dns.forward_status = r->not_fcrdns ? r->forward : DNS_FOUND;
	f->dns.domain = r->domain ? r->domain : "";
	f->dns.dnsbl_score = r->dnsbl;
	f->dns.dnsbl_unknown = r->dnsbl_unknown;
	f->obs.pregreet_bytes = r->pregreet;
	f->obs.non_smtp_command = r->non_smtp;
	f->obs.pipelined_before_ehlo = r->pipelined;
	f->helo = r->helo ? r->helo : "mail.example.org";
	f->rcpt = r->rcpt ? r->rcpt : "";
	f->listing = r->listing;
	f->reputation = r->reputation;
	f->history.blocked = r->blocked;
	f->history.block_reason = r->blocked ? r->block_reason : REASON_COUNT;
	f->history.passed = r->passed;
	f->history.allowed = r->allowed;
	f->history.pending_age = r->pending_age ? r->pending_age : -1;
	f->history.lower_tier_contact = r->lower_contact;
	f->lower_tiers_healthy = !r->unhealthy;
	f->shedding = r->shedding;
	f->shed_reason = REASON_LOAD_SHED;
	f->verdict = r->verdict;
	f->reasons = r->reasons;
}

static const char *
reasons_text(uint64_t bits)
{
	static char buf[2][512];
	static int next;
	char *out = buf[next++ % 2];
	size_t used = 0;

	out[0] = '\0';
	for (int r = 0; r < REASON_COUNT; r++)
		if (bits & (UINT64_C(1) << r))
			used += (size_t)snprintf(out + used, sizeof(buf[0]) - used, "%s%s", used ? "," : "", reason_name(r));
	return used ? out : "-";
}

static void
test_verdict_table(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct verdict_case *t = &cases[i];
		struct config *c = case_config(t->extra_config);
		struct client_facts f;
		struct decision d;
		enum verdict_action a = ACTION_CONTINUE;

		facts_of(&t->f, c, &f);
		switch (t->stage) {
		case AT_CONNECT: a = verdict_at_connect(&f, &d); break;
		case AT_GREETING: a = verdict_at_greeting(&f, &d); break;
		case AT_COMMAND: a = verdict_at_command(&f, &d); break;
		case AT_MAIL: a = verdict_at_mail(&f, &d); break;
		case AT_RCPT: a = verdict_at_rcpt(&f, &d); break;
		}
		EXPECT(t->label, a == t->action, "action %d, expected %d", a, t->action);
		EXPECT(t->label, d.verdict == t->verdict, "verdict %s, expected %s", verdict_name(d.verdict),
		    verdict_name(t->verdict));
		EXPECT(t->label, d.reasons == t->reasons, "reasons %s, expected %s", reasons_text(d.reasons),
		    reasons_text(t->reasons));
		EXPECT(t->label, d.effects == t->effects, "effects 0x%x, expected 0x%x", d.effects, t->effects);
		if (t->effects & EFFECT_BLOCK)
			EXPECT(t->label, d.block_reason == t->block_reason, "block reason %s, expected %s",
			    reason_name(d.block_reason), reason_name(t->block_reason));
		config_unref(c);
	}
	EXPECT_ALL_PASSED();
}

/* -- the refusal a greeting verdict is answered with -- */

struct refusal_case {
	const char	*label;
	enum verdict	 verdict;
	uint64_t	 reasons;
	const char	*reply;		/* formatted with host mx.test, client 192.0.2.7 */
};

static const struct refusal_case refusal_cases[] = {
	{ "suspect", VERDICT_TEMPFAIL, R(NO_RDNS), "421 4.7.0 mx.test Service temporarily unavailable, try again later" },
	{ "skipped the primary", VERDICT_TEMPFAIL, R(NO_RDNS) | R(SKIPPED_PRIMARY),
	  "421 4.7.0 mx.test Service temporarily unavailable, try again later" },
	{ "bait", VERDICT_TEMPFAIL, R(BAIT), "421 4.7.0 mx.test Service not available, try a lower MX" },
	{ "bait first contact: still the bait's text", VERDICT_TEMPFAIL, R(BAIT) | R(BAIT_FIRST_CONTACT),
	  "421 4.7.0 mx.test Service not available, try a lower MX" },
	{ "behaviour block", VERDICT_TEMPFAIL, R(BAIT_FIRST_CONTACT),
	  "421 4.7.1 mx.test Client [192.0.2.7] temporarily blocked, try again later" },
	{ "hit-and-run block", VERDICT_TEMPFAIL, R(HIT_AND_RUN),
	  "421 4.7.1 mx.test Client [192.0.2.7] temporarily blocked, try again later" },
	{ "too many sessions", VERDICT_TEMPFAIL, R(TOO_MANY_SESSIONS), "421 4.3.2 mx.test Too many sessions, try again later" },
	{ "too many from one client", VERDICT_TEMPFAIL, R(TOO_MANY_CLIENT_SESSIONS),
	  "421 4.7.0 mx.test Too many sessions from your address" },
	{ "load shedding", VERDICT_TEMPFAIL, R(LOAD_SHED), "421 4.3.2 mx.test Service busy, try again later" },
	{ "backend down", VERDICT_TEMPFAIL, R(BACKEND_DOWN), "421 4.3.2 mx.test Service busy, try again later" },
	{ "DNSBL reject", VERDICT_REJECT, R(DNSBL), "554 5.7.1 mx.test Service unavailable; client [192.0.2.7] listed by DNSBL" },
	{ "operator block", VERDICT_REJECT, R(MANUAL), "554 5.7.1 mx.test Service unavailable; client [192.0.2.7] blocked" },
	{ "block_networks", VERDICT_REJECT, R(BLOCKLIST), "554 5.7.1 mx.test Service unavailable; client [192.0.2.7] blocked" },
};

static void
test_refusal_table(void **state)
{
	for (size_t i = 0; i < sizeof(refusal_cases) / sizeof(refusal_cases[0]); i++) {
		const struct refusal_case *t = &refusal_cases[i];
		struct client_facts f;
		char reply[256];

		memset(&f, 0, sizeof(f));
		f.verdict = t->verdict;
		f.reasons = t->reasons;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(reply, sizeof(reply), verdict_refusal_text(verdict_refusal(&f)), "mx.test", "192.0.2.7");
#pragma GCC diagnostic pop
		EXPECT(t->label, strcmp(reply, t->reply) == 0, "\"%s\", expected \"%s\"", reply, t->reply);
	}
	EXPECT_ALL_PASSED();
}

/* -- which names prove a mail pool (a domain-wide pass, sibling credit) -- */

struct pool_case {
	const char	*label;
	const char	*client, *ptr_name;
	bool		 fcrdns;
	bool		 pool;
};

static const struct pool_case pool_cases[] = {
	{ "a mail server's name", "192.0.2.140", "mta7.out.bigsender.test", true, true },
	{ "not forward-confirmed", "192.0.2.141", "mta7.out.bigsender.test", false, false },
	{ "the address's octets", "192.0.2.142", "192-0-2-142.pool.bigisp.test", true, false },
	{ "reversed octets", "192.0.2.143", "143.2.0.192.cust.bigisp.test", true, false },
	{ "zero-padded octets", "192.0.2.144", "ip192000002144.bigisp.test", true, false },
	{ "dyn label", "192.0.2.145", "dyn-145.bigisp.test", true, false },
	{ "dhcp label", "192.0.2.146", "host.dhcp.bigisp.test", true, false },
	{ "an address in a dynamic range", "100.64.3.4", "mail.example.org", true, false },
};

static void
test_pool_name_table(void **state)
{
	struct config *c = case_config(NULL);

	for (size_t i = 0; i < sizeof(pool_cases) / sizeof(pool_cases[0]); i++) {
		const struct pool_case *t = &pool_cases[i];
		struct client_facts f;
		bool pool;

		memset(&f, 0, sizeof(f));
		f.config = c;
		assert_int_equal(netaddr_parse(t->client, &f.client), 0);
		f.dns.ptr_status = DNS_FOUND;
		f.dns.ptr_name = t->ptr_name;
		f.dns.fcrdns = t->fcrdns;
		f.dns.domain = t->fcrdns ? "bigsender.test" : "";
		pool = verdict_pool_name(&f);
		EXPECT(t->label, pool == t->pool, "pool name %d, expected %d (%s)", pool, t->pool, t->ptr_name);
	}
	config_unref(c);
	EXPECT_ALL_PASSED();
}

static int
setup(void **state)
{
	int fd;

	snprintf(ranges_path, sizeof(ranges_path), "/tmp/mxtier-ranges-XXXXXX");
	fd = mkstemp(ranges_path);
	if (fd == -1 || write(fd, "100.64.0.0/10\n", 14) != 14)
		return -1;
	close(fd);
	return 0;
}

static int
teardown(void **state)
{
	unlink(ranges_path);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdict_table),
		cmocka_unit_test(test_refusal_table),
		cmocka_unit_test(test_pool_name_table),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
