/*
 * fuzz_smtp_parse.c - libFuzzer harness for the SMTP command parsers
 * (proxy/wire/smtp_parse.c): verb split, MAIL FROM / RCPT TO paths, MAIL
 * parameters and the HELO/EHLO argument check.
 *
 * Input: the bytes a client sends as one command. The harness takes the
 * first line the way session_read_line() does (up to LF, one CR before it
 * stripped, refused when over 512 octets or holding CR or NUL) and runs
 * every parser on it, whatever the verb, with every flag combination.
 *
 * Invariants checked (abort on violation):
 *  - the verb is at most 15 upper-case bytes without a blank and is the
 *    line's first word; the argument points into the line, after it;
 *  - a path parsed OK holds only printable ASCII, no '>', respects the
 *    RFC 5321 length limits, re-parses to the same address, and the MAIL
 *    or RCPT line mxtierd rebuilds from it for the backend is one legal
 *    command line: <= 512 octets, exactly one CRLF, at its end;
 *  - MAIL parameters parsed OK rebuild to a string that parses back to
 *    the same values; BODY=8BITMIME only when the backend offers it;
 *  - a HELO argument accepted is 1..255 printable, blank-free bytes.
 *
 * Seeds: fuzz/corpus/smtp_parse/ (one command per file).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "smtp_parse.h"

#define VERB_MAX	16	/* session_execute_command's verb buffer */

/* check_verb - smtp_split_verb on the line, as the command dispatch calls it. */
static const char *
check_verb(const char *line, size_t len)
{
	char verb[VERB_MAX];
	const char *arg = smtp_split_verb(line, verb, sizeof(verb));
	size_t vlen = strlen(verb);

	FUZZ_CHECK(arg >= line && arg <= line + len, "argument outside the line");
	FUZZ_CHECK(*arg != ' ', "argument starts with a blank");
	FUZZ_CHECK(vlen < sizeof(verb), "verb overflows its buffer");
	for (size_t i = 0; i < vlen; i++) {
		FUZZ_CHECK(verb[i] != ' ' && verb[i] != '\0', "blank in verb");
		FUZZ_CHECK(verb[i] == (char)toupper((unsigned char)line[i]), "verb is not the line's first word");
		FUZZ_CHECK(!islower((unsigned char)verb[i]), "verb not upper-cased");
	}
	/* A verb that fit is the whole first word; one that did not is emptied. */
	if (vlen > 0)
		FUZZ_CHECK(line[vlen] == '\0' || line[vlen] == ' ', "verb cut inside the first word");
	return arg;
}

/* check_backend_line - what mxtierd sends the backend is one well-formed command line. */
static void
check_backend_line(const char *cmd, int n, size_t cap)
{
	FUZZ_CHECK(n > 0 && (size_t)n < cap, "backend line truncated (%d of %zu)", n, cap);
	FUZZ_CHECK((size_t)n <= SMTP_COMMAND_LINE_MAX, "backend line over 512 octets (%d)", n);
	FUZZ_CHECK(cmd[n - 2] == '\r' && cmd[n - 1] == '\n', "backend line not CRLF-terminated");
	for (int i = 0; i < n - 2; i++)
		FUZZ_CHECK((unsigned char)cmd[i] >= 32 && (unsigned char)cmd[i] <= 126,
		    "byte 0x%02x at %d in the backend line", (unsigned char)cmd[i], i);
}

/* check_path - smtp_parse_path on text with one flag combination. */
static void
check_path(const char *text, bool allow_null, bool allow_postmaster, bool is_mail, bool eightbit)
{
	struct smtp_path path, again;
	const char *rest = NULL, *rest2 = NULL;
	enum path_status st = smtp_parse_path(text, allow_null, allow_postmaster, &path, &rest);
	char rebuilt[SMTP_PATH_MAX + 8];
	char cmd[SMTP_COMMAND_LINE_MAX + 64];
	size_t alen;
	int n;

	FUZZ_CHECK(st >= PATH_OK && st <= PATH_DOMAIN_TOO_LONG, "status %d out of range", (int)st);
	if (st != PATH_OK)
		return;
	alen = strnlen(path.address, sizeof(path.address));
	FUZZ_CHECK(alen < sizeof(path.address), "address not NUL-terminated");
	FUZZ_CHECK(rest != NULL && rest > text && rest[-1] == '>', "rest does not follow '>'");
	FUZZ_CHECK(rest <= text + strlen(text), "rest beyond the text");
	FUZZ_CHECK(alen + 2 <= SMTP_PATH_MAX, "path longer than 256 octets (%zu)", alen + 2);
	if (path.is_null) {
		FUZZ_CHECK(allow_null, "null path where none is allowed");
		FUZZ_CHECK(alen == 0, "null path with an address");
		return;
	}
	FUZZ_CHECK(alen > 0, "empty address that is not the null path");
	for (size_t i = 0; i < alen; i++) {
		unsigned char c = (unsigned char)path.address[i];

		FUZZ_CHECK(c >= 32 && c <= 126, "byte 0x%02x in an address", c);
		FUZZ_CHECK(c != '>', "'>' in an address");
		FUZZ_CHECK(c != ' ' || path.address[0] == '"', "blank outside a quoted local part");
	}
	if (!(allow_postmaster && strcasecmp(path.address, "postmaster") == 0)) {
		const char *at = strrchr(path.address, '@');

		FUZZ_CHECK(at != NULL, "address without '@'");
		FUZZ_CHECK((size_t)(at - path.address) <= SMTP_LOCAL_PART_MAX, "local part over 64 octets");
		FUZZ_CHECK(strlen(at + 1) <= SMTP_DOMAIN_MAX, "domain over 255 octets");
	}

	/* Round trip: the address in angle brackets is the same path again. */
	snprintf(rebuilt, sizeof(rebuilt), "<%s>", path.address);
	FUZZ_CHECK(smtp_parse_path(rebuilt, allow_null, allow_postmaster, &again, &rest2) == PATH_OK,
	    "address does not parse back: %s", rebuilt);
	FUZZ_CHECK(strcmp(again.address, path.address) == 0 && !again.is_null && *rest2 == '\0',
	    "address parses back differently: %s", rebuilt);

	/* The command mxtierd rebuilds for the backend, as cmd_mail/cmd_rcpt do. */
	if (is_mail) {
		struct mail_params params;

		if (smtp_parse_mail_params(rest, eightbit, &params) != PARAM_OK)
			return;
		n = snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>", path.address);
		if (params.has_size)
			n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " SIZE=%llu", (unsigned long long)params.size);
		if (params.body != BODY_UNSPECIFIED)
			n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " BODY=%s",
			    params.body == BODY_8BITMIME ? "8BITMIME" : "7BIT");
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "\r\n");
	} else {
		if (*rest != '\0')
			return;		/* RCPT parameters: 555, nothing sent */
		n = snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>\r\n", path.address);
	}
	check_backend_line(cmd, n, sizeof(cmd));
}

/* check_params - smtp_parse_mail_params, and a round trip of what it accepted. */
static void
check_params(const char *text, bool eightbit)
{
	struct mail_params p, q;
	enum param_status st = smtp_parse_mail_params(text, eightbit, &p);
	char rebuilt[128] = "";
	int n = 0;

	FUZZ_CHECK(st >= PARAM_OK && st <= PARAM_BAD_VALUE, "status %d out of range", (int)st);
	if (st != PARAM_OK)
		return;
	FUZZ_CHECK(p.body == BODY_UNSPECIFIED || p.body == BODY_7BIT || p.body == BODY_8BITMIME, "body %d",
	    (int)p.body);
	FUZZ_CHECK(p.body != BODY_8BITMIME || eightbit, "BODY=8BITMIME taken without the backend's 8BITMIME");
	FUZZ_CHECK(p.has_size || p.size == 0, "size set without SIZE");
	if (p.has_size)
		n += snprintf(rebuilt + n, sizeof(rebuilt) - (size_t)n, " SIZE=%llu", (unsigned long long)p.size);
	if (p.body != BODY_UNSPECIFIED)
		n += snprintf(rebuilt + n, sizeof(rebuilt) - (size_t)n, " BODY=%s",
		    p.body == BODY_8BITMIME ? "8BITMIME" : "7BIT");
	FUZZ_CHECK(smtp_parse_mail_params(rebuilt, eightbit, &q) == PARAM_OK, "rebuilt parameters refused: %s",
	    rebuilt);
	FUZZ_CHECK(q.has_size == p.has_size && q.size == p.size && q.body == p.body,
	    "parameters parse back differently: %s", rebuilt);
}

/* check_helo - smtp_helo_token_valid accepts only what may go into XCLIENT HELO= and logs. */
static void
check_helo(const char *arg)
{
	size_t n = strlen(arg);

	if (!smtp_helo_token_valid(arg))
		return;
	FUZZ_CHECK(n >= 1 && n <= SMTP_DOMAIN_MAX, "HELO of %zu octets accepted", n);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)arg[i] > 32 && (unsigned char)arg[i] < 127, "byte 0x%02x in HELO",
		    (unsigned char)arg[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[SMTP_COMMAND_LINE_MAX + 1];
	const uint8_t *lf = memchr(data, '\n', size);
	size_t n = lf ? (size_t)(lf - data) : size;
	static const char *const prefixes[] = { "FROM:", "TO:" };
	const char *arg;

	/* session_read_line: a line whose LF is past 512 octets is refused whole. */
	if (n + 1 > SMTP_COMMAND_LINE_MAX)
		return 0;
	memcpy(line, data, n);
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	if (memchr(line, '\r', n) || memchr(line, '\0', n))
		return 0;

	arg = check_verb(line, n);
	check_helo(arg);
	for (size_t i = 0; i < 2; i++) {
		const char *after = smtp_strip_prefix(arg, prefixes[i]);

		if (after == NULL)
			continue;
		FUZZ_CHECK(after >= arg + strlen(prefixes[i]) && after <= arg + strlen(arg) && *after != ' ',
		    "strip_prefix result outside the argument");
		for (int flags = 0; flags < 4; flags++)
			check_path(after, flags & 1, flags & 2, i == 0, flags & 1);
	}
	/* The parameter parser on what follows each '>', as it follows a path. */
	for (const char *p = strchr(arg, '>'); p; p = strchr(p + 1, '>')) {
		check_params(p + 1, true);
		check_params(p + 1, false);
	}
	return 0;
}
