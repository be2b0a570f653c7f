/*
 * test_netaddr.c - address literals, IPv4-mapped normalisation, the
 * per-client key (IPv6 /64), CIDR parsing and matching, HOST:PORT; each
 * parser with a format -> parse round trip.
 */
#include "unit.h"

#include <arpa/inet.h>

#include "netaddr.h"

/* ---- netaddr_parse / netaddr_format ---- */

struct parse_case {
	const char	*label;
	const char	*text;
	int		 family;	/* 0: refused */
	const char	*canonical;
};

static const struct parse_case parse_cases[] = {
	{ "IPv4", "192.0.2.1", AF_INET, "192.0.2.1" },
	{ "IPv4 zero", "0.0.0.0", AF_INET, "0.0.0.0" },
	{ "IPv4 broadcast", "255.255.255.255", AF_INET, "255.255.255.255" },
	{ "IPv6 loopback", "::1", AF_INET6, "::1" },
	{ "IPv6 unspecified", "::", AF_INET6, "::" },
	{ "IPv6 compressed", "2001:db8::1", AF_INET6, "2001:db8::1" },
	{ "IPv6 uncompressed, upper case", "2001:0DB8:0000:0000:0000:0000:0000:0001", AF_INET6, "2001:db8::1" },
	{ "IPv6 full", "2001:db8:1:2:3:4:5:6", AF_INET6, "2001:db8:1:2:3:4:5:6" },
	{ "IPv4-mapped stays IPv6 when parsed", "::ffff:192.0.2.1", AF_INET6, "::ffff:192.0.2.1" },
	{ "empty", "", 0, NULL },
	{ "three octets", "192.0.2", 0, NULL },
	{ "octet over 255", "192.0.2.256", 0, NULL },
	{ "leading zero octet", "192.0.2.01", 0, NULL },
	{ "five octets", "192.0.2.1.5", 0, NULL },
	{ "hex IPv4", "0xc0.0.2.1", 0, NULL },
	{ "leading blank", " 192.0.2.1", 0, NULL },
	{ "trailing blank", "192.0.2.1 ", 0, NULL },
	{ "IPv6 in brackets", "[::1]", 0, NULL },
	{ "IPv6 with prefix", "2001:db8::/32", 0, NULL },
	{ "IPv6 with zone", "fe80::1%eth0", 0, NULL },
	{ "two double colons", "2001::db8::1", 0, NULL },
	{ "nine groups", "1:2:3:4:5:6:7:8:9", 0, NULL },
	{ "host name", "mx.example.org", 0, NULL },
	{ "IPv4 with port", "192.0.2.1:25", 0, NULL },
};

static void
test_netaddr_parse(void **state)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *tc = &parse_cases[i];
		struct netaddr a, b;
		char text[NETADDR_STRLEN];
		int rc = netaddr_parse(tc->text, &a);

		if (tc->family == 0) {
			EXPECT(tc->label, rc == -1, "\"%s\" accepted", unit_str(tc->text));
			continue;
		}
		EXPECT(tc->label, rc == 0 && a.family == tc->family, "\"%s\": rc %d family %d", tc->text, rc, a.family);
		if (rc != 0)
			continue;
		netaddr_format(&a, text, sizeof(text));
		EXPECT(tc->label, strcmp(text, tc->canonical) == 0, "formatted \"%s\", expected \"%s\"", text, tc->canonical);
		/* Round trip: format -> parse gives the same address. */
		EXPECT(tc->label, netaddr_parse(text, &b) == 0 && netaddr_equal(&a, &b), "\"%s\" does not parse back", text);
	}
	EXPECT_ALL_PASSED();
}

/* ---- netaddr_normalize ---- */

struct normalize_case {
	const char	*label;
	const char	*in;
	int		 family;
	const char	*out;
};

static const struct normalize_case normalize_cases[] = {
	{ "IPv4-mapped becomes IPv4", "::ffff:1.2.3.4", AF_INET, "1.2.3.4" },
	{ "IPv4-mapped, hex form", "::ffff:c000:201", AF_INET, "192.0.2.1" },
	{ "IPv4-mapped 0.0.0.0", "::ffff:0.0.0.0", AF_INET, "0.0.0.0" },
	{ "IPv4 unchanged", "1.2.3.4", AF_INET, "1.2.3.4" },
	{ "IPv6 unchanged", "2001:db8::1", AF_INET6, "2001:db8::1" },
	{ "IPv4-compatible (deprecated) stays IPv6", "::1.2.3.4", AF_INET6, "::1.2.3.4" },
	{ "IPv4-translated ::ffff:0:a.b.c.d stays IPv6", "::ffff:0:1.2.3.4", AF_INET6, "::ffff:0:102:304" },
	{ "NAT64 prefix stays IPv6", "64:ff9b::1.2.3.4", AF_INET6, "64:ff9b::102:304" },
	{ "loopback stays IPv6", "::1", AF_INET6, "::1" },
};

static void
test_netaddr_normalize(void **state)
{
	for (size_t i = 0; i < sizeof(normalize_cases) / sizeof(normalize_cases[0]); i++) {
		const struct normalize_case *tc = &normalize_cases[i];
		struct netaddr a, want;
		char text[NETADDR_STRLEN];

		assert_int_equal(netaddr_parse(tc->in, &a), 0);
		netaddr_normalize(&a);
		netaddr_format(&a, text, sizeof(text));
		EXPECT(tc->label, a.family == tc->family, "family %d, expected %d", a.family, tc->family);
		EXPECT(tc->label, strcmp(text, tc->out) == 0, "\"%s\", expected \"%s\"", text, tc->out);
		assert_int_equal(netaddr_parse(tc->out, &want), 0);
		EXPECT(tc->label, netaddr_equal(&a, &want), "not equal to a parsed \"%s\"", tc->out);
		/* Normalising twice changes nothing. */
		want = a;
		netaddr_normalize(&want);
		EXPECT(tc->label, netaddr_equal(&a, &want), "not idempotent");
	}
	EXPECT_ALL_PASSED();
}

/* ---- netaddr_client_key ---- */

struct key_case {
	const char	*label;
	const char	*addr;
	const char	*key;
};

static const struct key_case key_cases[] = {
	{ "IPv4 is its own key", "192.0.2.1", "192.0.2.1" },
	{ "IPv4 neighbours differ", "192.0.2.2", "192.0.2.2" },
	{ "IPv6 counted per /64", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::" },
	{ "IPv6 same /64, other interface id", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::" },
	{ "IPv6 next /64", "2001:db8:1:3::1", "2001:db8:1:3::" },
	{ "IPv4-mapped counted as IPv4", "::ffff:192.0.2.1", "192.0.2.1" },
	{ "IPv6 loopback", "::1", "::" },
};

static void
test_netaddr_client_key(void **state)
{
	for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
		const struct key_case *tc = &key_cases[i];
		struct netaddr a, key, want;
		char text[NETADDR_STRLEN];

		assert_int_equal(netaddr_parse(tc->addr, &a), 0);
		netaddr_client_key(&a, &key);
		netaddr_format(&key, text, sizeof(text));
		assert_int_equal(netaddr_parse(tc->key, &want), 0);
		EXPECT(tc->label, netaddr_equal(&key, &want), "key \"%s\", expected \"%s\"", text, tc->key);
	}
	EXPECT_ALL_PASSED();
}

/* ---- cidr_parse ---- */

struct cidr_case {
	const char	*label;
	const char	*text;
	bool		 ok;
	const char	*addr;		/* masked network */
	unsigned	 prefix;
};

static const struct cidr_case cidr_cases[] = {
	{ "IPv4 /8", "10.0.0.0/8", true, "10.0.0.0", 8 },
	{ "IPv4 host bits masked", "10.1.2.3/8", true, "10.0.0.0", 8 },
	{ "IPv4 /9 masks inside an octet", "10.255.0.0/9", true, "10.128.0.0", 9 },
	{ "IPv4 without prefix is /32", "192.0.2.1", true, "192.0.2.1", 32 },
	{ "IPv4 /32", "192.0.2.1/32", true, "192.0.2.1", 32 },
	{ "IPv4 /0", "1.2.3.4/0", true, "0.0.0.0", 0 },
	{ "IPv6 /32", "2001:db8::/32", true, "2001:db8::", 32 },
	{ "IPv6 host bits masked", "2001:db8:1:2::1/48", true, "2001:db8:1::", 48 },
	{ "IPv6 without prefix is /128", "2001:db8::1", true, "2001:db8::1", 128 },
	{ "IPv6 /0", "::/0", true, "::", 0 },
	{ "IPv6 /127", "2001:db8::ffff/127", true, "2001:db8::fffe", 127 },
	{ "leading zero in prefix", "10.0.0.0/08", true, "10.0.0.0", 8 },
	{ "IPv4 prefix 33", "10.0.0.0/33", false, NULL, 0 },
	{ "IPv6 prefix 129", "::/129", false, NULL, 0 },
	{ "empty prefix", "10.0.0.0/", false, NULL, 0 },
	{ "no address", "/8", false, NULL, 0 },
	{ "empty", "", false, NULL, 0 },
	{ "two slashes", "10.0.0.0/8/9", false, NULL, 0 },
	{ "negative prefix", "10.0.0.0/-1", false, NULL, 0 },
	{ "plus prefix", "10.0.0.0/+8", false, NULL, 0 },
	{ "blank in prefix", "10.0.0.0/ 8", false, NULL, 0 },
	{ "junk after prefix", "10.0.0.0/8x", false, NULL, 0 },
	{ "huge prefix", "10.0.0.0/4294967304", false, NULL, 0 },
	{ "short IPv4", "10.0.0/8", false, NULL, 0 },
	{ "host name", "example.org/24", false, NULL, 0 },
};

static void
test_cidr_parse(void **state)
{
	for (size_t i = 0; i < sizeof(cidr_cases) / sizeof(cidr_cases[0]); i++) {
		const struct cidr_case *tc = &cidr_cases[i];
		struct cidr c, back;
		struct netaddr want;
		char text[NETADDR_STRLEN], printed[NETADDR_STRLEN + 8];
		int rc = cidr_parse(tc->text, &c);

		if (!tc->ok) {
			EXPECT(tc->label, rc == -1, "\"%s\" accepted", tc->text);
			continue;
		}
		EXPECT(tc->label, rc == 0, "\"%s\" refused", tc->text);
		if (rc != 0)
			continue;
		assert_int_equal(netaddr_parse(tc->addr, &want), 0);
		EXPECT(tc->label, netaddr_equal(&c.addr, &want) && c.prefix_len == tc->prefix, "%s/%u, expected %s/%u",
		    netaddr_format(&c.addr, text, sizeof(text)), c.prefix_len, tc->addr, tc->prefix);
		/* Round trip as config_print writes it. */
		snprintf(printed, sizeof(printed), "%s/%u", netaddr_format(&c.addr, text, sizeof(text)), c.prefix_len);
		EXPECT(tc->label, cidr_parse(printed, &back) == 0 && netaddr_equal(&back.addr, &c.addr) &&
		    back.prefix_len == c.prefix_len, "\"%s\" does not parse back", printed);
	}
	EXPECT_ALL_PASSED();
}

/* ---- cidr_contains ---- */

struct contains_case {
	const char	*label;
	const char	*cidr;
	const char	*addr;
	bool		 contained;
};

static const struct contains_case contains_cases[] = {
	{ "IPv4 /8 first", "10.0.0.0/8", "10.0.0.0", true },
	{ "IPv4 /8 last", "10.0.0.0/8", "10.255.255.255", true },
	{ "IPv4 /8 next network", "10.0.0.0/8", "11.0.0.0", false },
	{ "IPv4 /8 previous network", "10.0.0.0/8", "9.255.255.255", false },
	{ "IPv4 /9 inside", "10.0.0.0/9", "10.127.255.255", true },
	{ "IPv4 /9 outside", "10.0.0.0/9", "10.128.0.0", false },
	{ "IPv4 /31", "192.0.2.0/31", "192.0.2.1", true },
	{ "IPv4 /31 outside", "192.0.2.0/31", "192.0.2.2", false },
	{ "IPv4 /32 itself", "192.0.2.7/32", "192.0.2.7", true },
	{ "IPv4 /32 neighbour", "192.0.2.7/32", "192.0.2.6", false },
	{ "IPv4 /0 holds every IPv4", "0.0.0.0/0", "203.0.113.9", true },
	{ "IPv4 /0 holds no IPv6", "0.0.0.0/0", "2001:db8::1", false },
	{ "IPv6 /0 holds no plain IPv4", "::/0", "192.0.2.1", false },
	{ "IPv4 network holds the IPv4-mapped form", "192.0.2.0/24", "::ffff:192.0.2.9", true },
	{ "IPv4 network, IPv4-mapped outside", "192.0.2.0/24", "::ffff:192.0.3.9", false },
	{ "IPv4-mapped network holds the IPv4-mapped address", "::ffff:192.0.2.0/120", "::ffff:192.0.2.9", true },
	{ "IPv4-mapped network holds the IPv4 address", "::ffff:192.0.2.0/120", "192.0.2.9", true },
	{ "IPv6 /32 inside", "2001:db8::/32", "2001:db8:ffff:ffff::1", true },
	{ "IPv6 /32 outside", "2001:db8::/32", "2001:db9::", false },
	{ "IPv6 /64 inside", "2001:db8:1:2::/64", "2001:db8:1:2:ffff:ffff:ffff:ffff", true },
	{ "IPv6 /64 next", "2001:db8:1:2::/64", "2001:db8:1:3::", false },
	{ "IPv6 /127", "2001:db8::fffe/127", "2001:db8::ffff", true },
	{ "IPv6 /128 itself", "2001:db8::1", "2001:db8::1", true },
	{ "IPv6 /128 neighbour", "2001:db8::1", "2001:db8::2", false },
	{ "IPv6 network holds no IPv4", "2001:db8::/32", "32.1.13.184", false },
};

static void
test_cidr_contains(void **state)
{
	for (size_t i = 0; i < sizeof(contains_cases) / sizeof(contains_cases[0]); i++) {
		const struct contains_case *tc = &contains_cases[i];
		struct cidr c;
		struct netaddr a;

		assert_int_equal(cidr_parse(tc->cidr, &c), 0);
		assert_int_equal(netaddr_parse(tc->addr, &a), 0);
		EXPECT(tc->label, cidr_contains(&c, &a) == tc->contained, "%s in %s: %d, expected %d", tc->addr, tc->cidr,
		    !tc->contained, tc->contained);
	}

	/* A list: any item matches; an empty list matches nothing. */
	{
		struct cidr items[2];
		struct cidr_list l = { 2, items };
		struct cidr_list empty = { 0, NULL };
		struct netaddr a;

		assert_int_equal(cidr_parse("10.0.0.0/8", &items[0]), 0);
		assert_int_equal(cidr_parse("2001:db8::/32", &items[1]), 0);
		assert_int_equal(netaddr_parse("2001:db8::5", &a), 0);
		EXPECT("list: second item matches", cidr_list_contains(&l, &a), "no match");
		assert_int_equal(netaddr_parse("10.9.9.9", &a), 0);
		EXPECT("list: first item matches", cidr_list_contains(&l, &a), "no match");
		assert_int_equal(netaddr_parse("192.0.2.1", &a), 0);
		EXPECT("list: no item matches", !cidr_list_contains(&l, &a), "match");
		EXPECT("empty list matches nothing", !cidr_list_contains(&empty, &a), "match");
	}
	EXPECT_ALL_PASSED();
}

/* ---- hostport_parse ---- */

struct hostport_case {
	const char	*label;
	const char	*text;
	bool		 ok;
	const char	*addr;
	uint16_t	 port;
};

static const struct hostport_case hostport_cases[] = {
	{ "IPv4", "127.0.0.1:10025", true, "127.0.0.1", 10025 },
	{ "IPv4 port 1", "192.0.2.1:1", true, "192.0.2.1", 1 },
	{ "IPv4 port 65535", "192.0.2.1:65535", true, "192.0.2.1", 65535 },
	{ "IPv4 port with leading zeros", "192.0.2.1:0025", true, "192.0.2.1", 25 },
	{ "IPv6 in brackets", "[::1]:25", true, "::1", 25 },
	{ "IPv6 full in brackets", "[2001:db8::25]:2525", true, "2001:db8::25", 2525 },
	{ "IPv6 without brackets", "::1:25", false, NULL, 0 },
	{ "IPv6 without brackets, full", "2001:db8::25:2525", false, NULL, 0 },
	{ "no port", "127.0.0.1", false, NULL, 0 },
	{ "empty port", "127.0.0.1:", false, NULL, 0 },
	{ "port 0", "127.0.0.1:0", false, NULL, 0 },
	{ "port 65536", "127.0.0.1:65536", false, NULL, 0 },
	{ "huge port", "127.0.0.1:4294967321", false, NULL, 0 },
	{ "negative port", "127.0.0.1:-25", false, NULL, 0 },
	{ "plus port", "127.0.0.1:+25", false, NULL, 0 },
	{ "junk after port", "127.0.0.1:25x", false, NULL, 0 },
	{ "blank before port", "127.0.0.1: 25", false, NULL, 0 },
	{ "no host", ":25", false, NULL, 0 },
	{ "empty", "", false, NULL, 0 },
	{ "host name", "localhost:25", false, NULL, 0 },
	{ "IPv4 in brackets", "[127.0.0.1]:25", false, NULL, 0 },
	{ "brackets without port", "[::1]", false, NULL, 0 },
	{ "brackets, empty port", "[::1]:", false, NULL, 0 },
	{ "brackets, no colon", "[::1]25", false, NULL, 0 },
	{ "unclosed bracket", "[::1:25", false, NULL, 0 },
	{ "empty brackets", "[]:25", false, NULL, 0 },
	{ "two ports", "127.0.0.1:25:26", false, NULL, 0 },
};

static void
test_hostport_parse(void **state)
{
	for (size_t i = 0; i < sizeof(hostport_cases) / sizeof(hostport_cases[0]); i++) {
		const struct hostport_case *tc = &hostport_cases[i];
		struct netaddr a, want, back;
		uint16_t port = 0, back_port = 0;
		char text[NETADDR_STRLEN], printed[NETADDR_STRLEN + 16];
		int rc = hostport_parse(tc->text, &a, &port);

		if (!tc->ok) {
			EXPECT(tc->label, rc == -1, "\"%s\" accepted", tc->text);
			continue;
		}
		EXPECT(tc->label, rc == 0, "\"%s\" refused", tc->text);
		if (rc != 0)
			continue;
		assert_int_equal(netaddr_parse(tc->addr, &want), 0);
		EXPECT(tc->label, netaddr_equal(&a, &want) && port == tc->port, "%s port %u",
		    netaddr_format(&a, text, sizeof(text)), port);
		/* Round trip as config_print writes it. */
		netaddr_format(&a, text, sizeof(text));
		snprintf(printed, sizeof(printed), a.family == AF_INET6 ? "[%s]:%u" : "%s:%u", text, port);
		EXPECT(tc->label, hostport_parse(printed, &back, &back_port) == 0 && netaddr_equal(&a, &back) &&
		    back_port == port, "\"%s\" does not parse back", printed);
	}
	EXPECT_ALL_PASSED();
}

/* ---- sockaddr conversions ---- */

struct sockaddr_case {
	const char	*label;
	const char	*addr;
	uint16_t	 port;
};

static const struct sockaddr_case sockaddr_cases[] = {
	{ "IPv4", "192.0.2.1", 25 },
	{ "IPv6", "2001:db8::1", 65535 },
	{ "IPv4-mapped kept as IPv6", "::ffff:192.0.2.1", 1 },
};

static void
test_sockaddr_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof(sockaddr_cases) / sizeof(sockaddr_cases[0]); i++) {
		const struct sockaddr_case *tc = &sockaddr_cases[i];
		struct sockaddr_storage ss;
		socklen_t len;
		struct netaddr a, b;
		uint16_t port = 0;

		assert_int_equal(netaddr_parse(tc->addr, &a), 0);
		netaddr_to_sockaddr(&a, tc->port, &ss, &len);
		EXPECT(tc->label, ss.ss_family == a.family, "family %d", ss.ss_family);
		EXPECT(tc->label, len == (a.family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)),
		    "length %u", (unsigned)len);
		EXPECT(tc->label, netaddr_from_sockaddr((struct sockaddr *)&ss, &b, &port) == 0, "refused");
		EXPECT(tc->label, netaddr_equal(&a, &b) && port == tc->port, "differs after the round trip");
	}
	{
		struct sockaddr_storage ss;
		struct netaddr b;

		memset(&ss, 0, sizeof(ss));
		ss.ss_family = AF_UNIX;
		EXPECT("AF_UNIX refused", netaddr_from_sockaddr((struct sockaddr *)&ss, &b, NULL) == -1, "accepted");
	}
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_netaddr_parse),
		cmocka_unit_test(test_netaddr_normalize),
		cmocka_unit_test(test_netaddr_client_key),
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_contains),
		cmocka_unit_test(test_hostport_parse),
		cmocka_unit_test(test_sockaddr_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
