/*
 * test_reply_parser.c - backend replies line by line: single and
 * multi-line, every malformation and bound, reply_first_line, and a
 * round trip (the re-framed text parses back to the same reply).
 */
#include "unit.h"

#include <stdlib.h>

#include "reply_parser.h"

struct line {
	const char	*s;
	size_t		 len;
};

#define L(x)	{ (x), sizeof(x) - 1 }
#define MAXL	5

struct reply_case {
	const char		*label;
	struct line		 lines[MAXL];
	enum reply_status	 status[MAXL];	/* after each line; the first REPLY_BAD/DONE ends the case */
	int			 code;		/* for a DONE reply */
	const char		*text;		/* the re-framed reply, for a DONE reply */
	const char		*first;		/* reply_first_line */
};

static const struct reply_case reply_cases[] = {
	{ "single line", { L("250 2.0.0 Ok") }, { REPLY_DONE }, 250, "250 2.0.0 Ok\r\n", "250 2.0.0 Ok" },
	{ "code only", { L("250") }, { REPLY_DONE }, 250, "250\r\n", "250" },
	{ "code and blank", { L("354 ") }, { REPLY_DONE }, 354, "354 \r\n", "354 " },
	{ "4xx", { L("451 4.3.0 try later") }, { REPLY_DONE }, 451, "451 4.3.0 try later\r\n", "451 4.3.0 try later" },
	{ "5xx", { L("554 5.7.1 no") }, { REPLY_DONE }, 554, "554 5.7.1 no\r\n", "554 5.7.1 no" },
	{ "multi-line EHLO", { L("250-mx.example.org"), L("250-PIPELINING"), L("250 8BITMIME") },
	    { REPLY_MORE, REPLY_MORE, REPLY_DONE }, 250, "250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
	    "250-mx.example.org" },
	{ "continuation with empty text", { L("220-"), L("220 ready") }, { REPLY_MORE, REPLY_DONE }, 220,
	    "220-\r\n220 ready\r\n", "220-" },
	{ "8-bit text kept", { L("250 \xc3\xa9t\xc3\xa9") }, { REPLY_DONE }, 250, "250 \xc3\xa9t\xc3\xa9\r\n",
	    "250 \xc3\xa9t\xc3\xa9" },
	{ "inconsistent codes", { L("250-first"), L("251 second") }, { REPLY_MORE, REPLY_BAD }, 0, NULL, NULL },
	{ "inconsistent class", { L("250-first"), L("550 second") }, { REPLY_MORE, REPLY_BAD }, 0, NULL, NULL },
	{ "first digit 1", { L("150 go on") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "first digit 6", { L("650 what") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "first digit 0", { L("050 what") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "letter in the code", { L("2x0 what") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "letter as last code digit", { L("25a what") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "two-digit code", { L("25 Ok") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "four-digit code", { L("2500 Ok") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "missing separator", { L("250Ok") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "tab as separator", { L("250\tOk") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "empty line", { L("") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "short line", { L("25") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "leading blank", { L(" 250 Ok") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "NUL inside", { L("250 O\0k") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "CR inside", { L("250 O\rk") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "LF inside", { L("250 O\nk") }, { REPLY_BAD }, 0, NULL, NULL },
	{ "CR inside a continuation line", { L("250-a"), L("250-b\rc"), L("250 d") }, { REPLY_MORE, REPLY_BAD }, 0,
	    NULL, NULL },
	{ "smuggled second reply in the text", { L("250 Ok\r\n250 Ok") }, { REPLY_BAD }, 0, NULL, NULL },
};

static const char *
reply_status_name(enum reply_status st)
{
	return st == REPLY_MORE ? "MORE" : st == REPLY_DONE ? "DONE" : st == REPLY_BAD ? "BAD" : "?";
}

static void
test_reply_table(void **state)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *tc = &reply_cases[i];
		struct smtp_reply *r = calloc(1, sizeof(*r));
		enum reply_status st = REPLY_MORE;
		size_t n;

		assert_non_null(r);
		for (n = 0; n < MAXL && tc->lines[n].s; n++) {
			st = reply_parser_line(r, tc->lines[n].s, tc->lines[n].len);
			EXPECT(tc->label, st == tc->status[n], "line %zu \"%s\": %s, expected %s", n + 1,
			    unit_escape(tc->lines[n].s, tc->lines[n].len), reply_status_name(st),
			    reply_status_name(tc->status[n]));
			if (st != REPLY_MORE)
				break;
		}
		if (st == REPLY_DONE && tc->text) {
			const char *first;
			size_t flen = reply_first_line(r, &first);

			EXPECT(tc->label, r->code == tc->code, "code %d, expected %d", r->code, tc->code);
			EXPECT(tc->label, r->lines == n + 1, "lines %zu, expected %zu", r->lines, n + 1);
			EXPECT(tc->label, r->len == strlen(tc->text) && memcmp(r->text, tc->text, r->len) == 0,
			    "text \"%s\", expected \"%s\"", unit_escape(r->text, r->len), unit_str(tc->text));
			EXPECT(tc->label, flen == strlen(tc->first) && memcmp(first, tc->first, flen) == 0,
			    "first line \"%s\", expected \"%s\"", unit_escape(first, flen), unit_str(tc->first));
		}
		free(r);
	}
	EXPECT_ALL_PASSED();
}

/* Bounds: REPLY_LINE_MAX (with CRLF), REPLY_LINES_MAX, REPLY_TEXT_MAX. */
static void
test_reply_bounds(void **state)
{
	struct smtp_reply *r = calloc(1, sizeof(*r));
	char line[2048];
	enum reply_status st;

	assert_non_null(r);

	/* A line of exactly 512 octets with CRLF, then 513. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	EXPECT("line of 512 octets with CRLF", reply_parser_line(r, line, REPLY_LINE_MAX - 2) == REPLY_DONE, "refused");
	memset(r, 0, sizeof(*r));
	EXPECT("line of 513 octets with CRLF", reply_parser_line(r, line, REPLY_LINE_MAX - 1) == REPLY_BAD, "accepted");
	memset(r, 0, sizeof(*r));
	EXPECT("line of 2000 octets", reply_parser_line(r, line, 2000) == REPLY_BAD, "accepted");

	/* 64 lines are a reply, the 65th is one too many. */
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < REPLY_LINES_MAX - 1; i++)
		if ((st = reply_parser_line(r, "250-x", 5)) != REPLY_MORE)
			EXPECT("63 continuation lines", 0, "line %d: %s", i + 1, reply_status_name(st));
	EXPECT("64th line ends the reply", reply_parser_line(r, "250 y", 5) == REPLY_DONE, "refused");
	EXPECT("64 lines counted", r->lines == REPLY_LINES_MAX, "lines %zu", r->lines);

	memset(r, 0, sizeof(*r));
	for (int i = 0; i < REPLY_LINES_MAX; i++)
		reply_parser_line(r, "250-x", 5);
	EXPECT("65 lines: too many", reply_parser_line(r, "250 y", 5) == REPLY_BAD, "accepted");

	/* The re-framed text would exceed REPLY_TEXT_MAX: 40 lines of 250 octets (incl. CRLF) = 10000. */
	memset(r, 0, sizeof(*r));
	memset(line, 'z', sizeof(line));
	memcpy(line, "250-", 4);
	st = REPLY_MORE;
	for (int i = 0; i < 40 && st == REPLY_MORE; i++)
		st = reply_parser_line(r, line, 248);
	EXPECT("text over REPLY_TEXT_MAX", st == REPLY_BAD, "ended %s", reply_status_name(st));
	EXPECT("text never overflows", r->len <= sizeof(r->text), "len %zu", r->len);

	free(r);
	EXPECT_ALL_PASSED();
}

/* Round trip: split the re-framed text on CRLF, parse again, same reply. */
static void
test_reply_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *tc = &reply_cases[i];
		struct smtp_reply *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
		enum reply_status st = REPLY_MORE;
		size_t pos = 0;

		assert_non_null(a);
		assert_non_null(b);
		if (tc->text == NULL)
			goto next;
		for (size_t n = 0; n < MAXL && tc->lines[n].s && st == REPLY_MORE; n++)
			st = reply_parser_line(a, tc->lines[n].s, tc->lines[n].len);
		assert_int_equal(st, REPLY_DONE);
		st = REPLY_MORE;
		while (pos < a->len && st == REPLY_MORE) {
			const char *crlf = memchr(a->text + pos, '\r', a->len - pos);

			assert_non_null(crlf);
			st = reply_parser_line(b, a->text + pos, (size_t)(crlf - (a->text + pos)));
			pos = (size_t)(crlf - a->text) + 2;
		}
		EXPECT(tc->label, st == REPLY_DONE && pos == a->len, "re-parse ended %s at %zu of %zu",
		    reply_status_name(st), pos, a->len);
		EXPECT(tc->label, a->code == b->code && a->lines == b->lines && a->len == b->len &&
		    memcmp(a->text, b->text, a->len) == 0, "re-parsed reply differs");
next:
		free(a);
		free(b);
	}
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_reply_bounds),
		cmocka_unit_test(test_reply_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
