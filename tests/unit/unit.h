/*
 * unit.h - what the table-driven unit tests share: cmocka, a check that
 * names the failing case by its label and goes on with the next row (so
 * one run lists every failing case), and printable byte strings.
 */
#ifndef MXTIER_TESTS_UNIT_H
#define MXTIER_TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int unit_failed_checks;

/* EXPECT - like assert_true, but names the case and keeps going through the table. */
#define EXPECT(label, cond, ...) do {						\
	if (!(cond)) {								\
		char unit_msg_[2048];						\
										\
		unit_failed_checks++;						\
		snprintf(unit_msg_, sizeof(unit_msg_), __VA_ARGS__);		\
		print_error("FAIL [%s] (%s:%d) %s\n", (label), __FILE__, __LINE__, unit_msg_); \
	}									\
} while (0)

/* EXPECT_ALL_PASSED - end of a table: fail the cmocka test if any row failed. */
#define EXPECT_ALL_PASSED() do {						\
	int unit_n_ = unit_failed_checks;					\
										\
	unit_failed_checks = 0;							\
	if (unit_n_ > 0)							\
		fail_msg("%d check(s) failed in this table, see FAIL lines above", unit_n_); \
} while (0)

/* unit_escape - bytes as C-like text for messages; one of four rotating static buffers. */
static inline const char *
unit_escape(const void *data, size_t len)
{
	static char bufs[4][512];
	static unsigned next;
	char *out = bufs[next++ % 4];
	const unsigned char *p = data;
	size_t o = 0;

	for (size_t i = 0; i < len && o + 8 < sizeof(bufs[0]); i++) {
		if (p[i] == '\r')
			o += (size_t)snprintf(out + o, sizeof(bufs[0]) - o, "\\r");
		else if (p[i] == '\n')
			o += (size_t)snprintf(out + o, sizeof(bufs[0]) - o, "\\n");
		else if (p[i] < 32 || p[i] > 126 || p[i] == '\\')
			o += (size_t)snprintf(out + o, sizeof(bufs[0]) - o, "\\x%02x", p[i]);
		else
			out[o++] = (char)p[i];
	}
	if (o + 8 >= sizeof(bufs[0]))
		o += (size_t)snprintf(out + o, sizeof(bufs[0]) - o, "...");
	out[o] = '\0';
	return out;
}

static inline const char *
unit_str(const char *s)
{
	return s ? unit_escape(s, strlen(s)) : "(null)";
}

/* unit_repeat - a malloc'd string of n copies of c (tests free it). */
static inline char *
unit_repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

#endif
