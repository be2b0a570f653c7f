#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_verbose;
/* "priv: " in the privileged parent, so its lines stand apart from the engine's. */
const char *log_prefix = "";

/*
 * log_to_journal - 1 when stderr is the journal's stream: the variable
 * alone is not enough (a child may inherit it with stderr redirected), so
 * its "DEV:INODE" must be stderr's own. Decided once: stderr does not
 * change under a running daemon.
 */
int
log_to_journal(void)
{
	static int journal = -1;	/* not yet known */
	const char *e;
	unsigned long long dev, ino;
	struct stat st;

	if (journal != -1)
		return journal;
	e = getenv("JOURNAL_STREAM");
	journal = e != NULL && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	return journal;
}

/* Syslog priorities of the sd-daemon(3) "<N>" prefix the journal reads. */
#define LOG_PRI_ERR	3
#define LOG_PRI_WARNING	4
#define LOG_PRI_INFO	6
#define LOG_PRI_DEBUG	7

static void
log_vemit(int priority, const char *level, const char *fmt, va_list ap)
{
	char buf[4096], stamp[32];
	struct timeval tv;
	struct tm tm;

	if (log_to_journal()) {
		/* The journal stamps each line itself and files it under the priority. */
		vsnprintf(buf, sizeof(buf), fmt, ap);
		fprintf(stderr, "<%d>%s: %s%s\n", priority, level, log_prefix, buf);
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* One write per line so lines from a busy loop never interleave. */
	fprintf(stderr, "%s.%03ldZ mxtierd[%s]: %s%s\n", stamp, (long)(tv.tv_usec / 1000), level, log_prefix, buf);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_PRI_INFO, "info", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_PRI_WARNING, "warn", fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	log_vemit(LOG_PRI_DEBUG, "debug", fmt, ap);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_PRI_ERR, "fatal", fmt, ap);
	va_end(ap);
	exit(1);
}

/*
 * escape_into - the shared loop: a byte is copied when plain(c), else
 * written as \xHH; cut with "..." rather than overrun dst.
 */
static const char *
escape_into(char *dst, size_t dstlen, const char *src, size_t srclen, int (*plain)(unsigned char))
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dstlen == 0)
		return dst;
	for (size_t i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];
		int keep = plain(c);

		if (o + (keep ? 1 : 4) + 4 > dstlen) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (keep) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}

/* Inside double quotes a space cannot end the value; the quote and the backslash can. */
static int
plain_in_quotes(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* A bare or <bracketed> value ends at a space or '>': neither may pass, or a sender could append fields. */
static int
plain_in_token(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>';
}

const char *
log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	return escape_into(dst, dstlen, src, srclen, plain_in_quotes);
}

const char *
log_escape_token(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	return escape_into(dst, dstlen, src, srclen, plain_in_token);
}
