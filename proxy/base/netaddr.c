#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int
netaddr_parse(const char *text, struct netaddr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, out->bytes) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, out->bytes) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -1;
}

/* netaddr_normalize - IPv4-mapped IPv6 becomes plain IPv4 (its /64 would be all of IPv4). */
void
netaddr_normalize(struct netaddr *a)
{
	if (a->family == AF_INET6 && memcmp(a->bytes, v4mapped_prefix, 12) == 0) {
		uint8_t v4[4];

		memcpy(v4, a->bytes + 12, 4);
		memset(a->bytes, 0, sizeof(a->bytes));
		memcpy(a->bytes, v4, 4);
		a->family = AF_INET;
	}
}

int
netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *out, uint16_t *port)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		out->family = AF_INET;
		memcpy(out->bytes, &sin->sin_addr, 4);
		if (port)
			*port = ntohs(sin->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		out->family = AF_INET6;
		memcpy(out->bytes, &sin6->sin6_addr, 16);
		if (port)
			*port = ntohs(sin6->sin6_port);
		return 0;
	}
	return -1;
}

void
netaddr_to_sockaddr(const struct netaddr *a, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a->bytes, 4);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a->bytes, 16);
		*len = sizeof(*sin6);
	}
}

const char *
netaddr_format(const struct netaddr *a, char *buf, size_t len)
{
	if (inet_ntop(a->family, a->bytes, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

bool
netaddr_equal(const struct netaddr *a, const struct netaddr *b)
{
	if (a->family != b->family)
		return false;
	return memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0;
}

void
netaddr_mask(struct netaddr *a, unsigned prefix_len)
{
	unsigned total = a->family == AF_INET ? 32 : 128;

	if (prefix_len >= total)
		return;
	for (unsigned bit = prefix_len; bit < total; bit++)
		a->bytes[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
}

void
netaddr_client_key(const struct netaddr *a, struct netaddr *key)
{
	*key = *a;
	netaddr_normalize(key);
	if (key->family == AF_INET6)
		netaddr_mask(key, 64);
}

int
cidr_parse(const char *text, struct cidr *out)
{
	char buf[128];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned total;

	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, text, alen);
	buf[alen] = '\0';
	if (netaddr_parse(buf, &out->addr) == -1)
		return -1;
	total = out->addr.family == AF_INET ? 32 : 128;
	if (slash) {
		char *end;
		unsigned long n;

		if (slash[1] < '0' || slash[1] > '9')
			return -1;
		errno = 0;
		n = strtoul(slash + 1, &end, 10);
		if (errno || *end != '\0' || n > total)
			return -1;
		out->prefix_len = (unsigned)n;
	} else {
		out->prefix_len = total;
	}
	/* Clients are normalised to IPv4, so a mapped network must be too; one wider than ::ffff:0:0/96 means nothing. */
	if (out->addr.family == AF_INET6) {
		struct netaddr probe = out->addr;

		netaddr_normalize(&probe);
		if (probe.family == AF_INET) {
			if (out->prefix_len < 96)
				return -1;
			out->addr = probe;
			out->prefix_len -= 96;
		}
	}
	netaddr_mask(&out->addr, out->prefix_len);
	return 0;
}

bool
cidr_contains(const struct cidr *c, const struct netaddr *a)
{
	struct netaddr probe = *a;

	netaddr_normalize(&probe);
	if (probe.family != c->addr.family)
		return false;
	netaddr_mask(&probe, c->prefix_len);
	return netaddr_equal(&probe, &c->addr);
}

bool
cidr_list_contains(const struct cidr_list *l, const struct netaddr *a)
{
	for (size_t i = 0; i < l->count; i++)
		if (cidr_contains(&l->items[i], a))
			return true;
	return false;
}

void
cidr_list_clear(struct cidr_list *l)
{
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

int
hostport_parse(const char *text, struct netaddr *addr, uint16_t *port)
{
	char host[128];
	const char *colon;
	size_t hlen;
	char *end;
	unsigned long p;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		hlen = (size_t)(close - text - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return -1;
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
		colon = close + 1;
		if (netaddr_parse(host, addr) == -1 || addr->family != AF_INET6)
			return -1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - text);
		if (hlen == 0 || hlen >= sizeof(host))
			return -1;
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		if (netaddr_parse(host, addr) == -1 || addr->family != AF_INET)
			return -1;
	}
	if (colon[1] < '0' || colon[1] > '9')
		return -1;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end != '\0' || p == 0 || p > 65535)
		return -1;
	*port = (uint16_t)p;
	return 0;
}
