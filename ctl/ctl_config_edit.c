/*
 * ctl_config_edit.c - editing the config file in place for `tier set`:
 * one tier list line changed, everything else byte for byte as it was,
 * and the file replaced atomically.
 */
#include "ctl_config_edit.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define CTL_CONFIG_MAX	(1024 * 1024)	/* what config_load reads */

/* A growing output text. */
struct text_out {
	char	*buf;
	size_t	 len, cap;
};

static void
out_add(struct text_out *o, const char *p, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		if ((o->buf = realloc(o->buf, o->cap)) == NULL)
			abort();
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void
out_str(struct text_out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

/* tier_key_role - the role whose list key (primary_ips, ...) is key[0..len), or -1. */
static int
tier_key_role(const char *key, size_t len)
{
	char name[32];

	for (int t = 0; t < TIER_COUNT; t++) {
		snprintf(name, sizeof(name), "%s_ips", tier_role_name(t));
		if (strlen(name) == len && strncmp(key, name, len) == 0)
			return t;
	}
	return -1;
}

static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/*
 * edit_tier_line - one "KEY = a, b  # comment" line of role's list, with
 * addr removed and (add) appended. The value is split the way the loader
 * splits it (commas and blanks); items that do not name addr are kept as
 * written. Returns true and appends the new line to o if it changed.
 */
static bool
edit_tier_line(struct text_out *o, const char *line, size_t len, const char *value, const char *value_end,
    const struct netaddr *addr, bool add, bool *had)
{
	char items[4096], *save = NULL, joined[sizeof(items) + NETADDR_STRLEN + 4] = "";
	const char *lead_end = value, *trail_start = value_end;
	size_t used = 0;
	bool changed = false;

	*had = false;
	if ((size_t)(value_end - value) >= sizeof(items))
		return false;	/* longer than the loader accepts: it refuses the file anyway */
	memcpy(items, value, (size_t)(value_end - value));
	items[value_end - value] = '\0';
	for (char *tok = strtok_r(items, ", \t\r", &save); tok; tok = strtok_r(NULL, ", \t\r", &save)) {
		struct netaddr a;

		if (netaddr_parse(tok, &a) == 0) {
			netaddr_normalize(&a);
			if (netaddr_equal(&a, addr)) {
				bool again = *had;

				*had = true;
				if (!add || again) {
					changed = true;
					continue;	/* removed, or a repetition of it */
				}
			}
		}
		used += (size_t)snprintf(joined + used, sizeof(joined) - used, "%s%s", used ? ", " : "", tok);
	}
	if (add && !*had) {
		char text[NETADDR_STRLEN];

		used += (size_t)snprintf(joined + used, sizeof(joined) - used, "%s%s", used ? ", " : "",
		    netaddr_format(addr, text, sizeof(text)));
		changed = true;
	}
	if (!changed)
		return false;
	while (lead_end < value_end && is_blank(*lead_end))
		lead_end++;
	while (trail_start > lead_end && is_blank(trail_start[-1]))
		trail_start--;
	/* KEY = as written, the blank after '=' as written (or one space), the items, what followed them. */
	out_add(o, line, (size_t)(value - line));
	if (used > 0) {
		if (lead_end > value)
			out_add(o, value, (size_t)(lead_end - value));
		else if (lead_end == trail_start)	/* "key =" had no items: "key = a" */
			out_str(o, " ");
		out_str(o, joined);
	}
	out_add(o, trail_start, len - (size_t)(trail_start - line));
	return true;
}

char *
ctl_config_set_tier(const char *text, const struct netaddr *addr_in, int role, bool *changed, int *was)
{
	struct text_out o = { NULL, 0, 0 };
	struct netaddr addr = *addr_in;
	bool have_key = false;
	const char *p = text;
	size_t placeholder_end = 0;	/* where "#ROLE_ips =" (the packaged file's) ends in o, 0: none */
	char placeholder[32];

	snprintf(placeholder, sizeof(placeholder), "#%s_ips", role >= 0 ? tier_role_name(role) : "");

	netaddr_normalize(&addr);
	*changed = false;
	*was = -1;
	out_str(&o, "");
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *hash = memchr(p, '#', len), *content_end = hash ? hash : p + len;
		const char *eq = memchr(p, '=', (size_t)(content_end - p)), *k = p, *ke;
		int t;
		bool had = false;

		/* The loader's reading: '#' starts a comment, the key is what precedes '=', trimmed. */
		while (k < content_end && is_blank(*k))
			k++;
		ke = eq ? eq : k;
		while (ke > k && is_blank(ke[-1]))
			ke--;
		t = eq ? tier_key_role(k, (size_t)(ke - k)) : -1;
		if (t < 0 || !edit_tier_line(&o, p, len, eq + 1, content_end, &addr, t == role, &had))
			out_add(&o, p, len);
		else
			*changed = true;
		if (had)
			*was = t;
		if (t >= 0 && t == role)
			have_key = true;
		if (nl)
			out_str(&o, "\n");
		if (role >= 0 && nl && placeholder_end == 0 && len > strlen(placeholder) &&
		    strncmp(p, placeholder, strlen(placeholder)) == 0 &&
		    (is_blank(p[strlen(placeholder)]) || p[strlen(placeholder)] == '='))
			placeholder_end = o.len;
		p += len + (nl ? 1 : 0);
	}
	if (role >= 0 && !have_key) {
		char line[NETADDR_STRLEN + 32], a[NETADDR_STRLEN];
		char *tail;

		if (o.len > 0 && o.buf[o.len - 1] != '\n')
			out_str(&o, "\n");
		snprintf(line, sizeof(line), "%s_ips = %s\n", tier_role_name(role), netaddr_format(&addr, a, sizeof(a)));
		/* Under the commented-out key of the packaged file, where an operator looks for it; else at the end. */
		if (placeholder_end > 0) {
			tail = strdup(o.buf + placeholder_end);
			if (tail == NULL)
				abort();
			o.len = placeholder_end;
			o.buf[o.len] = '\0';
			out_str(&o, line);
			out_str(&o, tail);
			free(tail);
		} else {
			out_str(&o, line);
		}
		*changed = true;
	}
	return o.buf;
}

char *
ctl_config_read(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct text_out o = { NULL, 0, 0 };
	char buf[8192];
	ssize_t n;

	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	out_str(&o, "");
	while ((n = read(fd, buf, sizeof(buf))) > 0 && o.len <= CTL_CONFIG_MAX)
		out_add(&o, buf, (size_t)n);
	close(fd);
	if (n == -1 || o.len > CTL_CONFIG_MAX || strlen(o.buf) != o.len) {
		snprintf(err, errlen, "%s: %s", path, n == -1 ? strerror(errno) :
		    o.len > CTL_CONFIG_MAX ? "larger than 1 MiB" : "contains a NUL byte");
		free(o.buf);
		return NULL;
	}
	return o.buf;
}

int
ctl_config_replace(const char *path, const char *text, char *err, size_t errlen)
{
	char real[PATH_MAX], dir[PATH_MAX], base[PATH_MAX], tmp[PATH_MAX * 2 + 16];
	size_t len = strlen(text), done = 0;
	const char *parent;
	struct stat st;
	int fd, dirfd;

	if (realpath(path, real) == NULL || stat(real, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* dirname and basename may write into their argument: each gets its own copy. */
	snprintf(dir, sizeof(dir), "%s", real);
	snprintf(base, sizeof(base), "%s", real);
	parent = dirname(dir);
	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", parent, basename(base));
	if ((fd = mkstemp(tmp)) == -1) {
		snprintf(err, errlen, "cannot create a file next to %s: %s", real, strerror(errno));
		return -1;
	}
	/* The same mode and owner as the file it replaces (it may hold a database password). */
	if (fchmod(fd, st.st_mode & 07777) == -1 ||
	    ((st.st_uid != geteuid() || st.st_gid != getegid()) && fchown(fd, st.st_uid, st.st_gid) == -1))
		goto fail;
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		done += (size_t)n;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, real) == -1)
		goto fail;
	/* The rename itself reaches the disk with the directory. */
	if ((dirfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(dirfd);
		close(dirfd);
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot write %s: %s", real, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}
