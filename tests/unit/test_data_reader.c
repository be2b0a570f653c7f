/*
 * test_data_reader.c - data_reader_scan(): strict CRLF framing, the
 * SMTP smuggling variants, line and size limits, and the same verdict
 * whatever way the bytes are split into reads.
 */
#include "unit.h"

#include <stdlib.h>

#include "data_reader.h"
#include "smtp_parse.h"

/* An input is built from pieces: literal bytes (NULs allowed) or one byte repeated. */
struct piece {
	const char	*bytes;
	size_t		 len;
	size_t		 repeat;	/* > 0: bytes[0] repeated this many times */
};

#define LIT(s)		{ (s), sizeof(s) - 1, 0 }
#define REP(c, n)	{ (const char[]){ (c) }, 1, (n) }
#define END_OF_INPUT	((size_t)-1)	/* expected consumed: the whole input */

struct data_case {
	const char		*label;
	struct piece		 pieces[6];
	uint64_t		 size_limit;	/* 0: 1 MiB */
	enum data_status	 status;
	size_t			 consumed;	/* checked for DATA_END and DATA_MORE; END_OF_INPUT = all */
	unsigned		 errors;
	long long		 bytes;		/* -1: not checked; END_OF_INPUT-3 via -2 */
};

#define BYTES_ALL_BUT_END	-2LL	/* message octets = input length minus ".\r\n" */

static const struct data_case data_cases[] = {
	/* Valid messages. */
	{ "empty message: just the end line", { LIT(".\r\n") }, 0, DATA_END, END_OF_INPUT, 0, 0 },
	{ "valid message", { LIT("Subject: hi\r\nFrom: <a@example.org>\r\n\r\nHello.\r\n.\r\n") }, 0, DATA_END,
	    END_OF_INPUT, 0, BYTES_ALL_BUT_END },
	{ "dot-stuffed lines pass unchanged", { LIT("..\r\n...\r\n..hidden\r\n. \r\n.x\r\n.\r\n") }, 0, DATA_END,
	    END_OF_INPUT, 0, BYTES_ALL_BUT_END },
	{ "end is exactly CRLF . CRLF: commands after it are left", { LIT("body\r\n.\r\nQUIT\r\n") }, 0, DATA_END, 9,
	    0, 6 },
	{ "8-bit and control bytes other than CR, LF, NUL are data", { LIT("\xc3\xa9\t\x01\x7f\xff\r\n.\r\n") }, 0,
	    DATA_END, END_OF_INPUT, 0, BYTES_ALL_BUT_END },
	{ "no end yet: complete lines consumed", { LIT("line one\r\nline two\r\npartial") }, 0, DATA_MORE, 20, 0, 20 },
	{ "dot line not yet complete", { LIT("a\r\n.\r") }, 0, DATA_MORE, 3, 0, 3 },
	{ "dot followed by text is not the end", { LIT("a\r\n.a\r\n") }, 0, DATA_MORE, 7, 0, 7 },
	{ "end line must be at a line start, not mid-line", { LIT("a.\r\n") }, 0, DATA_MORE, 4, 0, 4 },

	/* The smuggling class: bare LF, bare CR, NUL. Never an end there. */
	{ "smuggling \\n.\\n", { LIT("body\n.\nMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "smuggling \\n.\\r", { LIT("body\n.\rMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "smuggling \\r.\\n", { LIT("body\r.\nMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "smuggling \\r.\\r", { LIT("body\r.\rMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "smuggling \\n.\\r\\n", { LIT("body\n.\r\nMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "smuggling \\r.\\r\\n", { LIT("body\r.\r\nMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "smuggling \\r\\n\\x00.\\r\\n", { LIT("body\r\n\0.\r\nMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE,
	    0, 0, -1 },
	{ "smuggling \\r\\n.\\r\\r\\n", { LIT("body\r\n.\r\r\nMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE,
	    0, 0, -1 },
	{ "smuggling \\r\\r\\n.\\r\\r\\n", { LIT("body\r\r\n.\r\r\nMAIL FROM:<x@evil>\r\n.\r\n") }, 0,
	    DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "smuggling \\r\\n.\\n", { LIT("body\r\n.\nMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "smuggling \\r\\n.\\r", { LIT("body\r\n.\rMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "bare LF as the first data byte", { LIT("\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "data starting with .\\n", { LIT(".\nMAIL FROM:<x@evil>\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "bare CR at the end of a line", { LIT("body\r\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "NUL inside a line", { LIT("bo\0dy\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "NUL in the end line", { LIT("a\r\n.\0\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },

	/* Line length: 1000 octets with CRLF. */
	{ "line of exactly 1000 octets with CRLF", { REP('a', 998), LIT("\r\n.\r\n") }, 0, DATA_END, END_OF_INPUT, 0,
	    1000 },
	{ "line of 1001 octets: too long, end still found", { REP('a', 999), LIT("\r\n.\r\n") }, 0, DATA_END,
	    END_OF_INPUT, DATA_ERR_LINE_TOO_LONG, -1 },
	{ "line of 1002 octets", { REP('a', 1000), LIT("\r\n.\r\n") }, 0, DATA_END, END_OF_INPUT,
	    DATA_ERR_LINE_TOO_LONG, -1 },
	{ "line of 5000 octets between good lines", { LIT("ok\r\n"), REP('b', 4998), LIT("\r\nok\r\n.\r\n") }, 0,
	    DATA_END, END_OF_INPUT, DATA_ERR_LINE_TOO_LONG, -1 },
	{ "long line whose tail looks like the end is not the end", { REP('a', 1200), LIT(".\r\nb\r\n.\r\n") }, 0,
	    DATA_END, END_OF_INPUT, DATA_ERR_LINE_TOO_LONG, -1 },
	{ "long line ending at the window edge with the end after", { REP('a', 1000), LIT("\r\n.\r\n") }, 0, DATA_END,
	    END_OF_INPUT, DATA_ERR_LINE_TOO_LONG, -1 },
	{ "long line not yet ended", { REP('a', 3000) }, 0, DATA_MORE, END_OF_INPUT, DATA_ERR_LINE_TOO_LONG, -1 },
	{ "two long lines", { REP('a', 1500), LIT("\r\n"), REP('b', 2500), LIT("\r\n.\r\n") }, 0, DATA_END,
	    END_OF_INPUT, DATA_ERR_LINE_TOO_LONG, -1 },

	/* The smuggling class inside an over-long line is still the smuggling class. */
	{ "bare LF inside a long line", { REP('a', 1500), LIT("\n.\nMAIL\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "bare CR inside a long line", { REP('a', 1500), LIT("\r.\rMAIL\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "NUL inside a long line", { REP('a', 1500), LIT("\0x\r\n.\r\n") }, 0, DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "bare CR as octet 1000 of a long line, then text", { REP('a', 999), LIT("\rX\r\n.\r\n") }, 0,
	    DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "bare CR as octet 1000 of a long line, then CRLF", { REP('a', 999), LIT("\r\r\n.\r\n") }, 0,
	    DATA_BAD_NEWLINE, 0, 0, -1 },
	{ "bare CR as octet 1000 of a long line, then .\\r\\n", { REP('a', 999), LIT("\r.\r\nMAIL\r\n.\r\n") }, 0,
	    DATA_BAD_NEWLINE, 0, 0, -1 },

	/* Size limit: message octets, CRLFs included, end line excluded. */
	{ "size exactly at the limit", { LIT("abc\r\nabc\r\n.\r\n") }, 10, DATA_END, END_OF_INPUT, 0, 10 },
	{ "size one over the limit: too big, end still found", { LIT("abc\r\nabcd\r\n.\r\n") }, 10, DATA_END,
	    END_OF_INPUT, DATA_ERR_TOO_BIG, 11 },
	{ "size far over the limit", { LIT("x\r\n"), REP('y', 900), LIT("\r\n"), REP('z', 900), LIT("\r\n.\r\n") },
	    1024, DATA_END, END_OF_INPUT, DATA_ERR_TOO_BIG, 1807 },
	{ "too big and a long line", { REP('y', 1500), LIT("\r\n"), REP('z', 900), LIT("\r\n"), REP('w', 900),
	    LIT("\r\n.\r\n") }, 1024, DATA_END, END_OF_INPUT, DATA_ERR_LINE_TOO_LONG | DATA_ERR_TOO_BIG, -1 },
};

/* build - concatenate the pieces into a malloc'd buffer. */
static char *
build(const struct data_case *tc, size_t *len)
{
	size_t n = 0, o = 0;
	char *buf;

	for (size_t i = 0; i < 6 && tc->pieces[i].bytes; i++)
		n += tc->pieces[i].repeat ? tc->pieces[i].repeat : tc->pieces[i].len;
	buf = malloc(n + 1);
	assert_non_null(buf);
	for (size_t i = 0; i < 6 && tc->pieces[i].bytes; i++) {
		const struct piece *p = &tc->pieces[i];

		if (p->repeat) {
			memset(buf + o, p->bytes[0], p->repeat);
			o += p->repeat;
		} else {
			memcpy(buf + o, p->bytes, p->len);
			o += p->len;
		}
	}
	*len = n;
	return buf;
}

struct feed_result {
	enum data_status	status;
	size_t			consumed;	/* total over all calls */
	unsigned		errors;
	uint64_t		bytes;
};

static const char *
status_name(enum data_status st)
{
	return st == DATA_MORE ? "MORE" : st == DATA_END ? "END" : st == DATA_BAD_NEWLINE ? "BAD_NEWLINE" : "?";
}

/*
 * feed - the daemon's way: append each read to a buffer, scan it, take
 * `consumed` bytes off the front, keep the rest for the next read. chunk
 * boundaries are given as sorted offsets (nsplits of them).
 */
static struct feed_result
feed(const char *input, size_t len, uint64_t limit, const size_t *splits, size_t nsplits)
{
	struct data_reader r;
	struct feed_result res = { DATA_MORE, 0, 0, 0 };
	char *buf = malloc(len + 1);
	size_t held = 0, from = 0;

	assert_non_null(buf);
	data_reader_init(&r, limit);
	for (size_t k = 0; k <= nsplits; k++) {
		size_t to = k < nsplits ? splits[k] : len;
		size_t consumed = 0;

		memcpy(buf + held, input + from, to - from);
		held += to - from;
		from = to;
		res.status = data_reader_scan(&r, buf, held, &consumed);
		assert_true(consumed <= held);
		res.consumed += consumed;
		if (res.status != DATA_MORE)
			break;
		memmove(buf, buf + consumed, held - consumed);
		held -= consumed;
	}
	res.errors = r.errors;
	res.bytes = r.bytes;
	free(buf);
	return res;
}

static void
verify_case(const struct data_case *tc, const struct feed_result *res, size_t len, const char *how)
{
	size_t want_consumed = tc->consumed == END_OF_INPUT ? len : tc->consumed;

	EXPECT(tc->label, res->status == tc->status, "%s: status %s, expected %s", how, status_name(res->status),
	    status_name(tc->status));
	if (res->status != tc->status || tc->status == DATA_BAD_NEWLINE)
		return;
	EXPECT(tc->label, res->consumed == want_consumed, "%s: consumed %zu, expected %zu", how, res->consumed,
	    want_consumed);
	EXPECT(tc->label, res->errors == tc->errors, "%s: errors 0x%x, expected 0x%x", how, res->errors, tc->errors);
	if (tc->bytes == BYTES_ALL_BUT_END)
		EXPECT(tc->label, res->bytes == len - 3, "%s: bytes %llu, expected %zu", how,
		    (unsigned long long)res->bytes, len - 3);
	else if (tc->bytes >= 0)
		EXPECT(tc->label, res->bytes == (uint64_t)tc->bytes, "%s: bytes %llu, expected %lld", how,
		    (unsigned long long)res->bytes, tc->bytes);
}

static void
test_data_reader_one_piece(void **state)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct data_case *tc = &data_cases[i];
		size_t len;
		char *input = build(tc, &len);
		struct feed_result res = feed(input, len, tc->size_limit ? tc->size_limit : 1 << 20, NULL, 0);

		verify_case(tc, &res, len, "one piece");
		free(input);
	}
	EXPECT_ALL_PASSED();
}

/* same - two feeds gave the same verdict (byte counts are not compared for doomed messages). */
static bool
same(const struct feed_result *a, const struct feed_result *b)
{
	if (a->status != b->status)
		return false;
	if (a->status == DATA_BAD_NEWLINE)
		return true;
	if (a->consumed != b->consumed || a->errors != b->errors)
		return false;
	return a->errors != 0 || a->bytes == b->bytes;
}

/* Every split into two reads, and one read per byte, must end like the whole input in one read. */
static void
test_data_reader_every_split(void **state)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct data_case *tc = &data_cases[i];
		uint64_t limit = tc->size_limit ? tc->size_limit : 1 << 20;
		size_t len, *bytewise;
		char *input = build(tc, &len);
		struct feed_result whole = feed(input, len, limit, NULL, 0), res;
		int reported = 0;

		for (size_t k = 1; k < len; k++) {
			res = feed(input, len, limit, &k, 1);
			if (!same(&whole, &res) && reported++ < 3)
				EXPECT(tc->label, 0, "split at %zu (%s|%s): %s consumed %zu errors 0x%x; whole: %s consumed %zu "
				    "errors 0x%x", k, unit_escape(input + (k > 8 ? k - 8 : 0), k > 8 ? 8 : k),
				    unit_escape(input + k, len - k > 8 ? 8 : len - k), status_name(res.status),
				    res.consumed, res.errors, status_name(whole.status), whole.consumed, whole.errors);
		}
		bytewise = malloc(len * sizeof(*bytewise));
		assert_non_null(bytewise);
		for (size_t k = 0; k + 1 < len; k++)
			bytewise[k] = k + 1;
		res = feed(input, len, limit, bytewise, len ? len - 1 : 0);
		EXPECT(tc->label, same(&whole, &res), "one byte per read: %s consumed %zu errors 0x%x; whole: %s "
		    "consumed %zu errors 0x%x", status_name(res.status), res.consumed, res.errors,
		    status_name(whole.status), whole.consumed, whole.errors);
		free(bytewise);
		free(input);
	}
	EXPECT_ALL_PASSED();
}

/* CR as the last byte of one read, LF as the first of the next. */
struct cr_split_case {
	const char		*label;
	const char		*first;		/* ends in CR */
	const char		*second;
	size_t			 long_prefix;	/* 'a' bytes before first */
	enum data_status	 status;
	unsigned		 errors;
};

static const struct cr_split_case cr_split_cases[] = {
	{ "CR | LF inside a message", "abc\r", "\n.\r\n", 0, DATA_END, 0 },
	{ "CR | LF before the end line", "abc\r\n.\r", "\n", 0, DATA_END, 0 },
	{ "CR | LF ending an over-long line", "\r", "\n.\r\n", 1200, DATA_END, DATA_ERR_LINE_TOO_LONG },
	{ "CR | text in an over-long line is a bare CR", "\r", "X\r\n.\r\n", 1200, DATA_BAD_NEWLINE, 0 },
	{ "CR | CR in an over-long line is a bare CR", "\r", "\r\n.\r\n", 1200, DATA_BAD_NEWLINE, 0 },
	{ "CR | text in a short line is a bare CR", "abc\r", "X\r\n.\r\n", 0, DATA_BAD_NEWLINE, 0 },
};

static void
test_data_reader_cr_at_chunk_end(void **state)
{
	for (size_t i = 0; i < sizeof(cr_split_cases) / sizeof(cr_split_cases[0]); i++) {
		const struct cr_split_case *tc = &cr_split_cases[i];
		size_t l1 = tc->long_prefix + strlen(tc->first), l2 = strlen(tc->second);
		char *input = malloc(l1 + l2 + 1);
		struct feed_result res;

		assert_non_null(input);
		memset(input, 'a', tc->long_prefix);
		memcpy(input + tc->long_prefix, tc->first, strlen(tc->first));
		memcpy(input + l1, tc->second, l2);
		res = feed(input, l1 + l2, 1 << 20, &l1, 1);
		EXPECT(tc->label, res.status == tc->status, "status %s, expected %s", status_name(res.status),
		    status_name(tc->status));
		if (res.status == DATA_END && tc->status == DATA_END) {
			EXPECT(tc->label, res.consumed == l1 + l2, "consumed %zu of %zu", res.consumed, l1 + l2);
			EXPECT(tc->label, res.errors == tc->errors, "errors 0x%x, expected 0x%x", res.errors, tc->errors);
		}
		free(input);
	}
	EXPECT_ALL_PASSED();
}

/* A consumed prefix always ends at a line boundary (or inside a discarded long line). */
static void
test_data_reader_consumed_is_whole_lines(void **state)
{
	static const char msg[] = "one\r\ntwo\r\nthree\r\npart";
	struct data_reader r;
	size_t consumed;

	for (size_t len = 0; len <= sizeof(msg) - 1; len++) {
		char label[64];

		data_reader_init(&r, 1 << 20);
		snprintf(label, sizeof(label), "prefix of %zu bytes", len);
		EXPECT(label, data_reader_scan(&r, msg, len, &consumed) == DATA_MORE, "not MORE");
		EXPECT(label, consumed == 0 || (consumed >= 2 && msg[consumed - 2] == '\r' && msg[consumed - 1] == '\n'),
		    "consumed %zu ends mid-line", consumed);
	}
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_reader_one_piece),
		cmocka_unit_test(test_data_reader_every_split),
		cmocka_unit_test(test_data_reader_cr_at_chunk_end),
		cmocka_unit_test(test_data_reader_consumed_is_whole_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
