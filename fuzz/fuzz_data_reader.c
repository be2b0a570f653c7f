/*
 * fuzz_data_reader.c - libFuzzer harness for the DATA reader
 * (proxy/wire/data_reader.c), the guard between a client's message bytes and
 * the backend: it must find end-of-data exactly where a strict CRLF
 * reader would, whatever way the bytes arrive, and pass on nothing that
 * a lenient backend could read as a second message.
 *
 * Input: byte 0 chooses the read sizes (see fuzz_splitter in fuzz.h),
 * byte 1 the message size limit (0: 10 MB, n: 16 * n octets), the rest
 * is what the client sends after "354". The harness plays
 * session_data_input(): it appends each read to a pending buffer, scans
 * it, forwards the consumed bytes while the message has no error (drops
 * them otherwise) and keeps the unconsumed rest for the next read.
 *
 * Invariants checked (abort on violation):
 *  - consumed never exceeds what was offered; DATA_END is returned once
 *    and ends the message; nothing after it is consumed;
 *  - the verdict (end offset or bad-newline or still waiting), the
 *    errors, the octet count and the bytes consumed equal both a run that
 *    gets the whole input in one read and an independent whole-input
 *    model of RFC 5321 framing written here: the split never matters;
 *  - what reaches the backend has no NUL, bare CR or bare LF, no line
 *    over 1000 octets and no ".\r\n" line before the end; on DATA_END
 *    without errors it is exactly the client's bytes up to and
 *    including the end-of-data line.
 *
 * Seeds: fuzz/corpus/data_reader/ (two control bytes, then the data).
 */
#include <string.h>

#include "data_reader.h"
#include "fuzz.h"
#include "smtp_parse.h"

#define MAX_INPUT	(1 << 16)

struct data_result {
	enum data_status	status;
	size_t			consumed;	/* total bytes taken out of the input */
	uint64_t		bytes;
	unsigned		errors;
};

static char pending[MAX_INPUT];
static char forwarded[MAX_INPUT];

/* check_forwarded - what the backend got is strict CRLF lines, without an early end-of-data. */
static void
check_forwarded(const char *out, size_t n, bool ended)
{
	size_t line = 0;

	FUZZ_CHECK(fuzz_crlf_clean(out, n), "bare CR, LF or NUL sent to the backend");
	FUZZ_CHECK(n == 0 || out[n - 1] == '\n', "partial line sent to the backend");
	for (size_t i = 0; i < n; i++) {
		if (out[i] != '\n')
			continue;
		FUZZ_CHECK(i + 1 - line <= SMTP_TEXT_LINE_MAX, "line of %zu octets sent", i + 1 - line);
		if (i + 1 - line == 3 && out[line] == '.')
			FUZZ_CHECK(ended && i + 1 == n, "end-of-data line at %zu before the end", line);
		line = i + 1;
	}
}

/* run_reader - play session_data_input over the input cut by the splitter (NULL: one read). */
static struct data_result
run_reader(const char *in, size_t len, uint64_t limit, struct fuzz_splitter *sp, size_t *out_len)
{
	struct data_reader r;
	struct data_result res = { DATA_MORE, 0, 0, 0 };
	size_t fed = 0, have = 0, out = 0;
	bool ended = false;

	data_reader_init(&r, limit);
	while (fed < len) {
		size_t n = sp ? fuzz_splitter_next(sp) : len;
		size_t consumed = (size_t)-1;
		enum data_status st;

		if (n > len - fed)
			n = len - fed;
		memcpy(pending + have, in + fed, n);
		have += n;
		fed += n;
		st = data_reader_scan(&r, pending, have, &consumed);
		FUZZ_CHECK(st == DATA_MORE || st == DATA_END || st == DATA_BAD_NEWLINE, "status %d", (int)st);
		FUZZ_CHECK(!ended, "scan after DATA_END");
		if (st == DATA_BAD_NEWLINE) {
			res.status = st;
			break;
		}
		FUZZ_CHECK(consumed <= have, "consumed %zu of %zu", consumed, have);
		FUZZ_CHECK(r.bytes <= res.consumed + consumed, "octets %llu over the %zu consumed",
		    (unsigned long long)r.bytes, res.consumed + consumed);
		if (r.errors == 0) {
			memcpy(forwarded + out, pending, consumed);
			out += consumed;
		}
		memmove(pending, pending + consumed, have - consumed);
		have -= consumed;
		res.consumed += consumed;
		if (st == DATA_END) {
			FUZZ_CHECK(consumed >= 3 && memcmp(in + res.consumed - 3, ".\r\n", 3) == 0,
			    "DATA_END not after \".\\r\\n\"");
			res.status = st;
			ended = true;
			break;
		}
		/* Bytes the reader left for later: never a whole line, unless it waits for an over-long one. */
		FUZZ_CHECK(memchr(pending, '\n', have) == NULL, "a complete line left unconsumed");
		FUZZ_CHECK(have < SMTP_TEXT_LINE_MAX, "%zu octets left without a line end", have);
	}
	res.bytes = r.bytes;
	res.errors = r.errors;
	check_forwarded(forwarded, out, ended && r.errors == 0);
	if (ended && r.errors == 0)
		FUZZ_CHECK(out == res.consumed && memcmp(forwarded, in, out) == 0,
		    "the backend did not get the client's bytes unchanged");
	*out_len = out;
	return res;
}

/*
 * model_reader - RFC 5321 framing over the whole input, written apart from
 * data_reader.c: lines end in LF; a line is bad if it holds NUL, a CR not
 * right before its LF, or its LF has no CR; the first line ".\r\n" ends the
 * data; a line over 1000 octets (or an unfinished one of 1000 or more) is
 * an error, and octets count every line consumed.
 */
static struct data_result
model_reader(const char *in, size_t len, uint64_t limit)
{
	struct data_result res = { DATA_MORE, 0, 0, 0 };
	size_t start = 0;

	for (;;) {
		const char *lf = memchr(in + start, '\n', len - start);
		size_t end = lf ? (size_t)(lf - in) + 1 : len;	/* one past the line */

		for (size_t i = start; i < end; i++) {
			bool bad = in[i] == '\0' ||
			    (in[i] == '\r' && i + 1 < end && in[i + 1] != '\n') ||
			    (in[i] == '\n' && (i == start || in[i - 1] != '\r'));

			if (bad) {
				res.status = DATA_BAD_NEWLINE;
				return res;
			}
		}
		if (lf == NULL) {
			/* An unfinished line: consumed (and an error) once it cannot fit any more. */
			if (end - start >= SMTP_TEXT_LINE_MAX) {
				res.errors |= DATA_ERR_LINE_TOO_LONG;
				res.bytes += end - start;
				res.consumed = end;
			}
			return res;
		}
		if (end - start == 3 && in[start] == '.') {
			res.status = DATA_END;
			res.consumed = end;
			return res;
		}
		if (end - start > SMTP_TEXT_LINE_MAX)
			res.errors |= DATA_ERR_LINE_TOO_LONG;
		res.bytes += end - start;
		if (res.bytes > limit)
			res.errors |= DATA_ERR_TOO_BIG;
		res.consumed = end;
		start = end;
	}
}

static void
compare(const char *what, const struct data_result *a, const struct data_result *b)
{
	FUZZ_CHECK(a->status == b->status, "%s: status %d vs %d", what, (int)a->status, (int)b->status);
	if (a->status == DATA_BAD_NEWLINE)
		return;
	FUZZ_CHECK(a->consumed == b->consumed, "%s: consumed %zu vs %zu", what, a->consumed, b->consumed);
	FUZZ_CHECK(a->bytes == b->bytes, "%s: octets %llu vs %llu", what, (unsigned long long)a->bytes,
	    (unsigned long long)b->bytes);
	FUZZ_CHECK(a->errors == b->errors, "%s: errors %#x vs %#x", what, a->errors, b->errors);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_splitter sp;
	struct data_result split, whole, model;
	const char *in = (const char *)data + 2;
	size_t len, out_split, out_whole;
	uint64_t limit;

	if (size < 2 || size - 2 > MAX_INPUT)
		return 0;
	len = size - 2;
	limit = data[1] == 0 ? 10 * 1000 * 1000 : 16 * (uint64_t)data[1];
	fuzz_splitter_init(&sp, data[0]);

	split = run_reader(in, len, limit, &sp, &out_split);
	whole = run_reader(in, len, limit, NULL, &out_whole);
	model = model_reader(in, len, limit);
	compare("split vs one read", &split, &whole);
	compare("one read vs model", &whole, &model);
	if (split.status == DATA_END && split.errors == 0)
		FUZZ_CHECK(out_split == out_whole, "forwarded %zu vs %zu", out_split, out_whole);
	if (model.status == DATA_END)
		FUZZ_CHECK(model.bytes + 3 == model.consumed, "model octets");
	return 0;
}
