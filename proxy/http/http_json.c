/*
 * http_json.c - the little JSON the API needs: strings escaped on the way
 * out (a client name or HELO from the wire reaches a page only as a JSON
 * string), and one flat object of strings and numbers on the way in.
 */
#include "http_internal.h"

#include <event2/buffer.h>
#include <string.h>

/* utf8_len - length of a valid UTF-8 sequence at s (n bytes left), 0 if not valid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;

	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

void
json_string_n(struct evbuffer *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	evbuffer_add(out, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[i];
		size_t u;

		if (ch == '"' || ch == '\\') {
			evbuffer_add_printf(out, "\\%c", ch);
		} else if (ch < 0x20 || ch == 0x7f || ch == '<' || ch == '>' || ch == '&') {
			/* < > & too: a value can never close a <script> or start markup wherever a page puts it. */
			evbuffer_add_printf(out, "\\u%04x", ch);
		} else if (ch < 0x80) {
			evbuffer_add(out, &p[i], 1);
		} else if ((u = utf8_len(p + i, n - i)) > 0) {
			evbuffer_add(out, p + i, u);
			i += u - 1;
		} else {
			evbuffer_add(out, "\\ufffd", 6);
		}
	}
	evbuffer_add(out, "\"", 1);
}

void
json_string(struct evbuffer *out, const char *s)
{
	json_string_n(out, s ? s : "", s ? strlen(s) : 0);
}

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* read_string - a JSON string at p into buf (only \" \\ \/ escapes and plain bytes); past its quote, or NULL. */
static const char *
read_string(const char *p, const char *end, char *buf, size_t cap)
{
	size_t o = 0;

	if (p >= end || *p != '"')
		return NULL;
	for (p++; p < end && *p != '"'; p++) {
		char ch = *p;

		if (ch == '\\') {
			if (++p >= end || (*p != '"' && *p != '\\' && *p != '/'))
				return NULL;
			ch = *p;
		} else if ((unsigned char)ch < 0x20) {
			return NULL;
		}
		if (o + 1 >= cap)
			return NULL;
		buf[o++] = ch;
	}
	if (p >= end)
		return NULL;
	buf[o] = '\0';
	return p + 1;
}

int
json_object_get(const char *body, size_t len, const char *want, char *value, size_t cap)
{
	const char *p = body, *end = body + len;
	char key[64], val[256];
	int found = 0;

	p = skip_ws(p, end);
	if (p >= end || *p++ != '{')
		return -1;
	p = skip_ws(p, end);
	if (p < end && *p == '}')
		return skip_ws(p + 1, end) == end ? 0 : -1;
	for (;;) {
		p = skip_ws(p, end);
		if ((p = read_string(p, end, key, sizeof(key))) == NULL)
			return -1;
		p = skip_ws(p, end);
		if (p >= end || *p++ != ':')
			return -1;
		p = skip_ws(p, end);
		if (p < end && *p == '"') {
			if ((p = read_string(p, end, val, sizeof(val))) == NULL)
				return -1;
		} else {
			size_t n = strspn(p, "0123456789.-");

			if (n == 0 || n >= sizeof(val) || p + n > end)
				return -1;
			memcpy(val, p, n);
			val[n] = '\0';
			p += n;
		}
		if (strcmp(key, want) == 0) {
			if (strlen(val) >= cap)
				return -1;
			memcpy(value, val, strlen(val) + 1);
			found = 1;
		}
		p = skip_ws(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}')
			return skip_ws(p + 1, end) == end ? found : -1;
		return -1;
	}
}
