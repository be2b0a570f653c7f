#include "data_reader.h"

#include <string.h>

#include "smtp_parse.h"

void
data_reader_init(struct data_reader *r, uint64_t size_limit)
{
	memset(r, 0, sizeof(*r));
	r->size_limit = size_limit;
}

/*
 * segment_valid - a CR must be followed by LF, an LF preceded by CR, no NUL.
 * A CR in the last byte of a segment is judged when the next byte arrives.
 */
static bool
segment_valid(const char *seg, size_t n, bool prev_cr)
{
	/* A CR that ended the previous (discarded) part must be followed by LF here. */
	if (prev_cr && n > 0 && seg[0] != '\n')
		return false;
	for (size_t i = 0; i < n; i++) {
		switch (seg[i]) {
		case '\0':
			return false;
		case '\r':
			if (i + 1 < n && seg[i + 1] != '\n')
				return false;
			break;
		case '\n':
			if (i == 0 ? !prev_cr : seg[i - 1] != '\r')
				return false;
			break;
		}
	}
	return true;
}

enum data_status
data_reader_scan(struct data_reader *r, const char *buf, size_t len, size_t *consumed)
{
	size_t pos = 0;

	*consumed = 0;
	while (pos < len) {
		const char *start = buf + pos;
		size_t avail = len - pos;
		size_t window = avail;
		const char *nl;
		size_t seglen;

		if (!r->in_long_line && window > SMTP_TEXT_LINE_MAX)
			window = SMTP_TEXT_LINE_MAX;
		nl = memchr(start, '\n', window);
		seglen = nl ? (size_t)(nl - start) + 1 : window;

		if (!segment_valid(start, seglen, r->in_long_line && r->prev_cr))
			return DATA_BAD_NEWLINE;

		if (nl == NULL) {
			if (!r->in_long_line && avail < SMTP_TEXT_LINE_MAX)
				break;	/* partial line: wait for the rest */
			/* Over-long: discard what we have; the line's end decides nothing. */
			r->errors |= DATA_ERR_LINE_TOO_LONG;
			r->in_long_line = true;
			r->prev_cr = start[seglen - 1] == '\r';
			r->bytes += seglen;	/* counted like any data, so the size check does not depend on splits */
			pos += seglen;
			*consumed = pos;
			continue;
		}
		if (!r->in_long_line && seglen == 3 && start[0] == '.') {
			*consumed = pos + 3;
			return DATA_END;
		}
		r->in_long_line = false;
		r->prev_cr = false;
		r->bytes += seglen;
		if (r->bytes > r->size_limit)
			r->errors |= DATA_ERR_TOO_BIG;
		pos += seglen;
		*consumed = pos;
	}
	return DATA_MORE;
}
