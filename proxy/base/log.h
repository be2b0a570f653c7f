#ifndef MXTIER_LOG_H
#define MXTIER_LOG_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Logging to stderr, one line per call, with a timestamp; when stderr is
 * the journal (log_to_journal) with the "<N>" syslog priority instead, so
 * `journalctl -p warning` finds the warnings.
 */
extern int log_verbose;
extern const char *log_prefix;

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int  log_to_journal(void);
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * log_escape - copy a wire value into dst for a double-quoted log field:
 * printable ASCII and the space kept, everything else (CR, LF, NUL, 8-bit,
 * '"', '\\') as \xHH, so nothing a client sends can forge a log line.
 * Truncates to dstlen with "...".
 */
const char *log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

/*
 * log_escape_token - the same for a bare or <bracketed> field (from=<...>,
 * rdns=...): the space, '<' and '>' are escaped too, since any of them
 * would end the field and let the rest read as fields of our own.
 */
const char *log_escape_token(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
