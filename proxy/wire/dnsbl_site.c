#include "dnsbl_site.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
set_bit(uint8_t *set, unsigned v)
{
	set[v / 8] |= (uint8_t)(1u << (v % 8));
}

static bool
parse_octet_value(const char **p, unsigned *v)
{
	char *end;
	unsigned long n;

	if (!isdigit((unsigned char)**p))
		return false;
	n = strtoul(*p, &end, 10);
	if (n > 255)
		return false;
	*v = (unsigned)n;
	*p = end;
	return true;
}

/* parse_octet - "N", "[a..b]" or "[a;b;c]" into a bitmap. */
static bool
parse_octet(const char **p, uint8_t *set)
{
	unsigned a, b;

	if (**p != '[') {
		if (!parse_octet_value(p, &a))
			return false;
		set_bit(set, a);
		return true;
	}
	(*p)++;
	for (;;) {
		if (!parse_octet_value(p, &a))
			return false;
		if ((*p)[0] == '.' && (*p)[1] == '.') {
			*p += 2;
			if (!parse_octet_value(p, &b) || b < a)
				return false;
			for (unsigned v = a; v <= b; v++)
				set_bit(set, v);
		} else {
			set_bit(set, a);
		}
		if (**p == ';') {
			(*p)++;
			continue;
		}
		if (**p != ']')
			return false;
		(*p)++;
		return true;
	}
}

int
dnsbl_site_parse(const char *text, struct dnsbl_site *out)
{
	const char *eq = strchr(text, '='), *star = strrchr(text, '*');
	size_t zlen;

	memset(out, 0, sizeof(*out));
	out->weight = 1;
	zlen = eq ? (size_t)(eq - text) : star ? (size_t)(star - text) : strlen(text);
	if (zlen == 0 || zlen >= sizeof(out->zone))
		return -1;
	memcpy(out->zone, text, zlen);
	for (size_t i = 0; i < zlen; i++)
		if (!isalnum((unsigned char)out->zone[i]) && out->zone[i] != '.' && out->zone[i] != '-' &&
		    out->zone[i] != '_')
			return -1;
	if (eq) {
		const char *p = eq + 1;

		out->has_filter = true;
		for (int o = 0; o < 4; o++) {
			if (!parse_octet(&p, out->octet_set[o]))
				return -1;
			if (o < 3 && *p++ != '.')
				return -1;
		}
		if (*p != '\0' && *p != '*')
			return -1;
	}
	if (star) {
		char *end;
		long w = strtol(star + 1, &end, 10);

		if (star[1] == '\0' || *end != '\0' || w < -100 || w > 100)
			return -1;
		out->weight = (int)w;
	}
	return 0;
}

bool
dnsbl_site_matches(const struct dnsbl_site *site, const struct netaddr *answer)
{
	if (answer->family != AF_INET)
		return false;
	/* Without a filter any 127.0.0.0/8 answer lists; others are resolver noise. */
	if (!site->has_filter)
		return answer->bytes[0] == 127;
	for (int o = 0; o < 4; o++) {
		unsigned v = answer->bytes[o];

		if (!(site->octet_set[o][v / 8] & (1u << (v % 8))))
			return false;
	}
	return true;
}

int
dnsbl_query_name(const struct netaddr *client, const char *zone, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	int n;

	if (client->family == AF_INET) {
		n = snprintf(buf, len, "%u.%u.%u.%u.%s", client->bytes[3], client->bytes[2], client->bytes[1],
		    client->bytes[0], zone);
		return n > 0 && (size_t)n < len ? 0 : -1;
	}
	for (int i = 15; i >= 0; i--) {
		if (o + 4 >= len)
			return -1;
		buf[o++] = hex[client->bytes[i] & 15];
		buf[o++] = '.';
		buf[o++] = hex[client->bytes[i] >> 4];
		buf[o++] = '.';
	}
	n = snprintf(buf + o, len - o, "%s", zone);
	return n > 0 && (size_t)n < len - o ? 0 : -1;
}
