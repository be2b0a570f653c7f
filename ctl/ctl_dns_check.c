/*
 * ctl_dns_check.c - `dns-check DOMAIN`: do the domain's MX records point,
 * lowest preference first, at this appliance's primary, secondary and bait
 * addresses, and does each tier address have forward-confirmed reverse
 * DNS? Mistakes are listed the costliest first: the bait at the lowest
 * preference makes every real MTA's first contact a bait contact.
 * Exit status: 0 right, 1 a mistake, 2 usage, 3 the DNS did not answer.
 */
#include "ctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl_resolve.h"

/* The mistakes, in the order of what they cost (the enum's order is the report's). */
enum mistake {
	MISTAKE_NO_MX = 0,
	MISTAKE_BAIT_LOWEST,
	MISTAKE_SWAPPED,
	MISTAKE_ORDER,
	MISTAKE_TIER_NOT_IN_MX,
	MISTAKE_MX_ELSEWHERE,
	MISTAKE_MX_NO_ADDRESS,
	MISTAKE_EQUAL_PREF,
	MISTAKE_NO_PTR,
	MISTAKE_PTR_NOT_CONFIRMED,
	MISTAKE_COUNT
};

static const char *const mistake_names[MISTAKE_COUNT] = {
	"no-mx", "bait-at-lowest-preference", "bait-primary-swapped", "tiers-out-of-order", "tier-not-in-mx",
	"mx-points-elsewhere", "mx-without-address", "equal-preference", "no-ptr", "ptr-not-confirmed",
};

#define FINDINGS_MAX	64
#define ROLE_ELSEWHERE	TIER_COUNT	/* an address that is none of ours */

struct finding {
	enum mistake	kind;
	char		text[400];
};

/* One MX record with what its host resolves to. */
struct mx_host {
	struct ctl_mx		mx;
	struct netaddr		addrs[CTL_DNS_ANSWERS_MAX];
	size_t			naddrs;
	enum ctl_dns_status	status;
	unsigned		roles;		/* bit per role, ROLE_ELSEWHERE included */
};

struct check {
	const struct config	*c;
	struct ctl_resolver	*r;
	struct mx_host		 hosts[CTL_DNS_ANSWERS_MAX];
	size_t			 nhosts;
	unsigned		 prefs[CTL_DNS_ANSWERS_MAX];	/* distinct, ascending */
	size_t			 nprefs;
	struct finding		 findings[FINDINGS_MAX];
	size_t			 nfindings;
	bool			 unknown;	/* a lookup failed: not every check could be made */
};

static void __attribute__((format(printf, 3, 4)))
mistake(struct check *k, enum mistake kind, const char *fmt, ...)
{
	va_list ap;

	if (k->nfindings >= FINDINGS_MAX)
		return;
	k->findings[k->nfindings].kind = kind;
	va_start(ap, fmt);
	vsnprintf(k->findings[k->nfindings].text, sizeof(k->findings[0].text), fmt, ap);
	va_end(ap);
	k->nfindings++;
}

static int
finding_cmp(const void *a, const void *b)
{
	const struct finding *fa = a, *fb = b;

	return (int)fa->kind - (int)fb->kind;
}

static int
role_of(const struct config *c, const struct netaddr *a)
{
	int t = config_tier_of(c, a);

	return t < 0 ? ROLE_ELSEWHERE : t;
}

static const char *
role_word(int role)
{
	return role == ROLE_ELSEWHERE ? "elsewhere" : tier_role_name(role);
}

/* roles_text - "primary", "primary+bait", "elsewhere" */
static const char *
roles_text(unsigned roles, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int t = 0; t <= ROLE_ELSEWHERE; t++)
		if (roles & (1u << t))
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "+" : "", role_word(t));
	if (used == 0)
		snprintf(buf, len, "no address");
	return buf;
}

/* roles_at - the roles the MX hosts of one preference point at. */
static unsigned
roles_at(const struct check *k, unsigned pref)
{
	unsigned roles = 0;

	for (size_t i = 0; i < k->nhosts; i++)
		if (k->hosts[i].mx.pref == pref)
			roles |= k->hosts[i].roles;
	return roles;
}

/* lowest_pref_of - the lowest preference an MX of role has, or -1. */
static long
lowest_pref_of(const struct check *k, int role)
{
	for (size_t p = 0; p < k->nprefs; p++)
		if (roles_at(k, k->prefs[p]) & (1u << role))
			return (long)k->prefs[p];
	return -1;
}

static int
mx_cmp(const void *a, const void *b)
{
	const struct mx_host *ha = a, *hb = b;

	return ha->mx.pref != hb->mx.pref ? (ha->mx.pref < hb->mx.pref ? -1 : 1) : strcasecmp(ha->mx.host, hb->mx.host);
}

/* resolve_hosts - the MX records, each host's addresses and roles, printed. */
static int
resolve_hosts(struct check *k, const char *domain)
{
	struct ctl_mx mx[CTL_DNS_ANSWERS_MAX];
	enum ctl_dns_status st = ctl_resolve_mx(k->r, domain, mx, &k->nhosts);
	char text[NETADDR_STRLEN], roles[64];

	if (st == CTL_DNS_FAILED) {
		printf("unknown: the MX lookup of %s failed (DNS: %s)\n", domain, ctl_resolver_describe(k->r));
		return 3;
	}
	if (st == CTL_DNS_NONE || k->nhosts == 0) {
		printf("FAIL %s has no MX records\n", domain);
		mistake(k, MISTAKE_NO_MX, "%s has no MX records: senders use its A record, not the tiers", domain);
		return 1;
	}
	for (size_t i = 0; i < k->nhosts; i++) {
		struct mx_host *h = &k->hosts[i];

		h->mx = mx[i];
		h->status = ctl_resolve_addrs(k->r, h->mx.host, h->addrs, &h->naddrs);
		if (h->status == CTL_DNS_FAILED)
			k->unknown = true;
		for (size_t j = 0; j < h->naddrs; j++)
			h->roles |= 1u << role_of(k->c, &h->addrs[j]);
	}
	qsort(k->hosts, k->nhosts, sizeof(k->hosts[0]), mx_cmp);
	for (size_t i = 0; i < k->nhosts; i++) {
		const struct mx_host *h = &k->hosts[i];

		if (k->nprefs == 0 || k->prefs[k->nprefs - 1] != h->mx.pref)
			k->prefs[k->nprefs++] = h->mx.pref;
		printf("MX %u %s ->", h->mx.pref, h->mx.host);
		for (size_t j = 0; j < h->naddrs; j++)
			printf(" %s", netaddr_format(&h->addrs[j], text, sizeof(text)));
		printf("%s (%s)\n", h->status == CTL_DNS_FAILED ? " (lookup failed)" : h->naddrs ? "" : " nothing",
		    roles_text(h->roles, roles, sizeof(roles)));
	}
	return 0;
}

/* check_levels - lowest, middle, highest preference against primary, secondary, bait. */
static void
check_levels(struct check *k)
{
	int expected[TIER_COUNT], n = 0;
	char text[NETADDR_STRLEN], roles[64];

	for (int t = 0; t < TIER_COUNT; t++)
		if (k->c->tier_ips[t].count > 0)
			expected[n++] = t;
	for (int i = 0; i < n; i++) {
		const char *rank = i == 0 ? "lowest" : i == n - 1 ? "highest" : "middle";
		unsigned want = 1u << expected[i], got;

		if ((size_t)i >= k->nprefs) {
			printf("FAIL %s preference: no MX left for the %s\n", rank, tier_role_name(expected[i]));
			continue;
		}
		got = roles_at(k, k->prefs[i]);
		if (got == want)
			printf("ok   %s preference (MX %u) points at the %s\n", rank, k->prefs[i], tier_role_name(expected[i]));
		else
			printf("FAIL %s preference (MX %u) should point at the %s, points at: %s\n", rank, k->prefs[i],
			    tier_role_name(expected[i]), roles_text(got, roles, sizeof(roles)));
	}
	/* The mistakes behind a FAIL line, and the ones a level line does not show. */
	if (k->nprefs > 0 && (roles_at(k, k->prefs[0]) & (1u << TIER_BAIT)))
		mistake(k, MISTAKE_BAIT_LOWEST, "the bait is at the lowest preference (MX %u): every real MTA tries it "
		    "first and would be blocked as a back-door spammer", k->prefs[0]);
	if (k->nprefs > 1 && (roles_at(k, k->prefs[0]) & (1u << TIER_BAIT)) &&
	    (roles_at(k, k->prefs[k->nprefs - 1]) & (1u << TIER_PRIMARY)))
		mistake(k, MISTAKE_SWAPPED, "bait and primary are swapped: the primary has the highest preference "
		    "(MX %u), the bait the lowest (MX %u)", k->prefs[k->nprefs - 1], k->prefs[0]);
	for (int i = 0; i + 1 < n; i++) {
		long a = lowest_pref_of(k, expected[i]), b = lowest_pref_of(k, expected[i + 1]);

		/* A swap already says it: every pair is out of order then. */
		if (a >= 0 && b >= 0 && a >= b && !(k->nfindings && k->findings[k->nfindings - 1].kind == MISTAKE_SWAPPED))
			mistake(k, MISTAKE_ORDER, "the %s (MX %ld) must have a lower preference than the %s (MX %ld)",
			    tier_role_name(expected[i]), a, tier_role_name(expected[i + 1]), b);
	}
	for (int t = 0; t < TIER_COUNT; t++)
		for (size_t j = 0; j < k->c->tier_ips[t].count; j++) {
			const struct netaddr *a = &k->c->tier_ips[t].items[j];
			bool found = false;

			for (size_t h = 0; h < k->nhosts && !found; h++)
				for (size_t m = 0; m < k->hosts[h].naddrs && !found; m++)
					found = netaddr_equal(&k->hosts[h].addrs[m], a);
			if (!found)
				mistake(k, MISTAKE_TIER_NOT_IN_MX, "the %s %s is in no MX record", tier_role_name(t),
				    netaddr_format(a, text, sizeof(text)));
		}
	for (size_t h = 0; h < k->nhosts; h++) {
		const struct mx_host *mh = &k->hosts[h];

		if (mh->roles & (1u << ROLE_ELSEWHERE))
			for (size_t m = 0; m < mh->naddrs; m++)
				if (role_of(k->c, &mh->addrs[m]) == ROLE_ELSEWHERE)
					mistake(k, MISTAKE_MX_ELSEWHERE, "MX %u %s points at %s, which is not one of this "
					    "appliance's tier addresses", mh->mx.pref, mh->mx.host,
					    netaddr_format(&mh->addrs[m], text, sizeof(text)));
		if (mh->status == CTL_DNS_NONE)
			mistake(k, MISTAKE_MX_NO_ADDRESS, "MX %u %s has no A or AAAA record", mh->mx.pref, mh->mx.host);
	}
	for (size_t p = 0; p < k->nprefs; p++) {
		unsigned at = roles_at(k, k->prefs[p]);

		if (at & (at - 1))
			mistake(k, MISTAKE_EQUAL_PREF, "MX %u points at %s at once: senders pick one of them at random",
			    k->prefs[p], roles_text(at, roles, sizeof(roles)));
	}
}

/* check_rdns - forward-confirmed reverse DNS of every tier address. */
static void
check_rdns(struct check *k)
{
	char text[NETADDR_STRLEN];

	for (int t = 0; t < TIER_COUNT; t++)
		for (size_t j = 0; j < k->c->tier_ips[t].count; j++) {
			const struct netaddr *a = &k->c->tier_ips[t].items[j];
			struct ctl_fcrdns f;

			ctl_fcrdns(k->r, a, &f);
			netaddr_format(a, text, sizeof(text));
			if (f.ptr_status == CTL_DNS_FAILED || (f.confirmed[0] == '\0' && f.forward_failed)) {
				printf("?    %s %s: the reverse DNS lookup failed\n", tier_role_name(t), text);
				k->unknown = true;
			} else if (f.ptr_status == CTL_DNS_NONE) {
				printf("FAIL %s %s has no PTR record\n", tier_role_name(t), text);
				mistake(k, MISTAKE_NO_PTR, "the %s %s has no PTR record (whoever traces mail "
				    "to it, and some senders, look its name up)", tier_role_name(t), text);
			} else if (f.confirmed[0] == '\0') {
				printf("FAIL %s %s: PTR %s does not resolve back to it\n", tier_role_name(t), text, f.name);
				mistake(k, MISTAKE_PTR_NOT_CONFIRMED, "the %s %s: PTR %s has no A/AAAA record holding %s",
				    tier_role_name(t), text, f.name, text);
			} else {
				printf("ok   %s %s: PTR %s, forward-confirmed\n", tier_role_name(t), text, f.confirmed);
			}
		}
}

int
ctl_cmd_dns_check(const struct config *c, int argc, char **argv)
{
	static struct check k;
	int rc;

	if (argc != 2 || argv[1][0] == '\0' || strlen(argv[1]) >= CTL_DNS_NAME_MAX) {
		fprintf(stderr, "usage: mxtierctl dns-check DOMAIN\n");
		return 2;
	}
	memset(&k, 0, sizeof(k));
	k.c = c;
	k.r = ctl_resolver_new(c);
	printf("dns-check %s (DNS: %s)\n", argv[1], ctl_resolver_describe(k.r));
	if ((rc = resolve_hosts(&k, argv[1])) == 0)
		check_levels(&k);
	check_rdns(&k);
	ctl_resolver_free(k.r);
	/* Stable: a kind's findings keep the order they were found in. */
	for (size_t i = 1; i < k.nfindings; i++)
		for (size_t j = i; j > 0 && finding_cmp(&k.findings[j - 1], &k.findings[j]) > 0; j--) {
			struct finding tmp = k.findings[j];

			k.findings[j] = k.findings[j - 1];
			k.findings[j - 1] = tmp;
		}
	if (k.nfindings > 0) {
		printf("mistakes, the costliest first:\n");
		for (size_t i = 0; i < k.nfindings; i++)
			printf("  %zu. %s: %s\n", i + 1, mistake_names[k.findings[i].kind], k.findings[i].text);
		return 1;
	}
	if (rc != 0)
		return rc;
	if (k.unknown) {
		printf("no mistake seen, but some lookups failed: check again\n");
		return 3;
	}
	printf("no mistakes found\n");
	return 0;
}
