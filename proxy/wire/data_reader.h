#ifndef MXTIER_DATA_READER_H
#define MXTIER_DATA_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The DATA line reader. Message data is framed strictly: every line ends
 * in CRLF, end-of-data is exactly CRLF "." CRLF. Complete lines are passed
 * on byte for byte: a client's lines are already dot-stuffed, and
 * un-stuffing then re-stuffing a CRLF-framed line gives back the same
 * bytes, so the backend sees exactly the end-of-data mxtierd saw.
 */

enum data_status {
	DATA_MORE = 0,		/* no end yet: feed more */
	DATA_END,		/* consumed includes the final ".\r\n" */
	DATA_BAD_NEWLINE	/* bare CR, bare LF or NUL: the smuggling class, fatal */
};

enum data_error {
	DATA_ERR_LINE_TOO_LONG	= 1 << 0,
	DATA_ERR_TOO_BIG	= 1 << 1
};

struct data_reader {
	uint64_t	size_limit;
	uint64_t	bytes;		/* message octets so far, end-of-data excluded */
	unsigned	errors;		/* enum data_error bits: message doomed, keep reading to the end */
	bool		in_long_line;	/* discarding the rest of an over-long line */
	bool		prev_cr;	/* the last discarded byte of a long line was CR */
};

void data_reader_init(struct data_reader *r, uint64_t size_limit);

/*
 * data_reader_scan - buf starts at a line boundary. *consumed is set to the
 * bytes of whole lines (plus discarded over-long line parts) the caller can
 * take out of its buffer: forward them when r->errors is 0, else drop them.
 * A partial line stays in the caller's buffer for the next call.
 */
enum data_status data_reader_scan(struct data_reader *r, const char *buf, size_t len, size_t *consumed);

#endif
