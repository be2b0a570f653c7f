#ifndef MXTIER_REPLY_PARSER_H
#define MXTIER_REPLY_PARSER_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds on what a backend may send as one reply. */
/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with CRLF. mxtierd is
 * the speaker the internet sees, so a longer backend line is malformed, not passed on. */
#define REPLY_LINE_MAX	512	/* with CRLF */
#define REPLY_LINES_MAX	64
#define REPLY_TEXT_MAX	8192

enum reply_status {
	REPLY_MORE = 0,		/* a continuation line "250-..." */
	REPLY_DONE,		/* the last line "250 ..." */
	REPLY_BAD		/* malformed, inconsistent code or over a bound */
};

/* One (possibly multi-line) reply, re-framed with CRLF, ready to forward. */
struct smtp_reply {
	int	code;
	size_t	lines;
	size_t	len;
	char	text[REPLY_TEXT_MAX];
};

/*
 * reply_parser_line - add one line (without its line ending) to reply,
 * which the caller zeroes before the first line.
 */
enum reply_status reply_parser_line(struct smtp_reply *reply, const char *line, size_t len);

/* reply_first_line - the first line without CRLF, for logs. */
size_t reply_first_line(const struct smtp_reply *reply, const char **start);

#endif
