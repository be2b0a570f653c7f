/*
 * client_dns.c - what DNS says about a connecting client, asked in
 * parallel at connect: PTR, then forward confirmation of the PTR name
 * (FCrDNS), and every DNSBL/DNSWL site. The verdict waits for all of it,
 * bounded by dns_timeout; a timeout is recorded as unknown, never clean.
 */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "db.h"
#include "session.h"

/* Second-level labels under which registrations happen one level deeper (co.uk, com.au, ...). */
static const char *const second_level_labels[] = { "co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", NULL };

/*
 * registered_domain - the part of a host name an organisation registered:
 * the last two labels, or three under a two-letter country code whose
 * second level is a generic one (mail.example.co.uk -> example.co.uk).
 * An approximation of the public suffix list, good enough to group a
 * sender's pool of outbound hosts.
 */
const char *
registered_domain(const char *name)
{
	size_t len = strlen(name);
	const char *labels[4] = { NULL };
	int found = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	for (size_t i = len; i > 0 && found < 4; i--) {
		if (name[i - 1] == '.')
			labels[found++] = name + i;
	}
	if (found < 1)
		return name;
	if (found >= 2) {
		size_t tld_len = len - (size_t)(labels[0] - name);
		size_t sld_len = (size_t)(labels[0] - labels[1]) - 1;

		if (tld_len == 2) {
			for (size_t i = 0; second_level_labels[i]; i++)
				if (strlen(second_level_labels[i]) == sld_len &&
				    strncmp(labels[1], second_level_labels[i], sld_len) == 0)
					return found >= 3 ? labels[2] : name;
		}
	}
	return labels[1] ? labels[1] : name;
}

static void
lookup_done(struct session *s)
{
	if (s->dns.pending > 0 && --s->dns.pending == 0 && !s->dns.done) {
		s->dns.done = true;
		session_dns_done(s);
	}
}

static void
slot_done(struct session *s, struct session_dns_slot *slot)
{
	slot->request = NULL;
	lookup_done(s);
}

/* shared_history_done - the shared history counts as one more lookup before the greeting verdict. */
static void
shared_history_done(void *arg)
{
	struct session *s = arg;

	s->db_lookup = NULL;
	lookup_done(s);
}

static void
forward_answer(const struct dns_answer *a, void *arg)
{
	struct session_dns_slot *slot = arg;
	struct session *s = slot->session;

	s->dns.forward_status = a->status;
	for (size_t i = 0; a->status == DNS_FOUND && i < a->count; i++) {
		if (netaddr_equal(&a->addrs[i], &s->client)) {
			size_t len;

			s->dns.fcrdns = true;
			snprintf(s->dns.domain, sizeof(s->dns.domain), "%s", registered_domain(s->dns.ptr_name));
			len = strlen(s->dns.domain);
			if (len && s->dns.domain[len - 1] == '.')
				s->dns.domain[len - 1] = '\0';
			for (char *p = s->dns.domain; *p; p++)
				*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
			break;
		}
	}
	slot_done(s, slot);
}

static void
ptr_answer(const struct dns_answer *a, void *arg)
{
	struct session_dns_slot *slot = arg;
	struct session *s = slot->session;

	s->dns.ptr_status = a->status;
	if (a->status == DNS_FOUND) {
		struct session_dns_slot *fwd = &s->dns.slots[1];

		snprintf(s->dns.ptr_name, sizeof(s->dns.ptr_name), "%s", a->name);
		fwd->request = dns_lookup_addr(s->dns.ptr_name, s->client.family, forward_answer, fwd);
		if (fwd->request)
			s->dns.pending++;
		else
			s->dns.forward_status = DNS_UNKNOWN;
	}
	slot_done(s, slot);
}

static void
dnsbl_answer(const struct dns_answer *a, void *arg)
{
	struct session_dns_slot *slot = arg;
	struct session *s = slot->session;
	const struct dnsbl_site *site = &s->config->dnsbl_sites.items[slot->index - 2];

	if (a->status == DNS_UNKNOWN) {
		s->dns.dnsbl_unknown = true;
	} else if (a->status == DNS_FOUND) {
		for (size_t i = 0; i < a->count; i++) {
			if (dnsbl_site_matches(site, &a->addrs[i])) {
				size_t used = strlen(s->dns.dnsbl_listed);

				s->dns.dnsbl_score += site->weight;
				snprintf(s->dns.dnsbl_listed + used, sizeof(s->dns.dnsbl_listed) - used, "%s%s",
				    used ? "," : "", site->zone);
				break;
			}
		}
	}
	slot_done(s, slot);
}

void
client_dns_start(struct session *s)
{
	const struct config *c = s->config;

	memset(&s->dns, 0, sizeof(s->dns));
	s->dns.started = true;
	for (int i = 0; i < SESSION_DNS_SLOTS; i++) {
		s->dns.slots[i].session = s;
		s->dns.slots[i].index = i;
	}
	/* Peers' history for this client (database), asked in parallel with DNS. */
	s->db_lookup = db_lookup_client(&s->client, c->db_read_budget, shared_history_done, s);
	if (s->db_lookup)
		s->dns.pending++;
	if (!c->dns_checks) {
		if (s->dns.pending == 0)
			s->dns.done = true;
		return;
	}
	s->dns.ptr_status = DNS_UNKNOWN;
	s->dns.forward_status = DNS_UNKNOWN;
	if ((s->dns.slots[0].request = dns_lookup_ptr(&s->client, ptr_answer, &s->dns.slots[0])) != NULL)
		s->dns.pending++;
	for (size_t i = 0; i < c->dnsbl_sites.count; i++) {
		struct session_dns_slot *slot = &s->dns.slots[2 + i];
		char name[512];

		if (dnsbl_query_name(&s->client, c->dnsbl_sites.items[i].zone, name, sizeof(name)) == -1) {
			s->dns.dnsbl_unknown = true;
			continue;
		}
		if ((slot->request = dns_lookup_addr(name, AF_INET, dnsbl_answer, slot)) != NULL)
			s->dns.pending++;
		else
			s->dns.dnsbl_unknown = true;
	}
	if (s->dns.pending == 0)
		s->dns.done = true;
}

/* client_dns_abandon - the session goes (or stops waiting): answers still fill the cache. */
void
client_dns_abandon(struct session *s)
{
	for (int i = 0; i < SESSION_DNS_SLOTS; i++) {
		if (s->dns.slots[i].request) {
			dns_abandon(s->dns.slots[i].request);
			s->dns.slots[i].request = NULL;
		}
	}
	db_abandon_lookup(s->db_lookup);
	s->db_lookup = NULL;
	s->dns.pending = 0;
}
