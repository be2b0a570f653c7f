/*
 * ctl_control.c - mxtierctl's side of the control socket (control_socket):
 * one request line, a reply that starts with "ok" or "error: ...".
 */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_CONTROL_TIMEOUT_S	10	/* the daemon answers a reload within 8 s */

static char *
text_dup(const char *fmt, const char *a, const char *b)
{
	char *out = NULL;

	if (asprintf(&out, fmt, a, b) == -1)
		abort();
	return out;
}

enum ctl_answer
ctl_control_ask(const struct config *c, const char *request, char **reply)
{
	struct sockaddr_un sun;
	size_t used = 0, cap = 4096, len = strlen(request);
	char *buf;
	ssize_t n;
	int fd;

	*reply = NULL;
	if (c->control_socket[0] == '\0') {
		*reply = text_dup("control_socket is not set in %s%s", c->path, "");
		return CTL_ANSWER_UNREACHABLE;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", c->control_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		*reply = text_dup("cannot reach mxtierd at %s: %s", c->control_socket, strerror(errno));
		if (fd != -1)
			close(fd);
		return CTL_ANSWER_UNREACHABLE;
	}
	/* The daemon that answers is the unprivileged engine: never wait for it for ever. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = CTL_CONTROL_TIMEOUT_S },
	    sizeof(struct timeval));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &(struct timeval){ .tv_sec = CTL_CONTROL_TIMEOUT_S },
	    sizeof(struct timeval));
	if (write(fd, request, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
		*reply = text_dup("write to %s: %s", c->control_socket, strerror(errno));
		close(fd);
		return CTL_ANSWER_BROKEN;
	}
	if ((buf = malloc(cap)) == NULL)
		abort();
	while ((n = read(fd, buf + used, cap - used - 1)) > 0) {
		used += (size_t)n;
		if (cap - used - 1 == 0) {
			if (cap >= CTL_REPLY_MAX)
				break;
			cap *= 2;
			if ((buf = realloc(buf, cap)) == NULL)
				abort();
		}
	}
	close(fd);
	if (n == -1) {
		free(buf);
		*reply = text_dup("no complete answer from mxtierd: %s%s", strerror(errno), "");
		return CTL_ANSWER_BROKEN;
	}
	buf[used] = '\0';
	/* Nor let it write terminal escapes to an operator's screen. */
	for (size_t i = 0; i < used; i++)
		if (((unsigned char)buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\t') || buf[i] == 0x7f)
			buf[i] = '?';
	*reply = buf;
	return strncmp(buf, "ok", 2) == 0 ? CTL_ANSWER_OK : used ? CTL_ANSWER_ERROR : CTL_ANSWER_BROKEN;
}

/* ctl_cmd_control - status, block/allow as a daemon request: its reply to stdout ("ok") or stderr. */
int
ctl_cmd_control(const struct config *c, int argc, char **argv)
{
	char request[512] = "", *reply;
	size_t used = 0;
	enum ctl_answer a;

	for (int i = 0; i < argc && used < sizeof(request); i++)
		used += (size_t)snprintf(request + used, sizeof(request) - used, "%s%s", i ? " " : "", argv[i]);
	if (used + 2 >= sizeof(request)) {
		fprintf(stderr, "mxtierctl: request too long\n");
		return 1;
	}
	a = ctl_control_ask(c, request, &reply);
	if (a == CTL_ANSWER_UNREACHABLE || a == CTL_ANSWER_BROKEN)
		fprintf(stderr, "mxtierctl: %s\n", reply);
	else
		fputs(reply, a == CTL_ANSWER_OK ? stdout : stderr);
	free(reply);
	return a == CTL_ANSWER_OK ? 0 : 1;
}
