/*
 * smtp_parse.c - parsers for what clients send in commands: verbs, paths
 * and MAIL parameters. Everything here is bounded by the RFC 5321 limits
 * and refuses what it does not understand instead of guessing.
 */
#include "smtp_parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool
is_atext(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

const char *
smtp_strip_prefix(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncasecmp(text, prefix, n) != 0)
		return NULL;
	text += n;
	while (*text == ' ')
		text++;
	return text;
}

const char *
smtp_split_verb(const char *line, char *verb, size_t verblen)
{
	size_t i = 0;

	while (line[i] && line[i] != ' ' && i + 1 < verblen) {
		verb[i] = (char)toupper((unsigned char)line[i]);
		i++;
	}
	verb[i] = '\0';
	/* A verb longer than the buffer is no verb we know: make it unmatchable. */
	if (line[i] && line[i] != ' ') {
		verb[0] = '\0';
		while (line[i] && line[i] != ' ')
			i++;
	}
	while (line[i] == ' ')
		i++;
	return line + i;
}

/* parse_local_part - dot-string or quoted-string; returns length consumed or 0. */
static size_t
parse_local_part(const char *p)
{
	size_t i = 0;

	if (p[0] == '"') {
		for (i = 1; p[i] != '"'; i++) {
			unsigned char c = (unsigned char)p[i];

			if (c == '\\') {
				unsigned char q = (unsigned char)p[i + 1];

				if (q < 32 || q > 126)
					return 0;
				i++;
			} else if (c < 32 || c > 126) {
				return 0;
			}
		}
		return i + 1;
	}
	for (;;) {
		size_t atom = 0;

		while (is_atext((unsigned char)p[i + atom]))
			atom++;
		if (atom == 0)
			return 0;
		i += atom;
		if (p[i] != '.')
			return i;
		i++;
	}
}

/*
 * parse_address_literal - "[192.0.2.1]" or "[IPv6:2001:db8::1]"; returns
 * length consumed or 0. RFC 5321's general form "[tag:content]" has no
 * other registered tag: refused, so that no '@', ':' or other text a
 * later reader could split the address on hides in a domain.
 */
static size_t
parse_address_literal(const char *p)
{
	const char *close = strchr(p, ']');
	unsigned char bytes[16];
	char text[64];
	size_t n;

	if (close == NULL)
		return 0;
	n = (size_t)(close - p) - 1;
	if (n == 0 || n >= sizeof(text))
		return 0;
	memcpy(text, p + 1, n);
	text[n] = '\0';
	if (inet_pton(AF_INET, text, bytes) == 1)
		return n + 2;
	if (strncasecmp(text, "IPv6:", 5) == 0 && inet_pton(AF_INET6, text + 5, bytes) == 1)
		return n + 2;
	return 0;
}

/* parse_domain - DNS name or [address literal]; returns length consumed or 0. */
static size_t
parse_domain(const char *p)
{
	size_t i = 0;

	if (p[0] == '[')
		return parse_address_literal(p);
	for (;;) {
		size_t label = 0;

		while (isalnum((unsigned char)p[i + label]) || p[i + label] == '-' || p[i + label] == '_')
			label++;
		if (label == 0 || label > 63)
			return 0;
		i += label;
		if (p[i] != '.')
			return i;
		i++;
	}
}

enum path_status
smtp_parse_path(const char *text, bool allow_null, bool allow_postmaster, struct smtp_path *out,
    const char **rest)
{
	const char *p = text, *close;
	size_t local, domain;

	memset(out, 0, sizeof(*out));
	if (*p != '<')
		return PATH_SYNTAX;
	close = strchr(p, '>');
	if (close == NULL)
		return PATH_SYNTAX;
	if ((size_t)(close - p + 1) > SMTP_PATH_MAX)
		return PATH_TOO_LONG;
	p++;
	if (p == close) {
		if (!allow_null)
			return PATH_SYNTAX;
		out->is_null = true;
		*rest = close + 1;
		return PATH_OK;
	}
	if (allow_postmaster && (size_t)(close - p) == 10 && strncasecmp(p, "postmaster", 10) == 0) {
		memcpy(out->address, p, 10);
		*rest = close + 1;
		return PATH_OK;
	}
	/* An obsolete source route "@a,@b:" is accepted and ignored (RFC 5321 C). */
	if (*p == '@') {
		const char *colon = memchr(p, ':', (size_t)(close - p));

		if (colon == NULL)
			return PATH_SYNTAX;
		p = colon + 1;
	}
	local = parse_local_part(p);
	if (local == 0 || p[local] != '@')
		return PATH_SYNTAX;
	if (local > SMTP_LOCAL_PART_MAX)
		return PATH_LOCAL_TOO_LONG;
	domain = parse_domain(p + local + 1);
	if (domain == 0 || p + local + 1 + domain != close)
		return PATH_SYNTAX;
	if (domain > SMTP_DOMAIN_MAX)
		return PATH_DOMAIN_TOO_LONG;
	memcpy(out->address, p, (size_t)(close - p));
	out->address[close - p] = '\0';
	*rest = close + 1;
	return PATH_OK;
}

enum param_status
smtp_parse_mail_params(const char *text, bool allow_8bitmime, struct mail_params *out)
{
	char buf[SMTP_COMMAND_LINE_MAX];
	char *save = NULL;

	memset(out, 0, sizeof(*out));
	if (*text != '\0' && *text != ' ')
		return PARAM_SYNTAX;
	if (strlen(text) >= sizeof(buf))
		return PARAM_SYNTAX;
	strcpy(buf, text);
	for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		char *value = eq ? eq + 1 : NULL;

		for (char *c = tok; *c; c++)
			if ((unsigned char)*c < 33 || (unsigned char)*c > 126)
				return PARAM_SYNTAX;
		if (eq)
			*eq = '\0';
		if (strcasecmp(tok, "SIZE") == 0) {
			char *end;
			unsigned long long n;

			if (value == NULL || !isdigit((unsigned char)value[0]) || out->has_size)
				return PARAM_BAD_VALUE;
			errno = 0;
			n = strtoull(value, &end, 10);
			if (errno || *end != '\0')
				return PARAM_BAD_VALUE;
			out->has_size = true;
			out->size = n;
		} else if (strcasecmp(tok, "BODY") == 0) {
			if (value == NULL || out->body != BODY_UNSPECIFIED)
				return PARAM_BAD_VALUE;
			if (strcasecmp(value, "7BIT") == 0)
				out->body = BODY_7BIT;
			else if (strcasecmp(value, "8BITMIME") == 0 && allow_8bitmime)
				out->body = BODY_8BITMIME;
			else
				return PARAM_BAD_VALUE;
		} else {
			return PARAM_UNKNOWN;
		}
	}
	return PARAM_OK;
}

bool
smtp_helo_token_valid(const char *arg)
{
	size_t n = strlen(arg);

	if (n == 0 || n > SMTP_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)arg[i];

		if (c < 33 || c > 126)
			return false;
	}
	return true;
}
