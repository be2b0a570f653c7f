/*
 * priv_codec.c - database values as one message, in both processes: a
 * list of NULL-or-string, each a tag byte (0 NULL, 1 a NUL-terminated
 * string follows). The decoder takes exactly the count asked for, each
 * within its bound, and nothing left over.
 */
#include "priv.h"

#include <string.h>

int
priv_strings_encode(char *buf, size_t cap, int n, const char *const *values)
{
	size_t o = 0;

	for (int i = 0; i < n; i++) {
		size_t len = values[i] ? strlen(values[i]) : 0;

		if (o + 2 + len > cap)
			return -1;
		buf[o++] = values[i] ? 1 : 0;
		if (values[i]) {
			memcpy(buf + o, values[i], len + 1);
			o += len + 1;
		}
	}
	return (int)o;
}

/* priv_strings_decode - exactly n values, each at most value_max bytes, nothing left over. */
int
priv_strings_decode(const char *buf, size_t len, int n, const char **values, size_t value_max)
{
	size_t o = 0;

	for (int i = 0; i < n; i++) {
		size_t slen;

		if (o >= len)
			return -1;
		switch (buf[o++]) {
		case 0:
			values[i] = NULL;
			break;
		case 1:
			slen = strnlen(buf + o, len - o);
			if (slen == len - o || slen > value_max)
				return -1;
			values[i] = buf + o;
			o += slen + 1;
			break;
		default:
			return -1;
		}
	}
	return o == len ? 0 : -1;
}
