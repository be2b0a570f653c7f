/*
 * test_config.c - config_load_string(): every error names "FILE:LINE: key:",
 * defaults, value parsers, comments, IPv6 tiers, and print -> load -> print.
 */
#include "unit.h"

#include <stdlib.h>

#include "config.h"
#include "netaddr.h"

#define CFG_NAME "test.conf"
#define TIER_LINE "primary_ips = 192.0.2.1\n"

/* load - config_load_string with the test name; err always terminated. */
static struct config *
load(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return config_load_string(CFG_NAME, text, err, errlen);
}

/* ---- error paths ---- */

struct error_case {
	const char	*label;
	const char	*text;
	unsigned	 line;		/* 0: the problem belongs to no single line */
	const char	*key;		/* must be named right after "FILE:LINE: " */
	const char	*problem;	/* must appear in the message */
};

static const struct error_case error_cases[] = {
	{ "unknown key", TIER_LINE "listen_prot = 25\n", 2, "listen_prot", "unknown key" },
	{ "unknown key after comments and blanks", "# c\n\n   \t\n" TIER_LINE "colour = blue\n", 5, "colour", "unknown key" },
	{ "unknown key, CRLF line ends", "primary_ips = 192.0.2.1\r\nfoo = 1\r\n", 2, "foo", "unknown key" },
	{ "missing '='", TIER_LINE "\nlisten_port 25\n", 3, "listen_port 25", "key = value" },
	{ "missing '=' on the first line", "greet_wait\n" TIER_LINE, 1, "greet_wait", "key = value" },
	{ "set twice", "listen_port = 25\n" TIER_LINE "listen_port = 26\n", 3, "listen_port", "set twice" },
	{ "set twice, same value", TIER_LINE "primary_ips = 192.0.2.1\n", 2, "primary_ips", "set twice" },
	{ "bad number: trailing junk", TIER_LINE "listen_port = 25x\n", 2, "listen_port", "bad number" },
	{ "bad number: empty", TIER_LINE "max_errors =\n", 2, "max_errors", "bad number" },
	{ "bad number: hex", TIER_LINE "max_sessions = 0x10\n", 2, "max_sessions", "bad number" },
	{ "bad number: fraction", TIER_LINE "min_data_rate = 1.5\n", 2, "min_data_rate", "bad number" },
	{ "bad number: overflow", TIER_LINE "max_sessions = 99999999999999999999999\n", 2, "max_sessions", "bad number" },
	{ "out of range low: listen_port 0", TIER_LINE "listen_port = 0\n", 2, "listen_port", "out of range" },
	{ "out of range low: max_recipients 99", TIER_LINE "max_recipients = 99\n", 2, "max_recipients", "out of range" },
	{ "out of range low: negative max_errors", TIER_LINE "max_errors = -1\n", 2, "max_errors", "out of range" },
	{ "out of range low: command_timeout 999ms", TIER_LINE "command_timeout = 999ms\n", 2, "command_timeout", "out of range" },
	{ "out of range low: session_timeout 9s", TIER_LINE "session_timeout = 9s\n", 2, "session_timeout", "out of range" },
	{ "out of range low: message_size_limit 1023", TIER_LINE "message_size_limit = 1023\n", 2, "message_size_limit", "out of range" },
	{ "out of range high: listen_port 65536", TIER_LINE "listen_port = 65536\n", 2, "listen_port", "out of range" },
	{ "out of range high: greet_wait 61s", TIER_LINE "greet_wait = 61s\n", 2, "greet_wait", "out of range" },
	{ "out of range high: greet_wait 60001ms", TIER_LINE "greet_wait = 60001ms\n", 2, "greet_wait", "out of range" },
	{ "out of range high: session_timeout 2d", TIER_LINE "session_timeout = 2d\n", 2, "session_timeout", "out of range" },
	{ "out of range high: backend_connect_timeout 11m", TIER_LINE "backend_connect_timeout = 11m\n", 2, "backend_connect_timeout", "out of range" },
	{ "out of range high: message_size_limit 3g", TIER_LINE "message_size_limit = 3g\n", 2, "message_size_limit", "out of range" },
	{ "out of range high: max_sessions 200001", TIER_LINE "max_sessions = 200001\n", 2, "max_sessions", "out of range" },
	{ "out of range high: min_data_rate", TIER_LINE "min_data_rate = 1000000001\n", 2, "min_data_rate", "out of range" },
	{ "out of range high: shutdown_grace 2h", TIER_LINE "shutdown_grace = 2h\n", 2, "shutdown_grace", "out of range" },
	{ "bad duration suffix x", TIER_LINE "greet_wait = 5x\n", 2, "greet_wait", "bad duration" },
	{ "bad duration suffix sec", TIER_LINE "data_timeout = 5sec\n", 2, "data_timeout", "bad duration" },
	{ "bad duration: blank before suffix", TIER_LINE "data_timeout = 5 s\n", 2, "data_timeout", "bad duration" },
	{ "bad duration: fraction", TIER_LINE "greet_wait = 1.5s\n", 2, "greet_wait", "bad duration" },
	{ "bad duration: suffix only", TIER_LINE "greet_wait = s\n", 2, "greet_wait", "bad duration" },
	{ "bad duration: negative", TIER_LINE "shutdown_grace = -1s\n", 2, "shutdown_grace", "bad duration" },
	{ "bad size suffix t", TIER_LINE "message_size_limit = 1t\n", 2, "message_size_limit", "bad size" },
	{ "bad size suffix kb", TIER_LINE "message_size_limit = 10kb\n", 2, "message_size_limit", "bad size" },
	{ "bad size: fraction", TIER_LINE "message_size_limit = 1.5m\n", 2, "message_size_limit", "bad size" },
	{ "bad enum value", TIER_LINE "backend_client_info = proxy_v3\n", 2, "backend_client_info", "not one of" },
	{ "bad enum value: empty", TIER_LINE "backend_client_info =\n", 2, "backend_client_info", "not one of" },
	{ "bad address in a list", "primary_ips = 192.0.2.1, 192.0.2.300\n", 1, "primary_ips", "192.0.2.300" },
	{ "host name in an address list", TIER_LINE "secondary_ips = mx2.example.org\n", 2, "secondary_ips", "mx2.example.org" },
	{ "CIDR in an address list", TIER_LINE "bait_ips = 192.0.2.0/24\n", 2, "bait_ips", "192.0.2.0/24" },
	{ "bracketed IPv6 in an address list", "primary_ips = [2001:db8::1]\n", 1, "primary_ips", "[2001:db8::1]" },
	{ "bad CIDR: prefix 33", TIER_LINE "allow_networks = 10.0.0.0/33\n", 2, "allow_networks", "10.0.0.0/33" },
	{ "bad CIDR: empty prefix", TIER_LINE "block_networks = 10.0.0.0/\n", 2, "block_networks", "10.0.0.0/" },
	{ "bad CIDR: IPv6 prefix 129", TIER_LINE "allow_networks = 2001:db8::/129\n", 2, "allow_networks", "2001:db8::/129" },
	{ "bad CIDR: short IPv4", TIER_LINE "allow_networks = 192.0.2.0/24, 10.0.0/8\n", 2, "allow_networks", "10.0.0/8" },
	{ "bad backend: no port", TIER_LINE "backend = 127.0.0.1\n", 2, "backend", "127.0.0.1" },
	{ "bad backend: IPv6 without brackets", TIER_LINE "backend = ::1:10025\n", 2, "backend", "::1:10025" },
	{ "bad backend: IPv6 without brackets, full", TIER_LINE "backend = 2001:db8::25:25\n", 2, "backend", "2001:db8::25:25" },
	{ "bad backend: brackets without port", TIER_LINE "backend = [::1]\n", 2, "backend", "[::1]" },
	{ "bad backend: port 0", TIER_LINE "backend = 127.0.0.1:0\n", 2, "backend", "127.0.0.1:0" },
	{ "bad backend: port 65536", TIER_LINE "backend = 127.0.0.1:65536\n", 2, "backend", "65536" },
	{ "bad backend: host name", TIER_LINE "backend = localhost:10025\n", 2, "backend", "localhost:10025" },
	{ "bad backend: IPv4 in brackets", TIER_LINE "backend = [127.0.0.1]:25\n", 2, "backend", "[127.0.0.1]:25" },
	{ "invalid hostname: empty label", TIER_LINE "hostname = mx..example.org\n", 2, "hostname", "not a valid host name" },
	{ "invalid hostname: blank inside", TIER_LINE "hostname = mx example\n", 2, "hostname", "not a valid host name" },
	{ "invalid hostname: slash", TIER_LINE "hostname = mx/example\n", 2, "hostname", "not a valid host name" },
	{ "invalid hostname: leading dot", TIER_LINE "hostname = .example.org\n", 2, "hostname", "not a valid host name" },
	{ "invalid hostname: label of 64", TIER_LINE
	    "hostname = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example\n", 2, "hostname",
	    "not a valid host name" },
	{ "tier address in two tier lists", TIER_LINE "secondary_ips = 192.0.2.2, 192.0.2.1\n", 2, "secondary_ips",
	    "192.0.2.1" },
	{ "tier address in two lists, once IPv4-mapped", TIER_LINE "bait_ips = ::ffff:192.0.2.1\n", 2, "bait_ips",
	    "192.0.2.1" },
	{ "tier address in two lists, IPv6", "primary_ips = 2001:db8::1\nlisten_port = 25\nbait_ips = 2001:DB8::1\n", 3,
	    "bait_ips", "2001:db8::1" },
	{ "no tier addresses", "listen_port = 25\n", 0, "primary_ips", "no tier addresses" },
	{ "no tier addresses: empty lists", "primary_ips =\nsecondary_ips = \nbait_ips=\n", 0, "primary_ips",
	    "no tier addresses" },
};

static void
test_config_errors(void **state)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *tc = &error_cases[i];
		char err[1024], prefix[256];
		struct config *c = load(tc->text, err, sizeof(err));

		EXPECT(tc->label, c == NULL, "loaded although it should fail");
		config_unref(c);
		if (tc->line > 0)
			snprintf(prefix, sizeof(prefix), "%s:%u: %s: ", CFG_NAME, tc->line, tc->key);
		else
			snprintf(prefix, sizeof(prefix), "%s: ", CFG_NAME);
		EXPECT(tc->label, strncmp(err, prefix, strlen(prefix)) == 0, "message \"%s\" does not start with \"%s\"",
		    unit_str(err), prefix);
		if (tc->line == 0)
			EXPECT(tc->label, strstr(err, tc->key) != NULL, "message \"%s\" does not name %s", unit_str(err),
			    tc->key);
		EXPECT(tc->label, strstr(err, tc->problem) != NULL, "message \"%s\" does not say \"%s\"", unit_str(err),
		    tc->problem);
	}
	EXPECT_ALL_PASSED();
}

/* Errors whose input is built at run time (too long for a literal). */
static void
test_config_errors_generated(void **state)
{
	char err[1024];
	struct config *c;
	char *text, *p;

	/* A line over the 4095-octet line buffer: the key is at its start, so it can be named. */
	text = malloc(8192);
	p = text + sprintf(text, "%sprimary_ips = 192.0.2.1", "listen_port = 25\n");
	for (int i = 0; i < 400; i++)
		p += sprintf(p, ", 192.0.2.%d", i % 250 + 2);
	sprintf(p, "\n");
	c = load(text, err, sizeof(err));
	EXPECT("over-long line", c == NULL, "loaded although it should fail");
	config_unref(c);
	EXPECT("over-long line", strncmp(err, CFG_NAME ":2: ", strlen(CFG_NAME ":2: ")) == 0,
	    "message \"%s\" does not name file and line 2", unit_str(err));
	EXPECT("over-long line", strncmp(err, CFG_NAME ":2: primary_ips: ", strlen(CFG_NAME ":2: primary_ips: ")) == 0,
	    "message \"%s\" does not name the key primary_ips (contract: \"FILE:LINE: key: problem\")", unit_str(err));
	EXPECT("over-long line", strstr(err, "too long") != NULL, "message \"%s\" does not say too long", unit_str(err));
	free(text);

	/* More addresses than a list holds (ADDR_LIST_MAX). */
	text = malloc(8192);
	p = text + sprintf(text, "primary_ips =");
	for (int i = 0; i < ADDR_LIST_MAX + 1; i++)
		p += sprintf(p, " 10.0.%d.%d", i / 200, i % 200 + 1);
	sprintf(p, "\n");
	c = load(text, err, sizeof(err));
	EXPECT("address list over ADDR_LIST_MAX", c == NULL, "loaded although it should fail");
	config_unref(c);
	EXPECT("address list over ADDR_LIST_MAX", strncmp(err, CFG_NAME ":1: primary_ips: ",
	    strlen(CFG_NAME ":1: primary_ips: ")) == 0, "message \"%s\"", unit_str(err));
	free(text);

	/* A host name over 255 octets made of valid labels. */
	text = malloc(1024);
	p = text + sprintf(text, TIER_LINE "hostname = ");
	for (int i = 0; i < 5; i++)
		p += sprintf(p, "%s%s", i ? "." : "", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	sprintf(p, "\n");
	c = load(text, err, sizeof(err));
	EXPECT("invalid hostname: over 255 octets", c == NULL, "loaded although it should fail");
	config_unref(c);
	EXPECT("invalid hostname: over 255 octets", strncmp(err, CFG_NAME ":2: hostname: ",
	    strlen(CFG_NAME ":2: hostname: ")) == 0, "message \"%s\"", unit_str(err));
	free(text);

	EXPECT_ALL_PASSED();
}

/* ---- defaults and accepted values ---- */

struct value_case {
	const char	*label;
	const char	*text;		/* TIER_LINE is prepended */
	size_t		 offset;	/* an int64_t field of struct config */
	int64_t		 expected;
};

#define F(field) offsetof(struct config, field)

static const struct value_case default_cases[] = {
	{ "default listen_port 25", "", F(listen_port), 25 },
	{ "default backend_client_info none", "", F(backend_client_info), CLIENT_INFO_NONE },
	{ "default greet_wait 6s", "", F(greet_wait), 6000 },
	{ "default command_timeout 5m", "", F(command_timeout), 300000 },
	{ "default data_timeout 3m", "", F(data_timeout), 180000 },
	{ "default session_timeout 1h", "", F(session_timeout), 3600000 },
	{ "default min_data_rate 128", "", F(min_data_rate), 128 },
	{ "default backend_connect_timeout 30s", "", F(backend_connect_timeout), 30000 },
	{ "default backend_timeout 5m", "", F(backend_timeout), 300000 },
	{ "default backend_data_timeout 10m", "", F(backend_data_timeout), 600000 },
	{ "default backend_probe_interval 30s", "", F(backend_probe_interval), 30000 },
	{ "default max_sessions 1000", "", F(max_sessions), 1000 },
	{ "default max_sessions_per_client 20", "", F(max_sessions_per_client), 20 },
	{ "default max_recipients 100", "", F(max_recipients), 100 },
	{ "default max_errors 20", "", F(max_errors), 20 },
	{ "default message_size_limit 25m", "", F(message_size_limit), 25 * 1024 * 1024 },
	{ "default shutdown_grace 30s", "", F(shutdown_grace), 30000 },

	{ "greet_wait 0 disables the wait", "greet_wait = 0\n", F(greet_wait), 0 },
	{ "greet_wait 0s", "greet_wait = 0s\n", F(greet_wait), 0 },
	{ "greet_wait plain number is seconds", "greet_wait = 3\n", F(greet_wait), 3000 },
	{ "greet_wait 250ms", "greet_wait = 250ms\n", F(greet_wait), 250 },
	{ "greet_wait 60s (upper bound)", "greet_wait = 60s\n", F(greet_wait), 60000 },
	{ "greet_wait 1m (upper bound)", "greet_wait = 1m\n", F(greet_wait), 60000 },
	{ "command_timeout 1s (lower bound)", "command_timeout = 1s\n", F(command_timeout), 1000 },
	{ "command_timeout 1h (upper bound)", "command_timeout = 1h\n", F(command_timeout), 3600000 },
	{ "session_timeout 1d (upper bound)", "session_timeout = 1d\n", F(session_timeout), 86400000 },
	{ "session_timeout 10s (lower bound)", "session_timeout = 10s\n", F(session_timeout), 10000 },
	{ "listen_port 1 (lower bound)", "listen_port = 1\n", F(listen_port), 1 },
	{ "listen_port 65535 (upper bound)", "listen_port = 65535\n", F(listen_port), 65535 },
	{ "max_recipients 100000 (upper bound)", "max_recipients = 100000\n", F(max_recipients), 100000 },
	{ "min_data_rate 0 (off)", "min_data_rate = 0\n", F(min_data_rate), 0 },
	{ "message_size_limit 1k (lower bound)", "message_size_limit = 1k\n", F(message_size_limit), 1024 },
	{ "message_size_limit 2g (upper bound)", "message_size_limit = 2g\n", F(message_size_limit), 2147483648LL },
	{ "message_size_limit plain bytes", "message_size_limit = 100000\n", F(message_size_limit), 100000 },
	{ "message_size_limit 10m", "message_size_limit = 10m\n", F(message_size_limit), 10485760 },
	{ "backend_client_info xclient", "backend_client_info = xclient\n", F(backend_client_info), CLIENT_INFO_XCLIENT },
	{ "backend_client_info proxy_v1", "backend_client_info = proxy_v1\n", F(backend_client_info), CLIENT_INFO_PROXY_V1 },
	{ "backend_client_info proxy_v2", "backend_client_info = proxy_v2\n", F(backend_client_info), CLIENT_INFO_PROXY_V2 },
	{ "value with a trailing comment", "listen_port = 2525 # submission\n", F(listen_port), 2525 },
	{ "no blanks around '='", "listen_port=2526\n", F(listen_port), 2526 },
	{ "indented key, tabs", "\t listen_port\t=\t2527\t\n", F(listen_port), 2527 },
	{ "commented-out line ignored", "#listen_port = 1\nlisten_port = 2528\n", F(listen_port), 2528 },
	{ "CRLF line ends", "listen_port = 2529\r\n", F(listen_port), 2529 },
	{ "last line without newline", "listen_port = 2530", F(listen_port), 2530 },
	{ "blank and comment-only lines", "\n\n   \n# x = y\n\t# indented comment\nmax_errors = 5\n\n", F(max_errors), 5 },
};

static void
test_config_values(void **state)
{
	for (size_t i = 0; i < sizeof(default_cases) / sizeof(default_cases[0]); i++) {
		const struct value_case *tc = &default_cases[i];
		char text[1024], err[1024];
		struct config *c;

		snprintf(text, sizeof(text), "%s%s", TIER_LINE, tc->text);
		c = load(text, err, sizeof(err));
		EXPECT(tc->label, c != NULL, "refused: %s", unit_str(err));
		if (c == NULL)
			continue;
		int64_t got = *(const int64_t *)((const char *)c + tc->offset);

		EXPECT(tc->label, got == tc->expected, "got %lld, expected %lld", (long long)got, (long long)tc->expected);
		config_unref(c);
	}
	EXPECT_ALL_PASSED();
}

static void
test_config_default_strings(void **state)
{
	char err[1024], a[NETADDR_STRLEN];
	struct config *c = load(TIER_LINE, err, sizeof(err));

	assert_non_null(c);
	EXPECT("default backend", c->backend_addr.family == AF_INET && c->backend_port == 10025 &&
	    strcmp(netaddr_format(&c->backend_addr, a, sizeof(a)), "127.0.0.1") == 0,
	    "backend %s:%u", netaddr_format(&c->backend_addr, a, sizeof(a)), c->backend_port);
	EXPECT("default hostname is the system's", c->hostname != NULL && c->hostname[0] != '\0', "empty hostname");
	EXPECT("default lists are empty", c->tier_ips[TIER_SECONDARY].count == 0 && c->tier_ips[TIER_BAIT].count == 0 &&
	    c->allow_networks.count == 0 && c->block_networks.count == 0, "a list is not empty");
	EXPECT("path is the name", c->path && strcmp(c->path, CFG_NAME) == 0, "path %s", unit_str(c->path));
	EXPECT("refcount starts at 1", c->refcount == 1, "refcount %d", c->refcount);
	config_unref(c);

	c = load(TIER_LINE "hostname = mx1.example.org\nbackend = [2001:db8::25]:2525\n", err, sizeof(err));
	assert_non_null(c);
	EXPECT("hostname set", strcmp(c->hostname, "mx1.example.org") == 0, "hostname %s", c->hostname);
	EXPECT("IPv6 backend", c->backend_addr.family == AF_INET6 && c->backend_port == 2525 &&
	    strcmp(netaddr_format(&c->backend_addr, a, sizeof(a)), "2001:db8::25") == 0,
	    "backend %s port %u", a, c->backend_port);
	config_unref(c);
	EXPECT_ALL_PASSED();
}

/* ---- tier lists, IPv6 ---- */

struct tier_case {
	const char	*label;
	const char	*text;
	const char	*address;
	int		 tier;		/* expected config_tier_of, -1 none */
};

static const struct tier_case tier_cases[] = {
	{ "IPv4 primary", "primary_ips = 192.0.2.1\n", "192.0.2.1", TIER_PRIMARY },
	{ "IPv6 primary", "primary_ips = 2001:db8::1\n", "2001:db8::1", TIER_PRIMARY },
	{ "IPv6 written uncompressed", "primary_ips = 2001:0db8:0:0:0:0:0:1\n", "2001:db8::1", TIER_PRIMARY },
	{ "IPv6 loopback secondary", "primary_ips = 192.0.2.1\nsecondary_ips = ::1\n", "::1", TIER_SECONDARY },
	{ "IPv6 bait among IPv4", "primary_ips = 192.0.2.1\nbait_ips = 192.0.2.3, 2001:db8::3\n", "2001:db8::3", TIER_BAIT },
	{ "IPv4-mapped tier address is taken as IPv4", "primary_ips = ::ffff:192.0.2.5\n", "192.0.2.5", TIER_PRIMARY },
	{ "list separated by commas and blanks", "primary_ips = 192.0.2.1,192.0.2.2 192.0.2.3 ,\t192.0.2.4\n",
	    "192.0.2.4", TIER_PRIMARY },
	{ "address not configured", "primary_ips = 192.0.2.1\n", "192.0.2.2", -1 },
	{ "IPv6 /64 neighbour is not the tier address", "primary_ips = 2001:db8::1\n", "2001:db8::2", -1 },
};

static void
test_config_tiers(void **state)
{
	for (size_t i = 0; i < sizeof(tier_cases) / sizeof(tier_cases[0]); i++) {
		const struct tier_case *tc = &tier_cases[i];
		char err[1024];
		struct config *c = load(tc->text, err, sizeof(err));
		struct netaddr a;

		EXPECT(tc->label, c != NULL, "refused: %s", unit_str(err));
		if (c == NULL)
			continue;
		assert_int_equal(netaddr_parse(tc->address, &a), 0);
		netaddr_normalize(&a);
		EXPECT(tc->label, config_tier_of(c, &a) == tc->tier, "tier %d, expected %d", config_tier_of(c, &a), tc->tier);
		config_unref(c);
	}
	EXPECT_ALL_PASSED();
}

/* ---- value parsers ---- */

struct parse_case {
	const char	*label;
	const char	*text;
	int		 rc;
	int64_t		 value;
};

static const struct parse_case duration_cases[] = {
	{ "plain number is seconds", "5", 0, 5000 },
	{ "zero", "0", 0, 0 },
	{ "milliseconds", "250ms", 0, 250 },
	{ "seconds", "5s", 0, 5000 },
	{ "minutes", "2m", 0, 120000 },
	{ "hours", "1h", 0, 3600000 },
	{ "days", "1d", 0, 86400000 },
	{ "zero milliseconds", "0ms", 0, 0 },
	{ "large day count", "365d", 0, 365LL * 86400000 },
	{ "empty", "", -1, 0 },
	{ "suffix only", "s", -1, 0 },
	{ "negative", "-5s", -1, 0 },
	{ "explicit plus", "+5s", -1, 0 },
	{ "unknown suffix", "5x", -1, 0 },
	{ "two suffixes", "5sm", -1, 0 },
	{ "word suffix", "5sec", -1, 0 },
	{ "blank before suffix", "5 s", -1, 0 },
	{ "leading blank", " 5s", -1, 0 },
	{ "fraction", "1.5s", -1, 0 },
	{ "overflow of the number", "99999999999999999999", -1, 0 },
	{ "overflow when scaled", "9223372036854775807d", -1, 0 },
};

static const struct parse_case size_cases[] = {
	{ "plain bytes", "1024", 0, 1024 },
	{ "zero", "0", 0, 0 },
	{ "kibibytes", "1k", 0, 1024 },
	{ "mebibytes", "25m", 0, 25 * 1048576LL },
	{ "gibibytes", "2g", 0, 2 * 1073741824LL },
	{ "empty", "", -1, 0 },
	{ "suffix only", "k", -1, 0 },
	{ "negative", "-1k", -1, 0 },
	{ "unknown suffix t", "1t", -1, 0 },
	{ "suffix kb", "1kb", -1, 0 },
	{ "time suffix s", "1s", -1, 0 },
	{ "fraction", "1.5m", -1, 0 },
	{ "blank before suffix", "1 k", -1, 0 },
	{ "overflow when scaled", "9999999999999g", -1, 0 },
};

static void
run_parse_cases(const struct parse_case *cases, size_t n, int (*parse)(const char *, int64_t *))
{
	for (size_t i = 0; i < n; i++) {
		int64_t v = -12345;
		int rc = parse(cases[i].text, &v);

		EXPECT(cases[i].label, rc == cases[i].rc, "\"%s\": rc %d, expected %d", cases[i].text, rc, cases[i].rc);
		if (rc == 0 && cases[i].rc == 0)
			EXPECT(cases[i].label, v == cases[i].value, "\"%s\": %lld, expected %lld", cases[i].text,
			    (long long)v, (long long)cases[i].value);
	}
}

static void
test_config_parse_duration(void **state)
{
	run_parse_cases(duration_cases, sizeof(duration_cases) / sizeof(duration_cases[0]), config_parse_duration);
	EXPECT_ALL_PASSED();
}

static void
test_config_parse_size(void **state)
{
	run_parse_cases(size_cases, sizeof(size_cases) / sizeof(size_cases[0]), config_parse_size);
	EXPECT_ALL_PASSED();
}

/* ---- round trip: print -> load_string -> print ---- */

static char *
print_to_string(const struct config *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	config_print(c, f);
	fclose(f);
	if (text == NULL)
		abort();
	return text;
}

struct roundtrip_case {
	const char	*label;
	const char	*text;
};

static const struct roundtrip_case roundtrip_cases[] = {
	{ "defaults with one tier address", TIER_LINE "hostname = mx.example.org\n" },
	{ "every key away from its default",
	    "primary_ips = 192.0.2.10, 2001:db8::10\n"
	    "secondary_ips = 192.0.2.11\n"
	    "bait_ips = 192.0.2.12, 2001:db8::12\n"
	    "listen_port = 2525\n"
	    "backend = [2001:db8::25]:10026\n"
	    "backend_client_info = proxy_v2\n"
	    "hostname = mx.example.org\n"
	    "allow_networks = 10.0.0.0/8, 2001:db8:1::/48, 198.51.100.7\n"
	    "block_networks = 203.0.113.0/24\n"
	    "greet_wait = 1500ms\n"
	    "command_timeout = 90s\n"
	    "data_timeout = 2m\n"
	    "session_timeout = 1d\n"
	    "min_data_rate = 0\n"
	    "backend_connect_timeout = 10m\n"
	    "backend_timeout = 59s\n"
	    "backend_data_timeout = 1h\n"
	    "backend_probe_interval = 1s\n"
	    "max_sessions = 200000\n"
	    "max_sessions_per_client = 1\n"
	    "max_recipients = 1000\n"
	    "max_errors = 1\n"
	    "message_size_limit = 1536k\n"
	    "shutdown_grace = 0\n" },
	{ "odd values: sizes in bytes, durations in ms",
	    "bait_ips = ::1\nmessage_size_limit = 1025\ngreet_wait = 1ms\ncommand_timeout = 1001ms\n"
	    "backend_client_info = xclient\nhostname = a\n" },
	{ "IPv4-mapped and non-canonical input",
	    "secondary_ips = ::ffff:192.0.2.9, 2001:0DB8:0000::0001\nallow_networks = 10.1.2.3/8\n"
	    "backend = 127.0.0.2:25\nhostname = MX.Example.ORG\n" },
};

static void
compare_configs(const char *label, const struct config *a, const struct config *b)
{
	static const size_t ints[] = {
		F(listen_port), F(backend_client_info), F(greet_wait), F(command_timeout), F(data_timeout),
		F(session_timeout), F(min_data_rate), F(backend_connect_timeout), F(backend_timeout),
		F(backend_data_timeout), F(backend_probe_interval), F(max_sessions), F(max_sessions_per_client),
		F(max_recipients), F(max_errors), F(message_size_limit), F(shutdown_grace),
	};

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		int64_t x = *(const int64_t *)((const char *)a + ints[i]);
		int64_t y = *(const int64_t *)((const char *)b + ints[i]);

		EXPECT(label, x == y, "field at offset %zu: %lld then %lld", ints[i], (long long)x, (long long)y);
	}
	for (int t = 0; t < TIER_COUNT; t++) {
		EXPECT(label, a->tier_ips[t].count == b->tier_ips[t].count, "%s count", tier_role_name(t));
		for (size_t j = 0; j < a->tier_ips[t].count && j < b->tier_ips[t].count; j++)
			EXPECT(label, netaddr_equal(&a->tier_ips[t].items[j], &b->tier_ips[t].items[j]), "%s item %zu",
			    tier_role_name(t), j);
	}
	EXPECT(label, a->allow_networks.count == b->allow_networks.count, "allow count");
	for (size_t j = 0; j < a->allow_networks.count && j < b->allow_networks.count; j++)
		EXPECT(label, netaddr_equal(&a->allow_networks.items[j].addr, &b->allow_networks.items[j].addr) &&
		    a->allow_networks.items[j].prefix_len == b->allow_networks.items[j].prefix_len, "allow item %zu", j);
	EXPECT(label, a->block_networks.count == b->block_networks.count, "block count");
	EXPECT(label, netaddr_equal(&a->backend_addr, &b->backend_addr) && a->backend_port == b->backend_port, "backend");
	EXPECT(label, strcmp(a->hostname, b->hostname) == 0, "hostname %s / %s", a->hostname, b->hostname);
}

static void
test_config_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof(roundtrip_cases) / sizeof(roundtrip_cases[0]); i++) {
		const struct roundtrip_case *tc = &roundtrip_cases[i];
		char err[1024];
		struct config *c1 = load(tc->text, err, sizeof(err)), *c2;
		char *t1, *t2;

		EXPECT(tc->label, c1 != NULL, "input refused: %s", unit_str(err));
		if (c1 == NULL)
			continue;
		t1 = print_to_string(c1);
		c2 = load(t1, err, sizeof(err));
		EXPECT(tc->label, c2 != NULL, "printed config refused: %s\n%s", unit_str(err), t1);
		if (c2 != NULL) {
			t2 = print_to_string(c2);
			EXPECT(tc->label, strcmp(t1, t2) == 0, "print differs after reload:\n%s---\n%s", t1, t2);
			compare_configs(tc->label, c1, c2);
			free(t2);
			config_unref(c2);
		}
		free(t1);
		config_unref(c1);
	}
	EXPECT_ALL_PASSED();
}

/* config_ref / config_unref keep a config alive for a session across a reload. */
static void
test_config_refcount(void **state)
{
	char err[1024];
	struct config *c = load(TIER_LINE, err, sizeof(err));

	assert_non_null(c);
	assert_ptr_equal(config_ref(c), c);
	assert_int_equal(c->refcount, 2);
	config_unref(c);
	assert_int_equal(c->refcount, 1);
	config_unref(c);
	config_unref(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_config_errors_generated),
		cmocka_unit_test(test_config_values),
		cmocka_unit_test(test_config_default_strings),
		cmocka_unit_test(test_config_tiers),
		cmocka_unit_test(test_config_parse_duration),
		cmocka_unit_test(test_config_parse_size),
		cmocka_unit_test(test_config_roundtrip),
		cmocka_unit_test(test_config_refcount),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
