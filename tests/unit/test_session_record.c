/*
 * test_session_record.c - the one reason formatter that the summary log
 * line and the database row share (proxy/core/session_record.c).
 */
#include "unit.h"

#include "session_record.h"

#include <stdio.h>
#include <unistd.h>

#define BIT(r)	(UINT64_C(1) << (r))

struct reasons_case {
	const char	*label;
	uint64_t	 reasons;
	size_t		 len;		/* buffer size */
	const char	*want;
};

static const struct reasons_case reasons_cases[] = {
	{ "none", 0, 64, "" },
	{ "one", BIT(REASON_DNSBL), 64, "dnsbl" },
	{ "in enum order, whatever the order they came in", BIT(REASON_REPUTATION_BAD) | BIT(REASON_ALLOWLIST), 64,
	    "allowlist,reputation-bad" },
	{ "three", BIT(REASON_NO_RDNS) | BIT(REASON_HELO_INVALID) | BIT(REASON_TIMEOUT), 64,
	    "timeout,no-rdns,helo-invalid" },
	{ "bits beyond the known reasons are ignored", BIT(REASON_BAIT) | BIT(63), 64, "bait" },
	{ "a short buffer truncates, never overruns", BIT(REASON_TOO_MANY_CLIENT_SESSIONS) | BIT(REASON_BAIT), 8,
	    "bait,to" },
};

static void
test_reasons_format(void **state)
{
	for (size_t i = 0; i < sizeof(reasons_cases) / sizeof(reasons_cases[0]); i++) {
		const struct reasons_case *c = &reasons_cases[i];
		char buf[80];

		memset(buf, 'X', sizeof(buf));
		reasons_format(buf, c->len, c->reasons);
		EXPECT(c->label, strcmp(buf, c->want) == 0, "got \"%s\", want \"%s\"", buf, c->want);
		EXPECT(c->label, buf[c->len] == 'X', "wrote beyond %zu bytes", c->len);
	}
	EXPECT_ALL_PASSED();
}

/* Every reason at once fits the record's list, with room for the row's braces. */
static void
test_all_reasons_fit(void **state)
{
	char buf[SESSION_RECORD_REASONS_MAX];
	size_t want = 0;

	for (int r = 0; r < REASON_COUNT; r++)
		want += strlen(reason_name(r)) + (r ? 1 : 0);
	reasons_format(buf, sizeof(buf), BIT(REASON_COUNT) - 1);
	assert_int_equal(strlen(buf), want);
	assert_true(want + 2 < sizeof(buf));
}

/* session_record_log's line for r, read back from stderr. */
static void
log_line_of(const struct session_record *r, char *line, size_t len)
{
	FILE *capture = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	assert_non_null(capture);
	fflush(stderr);
	dup2(fileno(capture), STDERR_FILENO);
	session_record_log(r);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(capture);
	n = fread(line, 1, len - 1, capture);
	line[n] = '\0';
	fclose(capture);
}

/*
 * How often key is a field of the line, read the way a log reader splits
 * it: fields end at a space, except inside "double quotes".
 */
static int
field_count(const char *line, const char *key)
{
	size_t klen = strlen(key);
	int n = 0;

	for (const char *p = line; *p && *p != '\n';) {
		const char *start = p;
		int quoted = 0;

		while (*p && *p != '\n' && (quoted || *p != ' ')) {
			if (*p == '"')
				quoted = !quoted;
			p++;
		}
		if ((size_t)(p - start) > klen && strncmp(start, key, klen) == 0 && start[klen] == '=')
			n++;
		while (*p == ' ')
			p++;
	}
	return n;
}

/*
 * What a sender puts in MAIL FROM, RCPT TO, HELO or its PTR name cannot add
 * a field to the summary line: a log reader keyed on verdict= or client=
 * must see only ours.
 */
static void
test_log_line_cannot_be_forged(void **state)
{
	static const char *const forgeries[] = {
		"a> verdict=relay reasons=- x=<b",
		"a\r\n2026-01-01T00:00:00.000Z mxtierd[info]: session verdict=relay",
		"\" verdict=relay helo=\"",
		"a\\\" verdict=relay",
	};
	static const char *const fields[] = { "verdict", "client", "reasons", "helo", "rdns", "first_rcpt" };

	for (size_t i = 0; i < sizeof(forgeries) / sizeof(forgeries[0]); i++) {
		struct session_record r = {
			.tier = TIER_PRIMARY, .client_text = "192.0.2.7", .client_port = 4321, .tls = "", .rdns = forgeries[i],
			.helo = forgeries[i], .mail_from = forgeries[i], .first_rcpt = forgeries[i], .verdict = VERDICT_TEMPFAIL,
			.backend_tls = "", .backend_reply = forgeries[i],
		};
		char line[8192];

		log_line_of(&r, line, sizeof(line));
		EXPECT(forgeries[i], strchr(line, '\n') == line + strlen(line) - 1, "more than one line: %.1500s", line);
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			EXPECT(forgeries[i], field_count(line, fields[f]) == 1, "%d %s= fields in %.1500s",
			    field_count(line, fields[f]), fields[f], line);
		EXPECT(forgeries[i], strstr(line, " verdict=tempfail ") != NULL, "own verdict missing: %.1500s", line);
	}
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reasons_format),
		cmocka_unit_test(test_all_reasons_fit),
		cmocka_unit_test(test_log_line_cannot_be_forged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
