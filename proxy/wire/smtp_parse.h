#ifndef MXTIER_SMTP_PARSE_H
#define MXTIER_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1 limits. */
#define SMTP_COMMAND_LINE_MAX	512	/* with CRLF */
#define SMTP_TEXT_LINE_MAX	1000	/* with CRLF */
#define SMTP_LOCAL_PART_MAX	64
#define SMTP_DOMAIN_MAX		255
#define SMTP_PATH_MAX		256	/* with the angle brackets */

enum path_status {
	PATH_OK = 0,
	PATH_SYNTAX,
	PATH_TOO_LONG,
	PATH_LOCAL_TOO_LONG,
	PATH_DOMAIN_TOO_LONG
};

/* A reverse- or forward-path, without angle brackets or source route. */
struct smtp_path {
	char	address[SMTP_PATH_MAX + 1];	/* "" for the null path */
	bool	is_null;
};

enum body_type {
	BODY_UNSPECIFIED = 0,
	BODY_7BIT,
	BODY_8BITMIME
};

enum param_status {
	PARAM_OK = 0,
	PARAM_SYNTAX,
	PARAM_UNKNOWN,		/* unsupported parameter: 555 */
	PARAM_BAD_VALUE
};

struct mail_params {
	bool		has_size;
	uint64_t	size;
	enum body_type	body;
};

/*
 * smtp_parse_path - parse "<...>" at the start of text. allow_null takes
 * "<>" (MAIL); "<postmaster>" is taken when allow_postmaster (RCPT).
 * On PATH_OK *rest points after '>'.
 */
enum path_status smtp_parse_path(const char *text, bool allow_null, bool allow_postmaster,
    struct smtp_path *out, const char **rest);

/* smtp_parse_mail_params - "SIZE=n BODY=8BITMIME" after the path. */
enum param_status smtp_parse_mail_params(const char *text, bool allow_8bitmime, struct mail_params *out);

/* smtp_strip_prefix - if text starts with prefix (case-insensitive, e.g. "FROM:"), return what follows, skipping blanks. */
const char *smtp_strip_prefix(const char *text, const char *prefix);

/* smtp_split_verb - copy the first word (upper-cased) into verb; return the argument (after one space) or "". */
const char *smtp_split_verb(const char *line, char *verb, size_t verblen);

/* smtp_domain_valid - a HELO/EHLO argument: a DNS name or an address literal, printable, no blanks. */
bool smtp_helo_token_valid(const char *arg);

#endif
