/*
 * test_session_record.c - the one reason formatter that the summary log
 * line and the database row share (proxy/core/session_record.c).
 */
#include "unit.h"

#include "session_record.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reasons_format),
		cmocka_unit_test(test_all_reasons_fit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
