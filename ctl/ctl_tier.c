/*
 * ctl_tier.c - `tier list` (this machine's addresses, their role, whether
 * mxtierd listens there, their reverse DNS) and `tier set ADDRESS ROLE`
 * (edit the file, check it as mxtierd -t does, reload, or change nothing).
 */
#include "ctl.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl_config_edit.h"
#include "ctl_resolve.h"

#define TIER_LIST_MAX	512	/* addresses shown */

/* One row of `tier list`. */
struct tier_row {
	struct netaddr	addr;
	char		ifname[IF_NAMESIZE + 1];	/* "" = not an address of this machine */
	int		role;				/* in the file, -1 none */
	int		listening;			/* the daemon's role there, -1 not listening */
	bool		loopback;
};

struct tier_table {
	struct tier_row	rows[TIER_LIST_MAX];
	size_t		count;
};

/* table_row - the row of addr, added if new (NULL when the table is full). */
static struct tier_row *
table_row(struct tier_table *t, const struct netaddr *addr_in)
{
	struct netaddr addr = *addr_in;

	netaddr_normalize(&addr);
	for (size_t i = 0; i < t->count; i++)
		if (netaddr_equal(&t->rows[i].addr, &addr))
			return &t->rows[i];
	if (t->count >= TIER_LIST_MAX)
		return NULL;
	t->rows[t->count] = (struct tier_row){ .addr = addr, .role = -1, .listening = -1 };
	return &t->rows[t->count++];
}

/* address_is_local - can a socket bind it here? (127.0.0.10 is, through lo's 127.0.0.0/8.) */
static bool
address_is_local(const struct netaddr *a)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, rc;

	netaddr_to_sockaddr(a, 0, &ss, &len);
	if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return false;
	rc = bind(fd, (struct sockaddr *)&ss, len);
	close(fd);
	return rc == 0;
}

/* interface_of - the interface that holds addr, or whose loopback network holds it. */
static void
interface_of(struct ifaddrs *ifs, struct tier_row *row)
{
	for (int exact = 1; exact >= 0 && row->ifname[0] == '\0'; exact--) {
		for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
			struct netaddr a, mask;
			struct cidr net;
			unsigned bits = 0;

			if (i->ifa_addr == NULL || netaddr_from_sockaddr(i->ifa_addr, &a, NULL) == -1)
				continue;
			netaddr_normalize(&a);
			if (exact ? !netaddr_equal(&a, &row->addr) : !(i->ifa_flags & IFF_LOOPBACK) || i->ifa_netmask == NULL)
				continue;
			if (!exact) {
				if (netaddr_from_sockaddr(i->ifa_netmask, &mask, NULL) == -1 || mask.family != a.family)
					continue;
				for (int b = 0; b < (a.family == AF_INET ? 4 : 16); b++)
					bits += (unsigned)__builtin_popcount(mask.bytes[b]);
				net.addr = a;
				net.prefix_len = bits;
				netaddr_mask(&net.addr, bits);
				if (!cidr_contains(&net, &row->addr))
					continue;
			}
			snprintf(row->ifname, sizeof(row->ifname), "%s", i->ifa_name);
			row->loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
			/* Held through lo's network: only if the kernel agrees (it routes the whole 127.0.0.0/8 there). */
			if (!exact && !address_is_local(&row->addr))
				row->ifname[0] = '\0';
			break;
		}
	}
}

static int
role_parse(const char *text)
{
	for (int t = 0; t < TIER_COUNT; t++)
		if (strcmp(text, tier_role_name(t)) == 0)
			return t;
	return strcmp(text, "none") == 0 ? -1 : -2;
}

static const char *
role_name(int role)
{
	return role < 0 ? "none" : tier_role_name(role);
}

/*
 * daemon_listeners - ask the daemon where it listens and mark the rows.
 * Returns the answer's kind; *why says why there is no answer.
 */
static enum ctl_answer
daemon_listeners(const struct config *c, struct tier_table *t, unsigned *port, char **why)
{
	enum ctl_answer a = ctl_control_ask(c, "listeners", why);
	char *save = NULL;

	if (a != CTL_ANSWER_OK)
		return a;
	*port = 0;
	/* "ok", then one "ADDRESS PORT ROLE [transparent]" line per listener. */
	for (char *line = strtok_r(*why, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char addr[NETADDR_STRLEN], role[16];
		struct netaddr na;
		struct tier_row *row;
		unsigned p;

		if (sscanf(line, "%63s %u %15s", addr, &p, role) != 3 || netaddr_parse(addr, &na) == -1)
			continue;
		if ((row = table_row(t, &na)) != NULL)
			row->listening = role_parse(role) >= 0 ? role_parse(role) : TIER_COUNT;
		*port = p;
	}
	return a;
}

static void
dns_text(struct ctl_resolver *r, const struct tier_row *row, char *out, size_t len)
{
	struct ctl_fcrdns f;

	/* Loopback and link-local addresses other than tier addresses: nobody's MX, nothing to ask. */
	if (row->role < 0 && (row->loopback || (row->addr.family == AF_INET6 && row->addr.bytes[0] == 0xfe &&
	    (row->addr.bytes[1] & 0xc0) == 0x80))) {
		snprintf(out, len, "-");
		return;
	}
	ctl_fcrdns(r, &row->addr, &f);
	if (f.ptr_status == CTL_DNS_FAILED)
		snprintf(out, len, "unknown (PTR lookup failed)");
	else if (f.ptr_status == CTL_DNS_NONE)
		snprintf(out, len, "no PTR");
	else if (f.confirmed[0] != '\0')
		snprintf(out, len, "%s (forward-confirmed)", f.confirmed);
	else if (f.forward_failed)
		snprintf(out, len, "%s (unknown: its A/AAAA lookup failed)", f.name);
	else
		snprintf(out, len, "%s (NOT confirmed: its A/AAAA records do not hold this address)", f.name);
}

/* tier_list - the table; marks tier addresses this machine does not have. */
static int
tier_list(const struct config *c)
{
	static struct tier_table t;
	struct ifaddrs *ifs = NULL;
	struct ctl_resolver *r;
	char *why = NULL, text[NETADDR_STRLEN];
	unsigned port = 0;
	enum ctl_answer a;
	size_t absent = 0;

	if (getifaddrs(&ifs) == -1) {
		fprintf(stderr, "mxtierctl: getifaddrs: %s\n", strerror(errno));
		return 1;
	}
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		struct netaddr na;

		if (i->ifa_addr && netaddr_from_sockaddr(i->ifa_addr, &na, NULL) == 0)
			table_row(&t, &na);
	}
	for (int role = 0; role < TIER_COUNT; role++)
		for (size_t j = 0; j < c->tier_ips[role].count; j++) {
			struct tier_row *row = table_row(&t, &c->tier_ips[role].items[j]);

			if (row)
				row->role = role;
		}
	a = daemon_listeners(c, &t, &port, &why);
	for (size_t i = 0; i < t.count; i++)
		interface_of(ifs, &t.rows[i]);
	freeifaddrs(ifs);
	if (a == CTL_ANSWER_OK)
		printf("mxtierd: running, tier port %u (control socket %s)\n", port, c->control_socket);
	else
		printf("mxtierd: no answer (%s)\n", why ? why : "?");
	free(why);
	r = ctl_resolver_new(c);
	printf("config: %s; DNS: %s\n", c->path, ctl_resolver_describe(r));
	printf("%-40s %-10s %-10s %-10s %s\n", "ADDRESS", "INTERFACE", "ROLE", "LISTENING", "REVERSE DNS");
	for (size_t i = 0; i < t.count; i++) {
		const struct tier_row *row = &t.rows[i];
		char listening[32], dns[CTL_DNS_NAME_MAX + 80];

		if (a != CTL_ANSWER_OK)
			snprintf(listening, sizeof(listening), "?");
		else if (row->listening < 0)
			snprintf(listening, sizeof(listening), "no");
		else if (row->listening == row->role)
			snprintf(listening, sizeof(listening), "yes");
		else	/* the file changed since the daemon read it */
			snprintf(listening, sizeof(listening), "yes(%s)", role_name(row->listening));
		dns_text(r, row, dns, sizeof(dns));
		printf("%-40s %-10s %-10s %-10s %s\n", netaddr_format(&row->addr, text, sizeof(text)),
		    row->ifname[0] ? row->ifname : "NOT-HERE", role_name(row->role), listening, dns);
		if (row->ifname[0] == '\0' && row->role >= 0)
			absent++;
	}
	ctl_resolver_free(r);
	for (size_t i = 0; i < t.count && absent; i++) {
		const struct tier_row *row = &t.rows[i];

		if (row->ifname[0] != '\0' || row->role < 0)
			continue;
		if (c->transparent)
			printf("note: %s (%s) is not an address of this machine: fine when its traffic is intercepted "
			    "(transparent = yes)\n", netaddr_format(&row->addr, text, sizeof(text)), role_name(row->role));
		else
			printf("warning: %s is in %s_ips but not an address of this machine: mxtierd cannot listen there\n",
			    netaddr_format(&row->addr, text, sizeof(text)), role_name(row->role));
	}
	return 0;
}

/* restore - put the old bytes back after the daemon refused; 0 when they are. */
static int
restore(const char *path, const char *old)
{
	char err[1024];

	if (ctl_config_replace(path, old, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxtierctl: could not restore %s: %s\n", path, err);
		return -1;
	}
	fprintf(stderr, "mxtierctl: %s restored\n", path);
	return 0;
}

/* tier_set - the edit, the check, the write, the reload; any refusal leaves file and daemon as they were. */
static int
tier_set(const struct config *c, const char *addr_text, const char *role_text)
{
	char err[1024], text[NETADDR_STRLEN], *old, *new, *reply = NULL;
	struct netaddr addr;
	struct config *next;
	int role = role_parse(role_text), was;
	bool changed;
	enum ctl_answer a;

	if (netaddr_parse(addr_text, &addr) == -1) {
		fprintf(stderr, "mxtierctl: \"%s\" is not an IPv4 or IPv6 address; %s unchanged\n", addr_text, c->path);
		return 2;
	}
	if (role < -1) {
		fprintf(stderr, "mxtierctl: unknown role \"%s\" (primary, secondary, bait or none); %s unchanged\n",
		    role_text, c->path);
		return 2;
	}
	netaddr_normalize(&addr);
	netaddr_format(&addr, text, sizeof(text));
	if ((old = ctl_config_read(c->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxtierctl: %s\n", err);
		return 1;
	}
	new = ctl_config_set_tier(old, &addr, role, &changed, &was);
	if (!changed) {
		printf("%s: %s is already %s; nothing to do\n", c->path, text, role_name(role));
		free(old);
		free(new);
		return 0;
	}
	/* The check mxtierd -t makes, on the new text under the file's own name. */
	next = config_load_string(c->path, new, err, sizeof(err));
	if (next == NULL || config_check_user(next, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxtierctl: refused: %s; %s unchanged\n", err, c->path);
		config_unref(next);
		free(old);
		free(new);
		return 1;
	}
	if (ctl_config_replace(c->path, new, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxtierctl: %s; %s unchanged\n", err, c->path);
		config_unref(next);
		free(old);
		free(new);
		return 1;
	}
	printf("%s: %s is now %s (was %s)\n", c->path, text, role_name(role), role_name(was));
	a = ctl_control_ask(next, "reload", &reply);
	if (a == CTL_ANSWER_OK) {
		printf("mxtierd: %s", reply + strcspn(reply, "\n") + (reply[strcspn(reply, "\n")] ? 1 : 0));
	} else if (a == CTL_ANSWER_UNREACHABLE) {
		printf("mxtierd: not running (%s); the change takes effect when it starts\n", reply);
	} else {
		bool applied = a == CTL_ANSWER_BROKEN || strstr(reply, "reload refused") == NULL;
		const char *why = strncmp(reply, "error: ", 7) == 0 ? reply + 7 : reply;
		char *again = NULL;

		fprintf(stderr, "mxtierctl: mxtierd did not take the change: %s%s", why,
		    why[0] && why[strlen(why) - 1] == '\n' ? "" : "\n");
		if (restore(c->path, old) == 0 && applied) {
			/* It runs the new config (or may): the old file again. */
			if (ctl_control_ask(next, "reload", &again) == CTL_ANSWER_OK)
				fprintf(stderr, "mxtierd: back to the previous configuration\n");
			else
				fprintf(stderr, "mxtierctl: reloading the previous configuration failed too: %s", again);
			free(again);
		}
		free(reply);
		config_unref(next);
		free(old);
		free(new);
		return 1;
	}
	free(reply);
	config_unref(next);
	free(old);
	free(new);
	return 0;
}

int
ctl_cmd_tier(const struct config *c, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return tier_list(c);
	if (argc == 4 && strcmp(argv[1], "set") == 0)
		return tier_set(c, argv[2], argv[3]);
	fprintf(stderr, "usage: mxtierctl tier list | tier set ADDRESS primary|secondary|bait|none\n");
	return 2;
}
