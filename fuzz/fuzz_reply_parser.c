/*
 * fuzz_reply_parser.c - libFuzzer harness for the backend reply parser
 * (proxy/wire/reply_parser.c) behind the relay's line framing. mxtierd
 * forwards a backend's replies to the client: a reply that is not one
 * well-formed SMTP reply must be refused, never passed on half-framed.
 *
 * Input: byte 0 chooses the read sizes (see fuzz_splitter in fuzz.h), the
 * rest is the byte stream a backend sends. The harness frames it the way
 * relay_read_cb() does (lines up to LF, at most 1000 octets with the line
 * end, one CR before the LF stripped), feeds each line to
 * reply_parser_line() and starts a new reply after each complete one, as
 * for pipelined commands. A bad line or an over-long one ends the stream.
 *
 * Invariants checked (abort on violation):
 *  - every complete reply has one code 200..599, 1..64 lines, at most
 *    8192 octets, is exactly the lines received each ended in CRLF, holds
 *    no NUL, bare CR or bare LF, and each line but the last is "ddd-";
 *  - reply_first_line() gives the first line without its CRLF;
 *  - the reply text parsed again line by line gives the same reply;
 *  - the sequence of replies and where the stream failed or stopped are
 *    the same for the fuzzer's reads as for one read of everything.
 *
 * Seeds: fuzz/corpus/reply_parser/ (one control byte, then the stream).
 */
#include <string.h>

#include "fuzz.h"
#include "reply_parser.h"

#define MAX_INPUT	(1 << 16)

enum stream_end {
	STREAM_WAITING = 0,	/* ran out of input: partial line or partial reply */
	STREAM_BAD_REPLY,
	STREAM_LONG_LINE
};

struct stream_result {
	enum stream_end	end;
	size_t		replies;
	uint64_t	digest;		/* FNV-1a over every complete reply's code and text */
	size_t		taken;		/* input octets in complete replies */
};

static char pending[MAX_INPUT];

static uint64_t
digest_add(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ull;
	return h;
}

/* check_reply - one complete reply against the lines that made it. */
static void
check_reply(const struct smtp_reply *reply, const char *lines, size_t lines_len)
{
	struct smtp_reply again;
	const char *first, *p, *end;
	size_t first_len, count = 0;
	enum reply_status st = REPLY_BAD;

	FUZZ_CHECK(reply->code >= 200 && reply->code <= 599, "code %d", reply->code);
	FUZZ_CHECK(reply->lines >= 1 && reply->lines <= REPLY_LINES_MAX, "%zu lines", reply->lines);
	FUZZ_CHECK(reply->len <= sizeof(reply->text), "length %zu", reply->len);
	FUZZ_CHECK(reply->len == lines_len && memcmp(reply->text, lines, lines_len) == 0,
	    "reply text is not the lines received");
	FUZZ_CHECK(fuzz_crlf_clean(reply->text, reply->len), "bare CR, LF or NUL in a reply");
	FUZZ_CHECK(reply->len >= 5 && memcmp(reply->text + reply->len - 2, "\r\n", 2) == 0, "reply not CRLF-ended");

	first_len = reply_first_line(reply, &first);
	FUZZ_CHECK(first == reply->text && first_len + 2 <= reply->len && memcmp(first + first_len, "\r\n", 2) == 0,
	    "reply_first_line is not the first line");

	/* Every line: the same code; '-' after it on all but the last. */
	memset(&again, 0, sizeof(again));
	for (p = reply->text, end = reply->text + reply->len; p < end; p += 2) {
		const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
		size_t n = (size_t)(crlf - p);
		bool last = crlf + 2 == end;

		FUZZ_CHECK(n >= 3 && (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0') == reply->code,
		    "line with another code");
		FUZZ_CHECK(last ? (n == 3 || p[3] == ' ') : (n > 3 && p[3] == '-'), "line %zu: separator", count);
		FUZZ_CHECK(st != REPLY_DONE, "reply text goes on after its last line");
		st = reply_parser_line(&again, p, n);
		FUZZ_CHECK(st == (last ? REPLY_DONE : REPLY_MORE), "reply text parses back differently");
		count++;
		p = crlf;
	}
	FUZZ_CHECK(count == reply->lines && again.code == reply->code && again.len == reply->len &&
	    memcmp(again.text, reply->text, reply->len) == 0, "reply does not round-trip");
}

/* run_relay - relay_read_cb's framing over the stream cut by the splitter (NULL: one read). */
static struct stream_result
run_relay(const char *in, size_t len, struct fuzz_splitter *sp)
{
	static struct smtp_reply reply;
	static char lines[REPLY_TEXT_MAX + REPLY_LINE_MAX + 2];
	struct stream_result res = { STREAM_WAITING, 0, 0xcbf29ce484222325ull, 0 };
	size_t fed = 0, have = 0, lines_len = 0, offset = 0;

	memset(&reply, 0, sizeof(reply));
	while (fed < len) {
		size_t n = sp ? fuzz_splitter_next(sp) : len;

		if (n > len - fed)
			n = len - fed;
		memcpy(pending + have, in + fed, n);
		have += n;
		fed += n;
		for (;;) {
			const char *lf = memchr(pending, '\n', have);
			enum reply_status st;
			size_t ln;

			if (lf == NULL) {
				if (have > REPLY_LINE_MAX) {
					res.end = STREAM_LONG_LINE;
					return res;
				}
				break;
			}
			ln = (size_t)(lf - pending);
			if (ln + 1 > REPLY_LINE_MAX) {
				res.end = STREAM_LONG_LINE;
				return res;
			}
			offset += ln + 1;
			if (ln > 0 && pending[ln - 1] == '\r')
				ln--;
			st = reply_parser_line(&reply, pending, ln);
			if (st == REPLY_BAD) {
				res.end = STREAM_BAD_REPLY;
				return res;
			}
			FUZZ_CHECK(st == REPLY_MORE || st == REPLY_DONE, "status %d out of range", (int)st);
			FUZZ_CHECK(lines_len + ln + 2 <= sizeof(lines), "harness: lines overflow");
			memcpy(lines + lines_len, pending, ln);
			memcpy(lines + lines_len + ln, "\r\n", 2);
			lines_len += ln + 2;
			FUZZ_CHECK(reply.len == lines_len, "reply length %zu, lines %zu", reply.len, lines_len);
			/* DONE exactly on a last line: "ddd" alone or "ddd text". */
			FUZZ_CHECK((st == REPLY_DONE) == (ln == 3 || pending[3] == ' '), "DONE on a continuation line");
			have -= (size_t)(lf + 1 - pending);
			memmove(pending, lf + 1, have);
			if (st == REPLY_MORE)
				continue;
			check_reply(&reply, lines, lines_len);
			res.replies++;
			res.digest = digest_add(res.digest, &reply.code, sizeof(reply.code));
			res.digest = digest_add(res.digest, reply.text, reply.len);
			res.taken = offset;
			memset(&reply, 0, sizeof(reply));
			lines_len = 0;
		}
	}
	return res;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_splitter sp;
	struct stream_result split, whole;

	if (size < 1 || size - 1 > MAX_INPUT)
		return 0;
	fuzz_splitter_init(&sp, data[0]);
	split = run_relay((const char *)data + 1, size - 1, &sp);
	whole = run_relay((const char *)data + 1, size - 1, NULL);
	FUZZ_CHECK(split.end == whole.end && split.replies == whole.replies && split.digest == whole.digest &&
	    split.taken == whole.taken, "reads change the outcome: end %d/%d, replies %zu/%zu, taken %zu/%zu",
	    (int)split.end, (int)whole.end, split.replies, whole.replies, split.taken, whole.taken);
	return 0;
}
