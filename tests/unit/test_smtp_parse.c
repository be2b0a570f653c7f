/*
 * test_smtp_parse.c - paths, MAIL parameters, verbs and HELO tokens as a
 * client sends them, with the RFC 5321 4.5.3.1 limits, and round trips
 * through what cmd_mail/cmd_rcpt rebuild for the backend.
 */
#include "unit.h"

#include <stdlib.h>

#include "smtp_parse.h"

static const char *
path_status_name(enum path_status st)
{
	static const char *const names[] = { "OK", "SYNTAX", "TOO_LONG", "LOCAL_TOO_LONG", "DOMAIN_TOO_LONG" };

	return (unsigned)st < 5 ? names[st] : "?";
}

/* ---- smtp_parse_path ---- */

enum path_kind {
	MAIL_PATH = 0,	/* reverse-path: "<>" allowed */
	RCPT_PATH	/* forward-path: "<postmaster>" allowed */
};

struct path_case {
	const char		*label;
	const char		*text;
	enum path_kind		 kind;
	enum path_status	 status;
	const char		*address;	/* for PATH_OK */
	const char		*rest;		/* for PATH_OK */
};

static const struct path_case path_cases[] = {
	{ "simple address", "<a@example.org>", MAIL_PATH, PATH_OK, "a@example.org", "" },
	{ "rest after the path", "<a@example.org> SIZE=10", MAIL_PATH, PATH_OK, "a@example.org", " SIZE=10" },
	{ "null path in MAIL", "<>", MAIL_PATH, PATH_OK, "", "" },
	{ "null path with parameters", "<> BODY=7BIT", MAIL_PATH, PATH_OK, "", " BODY=7BIT" },
	{ "null path refused in RCPT", "<>", RCPT_PATH, PATH_SYNTAX, NULL, NULL },
	{ "postmaster in RCPT", "<postmaster>", RCPT_PATH, PATH_OK, "postmaster", "" },
	{ "Postmaster, any case, in RCPT", "<PostMaster>", RCPT_PATH, PATH_OK, "PostMaster", "" },
	{ "bare postmaster refused in MAIL", "<postmaster>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "postmaster with a domain", "<postmaster@example.org>", RCPT_PATH, PATH_OK, "postmaster@example.org", "" },
	{ "source route dropped", "<@relay1.example,@relay2.example:a@example.org>", RCPT_PATH, PATH_OK,
	    "a@example.org", "" },
	{ "single-hop source route dropped", "<@relay.example:a@example.org>", MAIL_PATH, PATH_OK, "a@example.org", "" },
	{ "source route without colon", "<@relay.example,a@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "quoted local part", "<\"john doe\"@example.org>", MAIL_PATH, PATH_OK, "\"john doe\"@example.org", "" },
	{ "quoted local part with escaped quote", "<\"a\\\"b\"@example.org>", MAIL_PATH, PATH_OK,
	    "\"a\\\"b\"@example.org", "" },
	{ "quoted local part with @", "<\"a@b\"@example.org>", RCPT_PATH, PATH_OK, "\"a@b\"@example.org", "" },
	{ "quoted local part unterminated", "<\"abc@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "quoted local part with CR", "<\"a\rb\"@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "quoted local part with escaped LF", "<\"a\\\nb\"@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "dotted local part", "<first.last@example.org>", MAIL_PATH, PATH_OK, "first.last@example.org", "" },
	{ "atext specials", "<a+tag!#$%&'*/=?^_`{|}~-@example.org>", MAIL_PATH, PATH_OK,
	    "a+tag!#$%&'*/=?^_`{|}~-@example.org", "" },
	{ "leading dot in local part", "<.a@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "trailing dot in local part", "<a.@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "double dot in local part", "<a..b@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "IPv4 address literal", "<a@[192.0.2.1]>", MAIL_PATH, PATH_OK, "a@[192.0.2.1]", "" },
	{ "IPv6 address literal", "<a@[IPv6:2001:db8::1]>", RCPT_PATH, PATH_OK, "a@[IPv6:2001:db8::1]", "" },
	{ "empty address literal", "<a@[]>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "unclosed address literal", "<a@[192.0.2.1>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "address literal with blank", "<a@[192.0.2.1 ]>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "IPv6 tag in any case", "<a@[ipv6:::1]>", RCPT_PATH, PATH_OK, "a@[ipv6:::1]", "" },
	{ "IPv4-mapped IPv6 literal", "<a@[IPv6:::ffff:192.0.2.1]>", RCPT_PATH, PATH_OK, "a@[IPv6:::ffff:192.0.2.1]",
	    "" },
	/* Found by fuzz_smtp_parse: any printable text was taken as a literal, '@' included. */
	{ "address literal holding an @", "<user@[0/q@evil.example]>", RCPT_PATH, PATH_SYNTAX, NULL, NULL },
	{ "address literal that is no address", "<a@[mail.example.org]>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "IPv4 literal with an octet over 255", "<a@[192.0.2.300]>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "IPv4 literal with three octets", "<a@[192.0.2]>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "IPv6 address without its tag", "<a@[2001:db8::1]>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "IPv6 tag with a bad address", "<a@[IPv6:2001:db8::g]>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "general literal (unregistered tag)", "<a@[x-tag:content]>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "missing brackets", "a@example.org", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "missing closing bracket", "<a@example.org", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "missing opening bracket", "a@example.org>", RCPT_PATH, PATH_SYNTAX, NULL, NULL },
	{ "leading blank before bracket", " <a@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "no domain", "<a>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "empty domain", "<a@>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "empty local part", "<@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "two @", "<a@b@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "domain with trailing dot", "<a@example.org.>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "domain with empty label", "<a@example..org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "blank inside the brackets", "< a@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "blank before the closing bracket", "<a@example.org >", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "blank in the local part", "<a b@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "control character in local part", "<a\x01@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "DEL in local part", "<a\x7f@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "CR in local part", "<a\r@example.org>", RCPT_PATH, PATH_SYNTAX, NULL, NULL },
	{ "LF in domain", "<a@exa\nmple.org>", RCPT_PATH, PATH_SYNTAX, NULL, NULL },
	{ "tab in domain", "<a@exa\tmple.org>", RCPT_PATH, PATH_SYNTAX, NULL, NULL },
	{ "8-bit local part (no SMTPUTF8)", "<\xc3\xa9@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "angle bracket inside", "<a<b@example.org>", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "empty input", "", MAIL_PATH, PATH_SYNTAX, NULL, NULL },
	{ "label of 64 octets", "<a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org>", MAIL_PATH,
	    PATH_SYNTAX, NULL, NULL },
	{ "label of 63 octets", "<a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org>", MAIL_PATH,
	    PATH_OK, "a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org", "" },
};

static void
test_parse_path(void **state)
{
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *tc = &path_cases[i];
		struct smtp_path p;
		const char *rest = NULL;
		enum path_status st = smtp_parse_path(tc->text, tc->kind == MAIL_PATH, tc->kind == RCPT_PATH, &p, &rest);

		EXPECT(tc->label, st == tc->status, "\"%s\": %s, expected %s", unit_str(tc->text), path_status_name(st),
		    path_status_name(tc->status));
		if (st != PATH_OK || tc->status != PATH_OK)
			continue;
		EXPECT(tc->label, strcmp(p.address, tc->address) == 0, "address \"%s\", expected \"%s\"",
		    unit_str(p.address), unit_str(tc->address));
		EXPECT(tc->label, p.is_null == (tc->address[0] == '\0'), "is_null %d", p.is_null);
		EXPECT(tc->label, rest && strcmp(rest, tc->rest) == 0, "rest \"%s\", expected \"%s\"", unit_str(rest),
		    tc->rest);
	}
	EXPECT_ALL_PASSED();
}

/* Length limits: built at run time. */
struct length_case {
	const char		*label;
	size_t			 local_len;
	size_t			 domain_len;
	enum path_status	 status;
	enum path_status	 also_ok;	/* a second acceptable answer (both mean "too long") */
};

static const struct length_case length_cases[] = {
	{ "local part of 64 octets", 64, 11, PATH_OK, PATH_OK },
	{ "local part of 65 octets", 65, 11, PATH_LOCAL_TOO_LONG, PATH_LOCAL_TOO_LONG },
	{ "local part of 200 octets", 200, 11, PATH_LOCAL_TOO_LONG, PATH_LOCAL_TOO_LONG },
	{ "domain of 251: path of 255", 1, 251, PATH_OK, PATH_OK },
	{ "domain of 252: path of exactly 256", 1, 252, PATH_OK, PATH_OK },
	{ "domain of 253: path of 257", 1, 253, PATH_TOO_LONG, PATH_TOO_LONG },
	{ "domain of 255: path over 256", 1, 255, PATH_TOO_LONG, PATH_DOMAIN_TOO_LONG },
	{ "domain of 256", 1, 256, PATH_TOO_LONG, PATH_DOMAIN_TOO_LONG },
	{ "64 + 189: path of exactly 256", 64, 189, PATH_OK, PATH_OK },
	{ "64 + 190: path of 257", 64, 190, PATH_TOO_LONG, PATH_TOO_LONG },
	{ "path of 1000", 64, 900, PATH_TOO_LONG, PATH_DOMAIN_TOO_LONG },
};

/* make_domain - n octets of labels of at most 63, never an empty or trailing label. */
static void
make_domain(char *out, size_t n)
{
	size_t o = 0;

	while (o < n) {
		size_t left = n - o, label = left > 63 ? 62 : left;

		/* Never leave a lone dot at the end. */
		if (left > 63 && left - 62 - 1 == 0)
			label = 61;
		memset(out + o, 'd', label);
		o += label;
		if (o < n)
			out[o++] = '.';
	}
	out[o] = '\0';
}

static void
test_parse_path_lengths(void **state)
{
	for (size_t i = 0; i < sizeof(length_cases) / sizeof(length_cases[0]); i++) {
		const struct length_case *tc = &length_cases[i];
		char text[2048], domain[1024];
		struct smtp_path p;
		const char *rest;
		enum path_status st;

		make_domain(domain, tc->domain_len);
		assert_int_equal(strlen(domain), tc->domain_len);
		text[0] = '<';
		memset(text + 1, 'l', tc->local_len);
		snprintf(text + 1 + tc->local_len, sizeof(text) - 1 - tc->local_len, "@%s>", domain);
		st = smtp_parse_path(text, true, false, &p, &rest);
		EXPECT(tc->label, st == tc->status || st == tc->also_ok, "%s, expected %s", path_status_name(st),
		    path_status_name(tc->status));
		if (st == PATH_OK)
			EXPECT(tc->label, strlen(p.address) == tc->local_len + 1 + tc->domain_len, "address of %zu",
			    strlen(p.address));
	}

	/* A source route counts towards the 256 octets of the path. */
	{
		char text[600];

		snprintf(text, sizeof(text), "<@%s:a@example.org>", "r0123456789.r0123456789.r0123456789.r0123456789."
		    "r0123456789.r0123456789.r0123456789.r0123456789.r0123456789.r0123456789.r0123456789.r0123456789."
		    "r0123456789.r0123456789.r0123456789.r0123456789.r0123456789.r0123456789.r0123456789.r0123456789.x");
		struct smtp_path p;
		const char *rest;

		EXPECT("long source route", smtp_parse_path(text, true, false, &p, &rest) == PATH_TOO_LONG, "not TOO_LONG");
	}
	EXPECT_ALL_PASSED();
}

/* Round trip: what the backend gets ("<address>") parses back to the same address. */
static void
test_parse_path_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *tc = &path_cases[i];
		struct smtp_path p1, p2;
		const char *rest;
		char rebuilt[SMTP_PATH_MAX + 8];

		if (tc->status != PATH_OK)
			continue;
		assert_int_equal(smtp_parse_path(tc->text, tc->kind == MAIL_PATH, tc->kind == RCPT_PATH, &p1, &rest), PATH_OK);
		snprintf(rebuilt, sizeof(rebuilt), "<%s>", p1.address);
		EXPECT(tc->label, smtp_parse_path(rebuilt, tc->kind == MAIL_PATH, tc->kind == RCPT_PATH, &p2, &rest) ==
		    PATH_OK, "rebuilt \"%s\" does not parse", unit_str(rebuilt));
		EXPECT(tc->label, strcmp(p1.address, p2.address) == 0 && p1.is_null == p2.is_null && *rest == '\0',
		    "\"%s\" became \"%s\"", unit_str(p1.address), unit_str(p2.address));
	}
	EXPECT_ALL_PASSED();
}

/* ---- smtp_parse_mail_params ---- */

struct param_case {
	const char		*label;
	const char		*text;
	bool			 allow_8bitmime;
	enum param_status	 status;
	bool			 has_size;
	uint64_t		 size;
	enum body_type		 body;
};

static const struct param_case param_cases[] = {
	{ "no parameters", "", false, PARAM_OK, false, 0, BODY_UNSPECIFIED },
	{ "trailing blank only", " ", false, PARAM_OK, false, 0, BODY_UNSPECIFIED },
	{ "SIZE", " SIZE=12345", false, PARAM_OK, true, 12345, BODY_UNSPECIFIED },
	{ "SIZE=0", " SIZE=0", false, PARAM_OK, true, 0, BODY_UNSPECIFIED },
	{ "size in lower case", " size=10", false, PARAM_OK, true, 10, BODY_UNSPECIFIED },
	{ "SIZE largest 64-bit", " SIZE=18446744073709551615", false, PARAM_OK, true, 18446744073709551615ULL,
	    BODY_UNSPECIFIED },
	{ "BODY=7BIT", " BODY=7BIT", false, PARAM_OK, false, 0, BODY_7BIT },
	{ "BODY=8BITMIME allowed", " BODY=8BITMIME", true, PARAM_OK, false, 0, BODY_8BITMIME },
	{ "body=8bitmime lower case", " body=8bitmime", true, PARAM_OK, false, 0, BODY_8BITMIME },
	{ "BODY=8BITMIME not offered", " BODY=8BITMIME", false, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "SIZE and BODY", " SIZE=100 BODY=8BITMIME", true, PARAM_OK, true, 100, BODY_8BITMIME },
	{ "BODY then SIZE, extra blanks", "   BODY=7BIT    SIZE=7  ", false, PARAM_OK, true, 7, BODY_7BIT },
	{ "BODY=BINARYMIME", " BODY=BINARYMIME", true, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "BODY without value", " BODY", true, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "BODY empty value", " BODY=", true, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "SIZE without value", " SIZE", false, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "SIZE empty value", " SIZE=", false, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "SIZE not a number", " SIZE=ten", false, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "SIZE with suffix", " SIZE=10k", false, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "SIZE negative", " SIZE=-1", false, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "SIZE overflowing 64 bits", " SIZE=99999999999999999999999", false, PARAM_BAD_VALUE, false, 0,
	    BODY_UNSPECIFIED },
	{ "SIZE given twice", " SIZE=1 SIZE=2", false, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "BODY given twice", " BODY=7BIT BODY=7BIT", true, PARAM_BAD_VALUE, false, 0, BODY_UNSPECIFIED },
	{ "unknown parameter", " RET=FULL", false, PARAM_UNKNOWN, false, 0, BODY_UNSPECIFIED },
	{ "AUTH parameter unknown", " AUTH=<>", false, PARAM_UNKNOWN, false, 0, BODY_UNSPECIFIED },
	{ "SMTPUTF8 unknown", " SMTPUTF8", false, PARAM_UNKNOWN, false, 0, BODY_UNSPECIFIED },
	{ "unknown after a good one", " SIZE=1 ENVID=x", false, PARAM_UNKNOWN, false, 0, BODY_UNSPECIFIED },
	{ "no blank after the path", "SIZE=10", false, PARAM_SYNTAX, false, 0, BODY_UNSPECIFIED },
	{ "junk glued to the path", "junk", false, PARAM_SYNTAX, false, 0, BODY_UNSPECIFIED },
	{ "tab as separator", "\tSIZE=10", false, PARAM_SYNTAX, false, 0, BODY_UNSPECIFIED },
	{ "control character in a parameter", " SIZE=1\x01", false, PARAM_SYNTAX, false, 0, BODY_UNSPECIFIED },
	{ "CR in a parameter", " BODY=7BIT\r", false, PARAM_SYNTAX, false, 0, BODY_UNSPECIFIED },
	{ "8-bit in a parameter", " X\xff=1", false, PARAM_SYNTAX, false, 0, BODY_UNSPECIFIED },
};

static void
test_parse_mail_params(void **state)
{
	for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
		const struct param_case *tc = &param_cases[i];
		struct mail_params mp;
		enum param_status st = smtp_parse_mail_params(tc->text, tc->allow_8bitmime, &mp);

		EXPECT(tc->label, st == tc->status, "\"%s\": status %d, expected %d", unit_str(tc->text), st, tc->status);
		if (st != PARAM_OK || tc->status != PARAM_OK)
			continue;
		EXPECT(tc->label, mp.has_size == tc->has_size && mp.size == tc->size, "size %d/%llu", mp.has_size,
		    (unsigned long long)mp.size);
		EXPECT(tc->label, mp.body == tc->body, "body %d, expected %d", mp.body, tc->body);
	}

	/* A parameter string over the command line limit. */
	{
		char *junk = unit_repeat('x', 600);

		junk[0] = ' ';
		memcpy(junk + 1, "SIZE=1", 6);
		junk[7] = ' ';
		EXPECT("parameters over 512 octets", smtp_parse_mail_params(junk, false, &(struct mail_params){ 0 }) !=
		    PARAM_OK, "accepted");
		free(junk);
	}
	EXPECT_ALL_PASSED();
}

/* Round trip: the parameters cmd_mail rebuilds parse back to the same values. */
static void
test_parse_mail_params_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
		const struct param_case *tc = &param_cases[i];
		struct mail_params a, b;
		char rebuilt[128];
		int n = 0;

		if (tc->status != PARAM_OK)
			continue;
		assert_int_equal(smtp_parse_mail_params(tc->text, tc->allow_8bitmime, &a), PARAM_OK);
		rebuilt[0] = '\0';
		if (a.has_size)
			n += snprintf(rebuilt + n, sizeof(rebuilt) - (size_t)n, " SIZE=%llu", (unsigned long long)a.size);
		if (a.body != BODY_UNSPECIFIED)
			snprintf(rebuilt + n, sizeof(rebuilt) - (size_t)n, " BODY=%s",
			    a.body == BODY_8BITMIME ? "8BITMIME" : "7BIT");
		EXPECT(tc->label, smtp_parse_mail_params(rebuilt, tc->allow_8bitmime, &b) == PARAM_OK, "\"%s\" refused",
		    rebuilt);
		EXPECT(tc->label, a.has_size == b.has_size && a.size == b.size && a.body == b.body, "\"%s\" differs",
		    rebuilt);
	}
	EXPECT_ALL_PASSED();
}

/* ---- smtp_split_verb, smtp_strip_prefix ---- */

struct verb_case {
	const char	*label;
	const char	*line;
	const char	*verb;
	const char	*arg;
};

static const struct verb_case verb_cases[] = {
	{ "upper case verb and argument", "EHLO mx.example.org", "EHLO", "mx.example.org" },
	{ "lower case verb is upper-cased", "ehlo mx.example.org", "EHLO", "mx.example.org" },
	{ "mixed case", "MaIl FROM:<a@b.org>", "MAIL", "FROM:<a@b.org>" },
	{ "argument keeps its case", "helo MX.Example", "HELO", "MX.Example" },
	{ "no argument", "DATA", "DATA", "" },
	{ "several blanks before the argument", "RCPT    TO:<a@b.org>", "RCPT", "TO:<a@b.org>" },
	{ "trailing blank", "NOOP ", "NOOP", "" },
	{ "empty line", "", "", "" },
	{ "leading blank: no verb", " NOOP", "", "NOOP" },
	{ "verb of 15 octets fits", "ABCDEFGHIJKLMNO x", "ABCDEFGHIJKLMNO", "x" },
	{ "verb of 16 octets is no verb", "ABCDEFGHIJKLMNOP x", "", "x" },
	{ "over-long verb prefixed with a known one", "NOOPNOOPNOOPNOOPNOOP", "", "" },
	{ "over-long verb, then QUIT as argument", "XXXXXXXXXXXXXXXXXXXXXXXX QUIT", "", "QUIT" },
	{ "header line", "Host: example.org", "HOST:", "example.org" },
	{ "HTTP request", "GET / HTTP/1.1", "GET", "/ HTTP/1.1" },
	{ "tab is not a separator", "NOOP\tx", "NOOP\tX", "" },
};

static void
test_split_verb(void **state)
{
	for (size_t i = 0; i < sizeof(verb_cases) / sizeof(verb_cases[0]); i++) {
		const struct verb_case *tc = &verb_cases[i];
		char verb[16];
		const char *arg;

		memset(verb, 'Z', sizeof(verb));
		arg = smtp_split_verb(tc->line, verb, sizeof(verb));
		EXPECT(tc->label, memchr(verb, '\0', sizeof(verb)) != NULL, "verb not terminated");
		EXPECT(tc->label, strcmp(verb, tc->verb) == 0, "verb \"%s\", expected \"%s\"", unit_str(verb), tc->verb);
		EXPECT(tc->label, strcmp(arg, tc->arg) == 0, "arg \"%s\", expected \"%s\"", unit_str(arg), tc->arg);
	}
	EXPECT_ALL_PASSED();
}

struct prefix_case {
	const char	*label;
	const char	*text;
	const char	*prefix;
	const char	*rest;		/* NULL: no match */
};

static const struct prefix_case prefix_cases[] = {
	{ "FROM:", "FROM:<a@b.org>", "FROM:", "<a@b.org>" },
	{ "from: lower case", "from:<a@b.org>", "FROM:", "<a@b.org>" },
	{ "blank after the colon", "FROM: <a@b.org>", "FROM:", "<a@b.org>" },
	{ "TO:", "TO:<a@b.org>", "TO:", "<a@b.org>" },
	{ "blank before the colon", "FROM :<a@b.org>", "FROM:", NULL },
	{ "wrong keyword", "TO:<a@b.org>", "FROM:", NULL },
	{ "empty", "", "FROM:", NULL },
};

static void
test_strip_prefix(void **state)
{
	for (size_t i = 0; i < sizeof(prefix_cases) / sizeof(prefix_cases[0]); i++) {
		const struct prefix_case *tc = &prefix_cases[i];
		const char *got = smtp_strip_prefix(tc->text, tc->prefix);

		if (tc->rest == NULL)
			EXPECT(tc->label, got == NULL, "matched, rest \"%s\"", unit_str(got));
		else
			EXPECT(tc->label, got != NULL && strcmp(got, tc->rest) == 0, "rest \"%s\", expected \"%s\"",
			    unit_str(got), tc->rest);
	}
	EXPECT_ALL_PASSED();
}

/* ---- smtp_helo_token_valid ---- */

struct helo_case {
	const char	*label;
	const char	*arg;
	bool		 valid;
};

static const struct helo_case helo_cases[] = {
	{ "DNS name", "mx.example.org", true },
	{ "single label", "localhost", true },
	{ "IPv4 address literal", "[192.0.2.1]", true },
	{ "IPv6 address literal", "[IPv6:2001:db8::1]", true },
	{ "empty", "", false },
	{ "blank inside", "mx example", false },
	{ "trailing blank", "mx.example.org ", false },
	{ "tab", "mx\texample", false },
	{ "CR", "mx.example\r", false },
	{ "LF", "mx\nMAIL FROM:<a@b>", false },
	{ "control byte", "mx\x01", false },
	{ "DEL", "mx\x7f", false },
	{ "8-bit", "m\xc3\xa9x", false },
};

static void
test_helo_token_valid(void **state)
{
	for (size_t i = 0; i < sizeof(helo_cases) / sizeof(helo_cases[0]); i++) {
		const struct helo_case *tc = &helo_cases[i];

		EXPECT(tc->label, smtp_helo_token_valid(tc->arg) == tc->valid, "\"%s\": %d, expected %d", unit_str(tc->arg),
		    !tc->valid, tc->valid);
	}
	{
		char *s255 = unit_repeat('h', 255), *s256 = unit_repeat('h', 256);

		EXPECT("255 octets", smtp_helo_token_valid(s255), "refused");
		EXPECT("256 octets", !smtp_helo_token_valid(s256), "accepted");
		free(s255);
		free(s256);
	}
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_path),
		cmocka_unit_test(test_parse_path_lengths),
		cmocka_unit_test(test_parse_path_roundtrip),
		cmocka_unit_test(test_parse_mail_params),
		cmocka_unit_test(test_parse_mail_params_roundtrip),
		cmocka_unit_test(test_split_verb),
		cmocka_unit_test(test_strip_prefix),
		cmocka_unit_test(test_helo_token_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
