/*
 * http_request.c - the request lines the HTTP side sends the privileged
 * side. The HTTP side formats them from what an operator asked; the
 * privileged side parses them again with the same code and takes nothing
 * on trust: a compromised HTTP process can ask no more than an operator
 * at the control socket (status, the lists, a listing of one address).
 */
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "netaddr.h"

#define HTTP_TTL_MAX_MS		(366LL * 24 * 3600 * 1000)

bool
http_user_valid(const char *user)
{
	size_t n = strlen(user);

	if (n == 0 || n > HTTP_USER_MAX)
		return false;
	return strspn(user, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@+-") == n;
}

int
http_request_parse(const char *line, struct http_request *rq, char *err, size_t errlen)
{
	char copy[HTTP_LINE_MAX + 1], *words[8] = { NULL }, *save = NULL;
	int n = 0;
	struct netaddr a;

	memset(rq, 0, sizeof(*rq));
	if (strlen(line) > HTTP_LINE_MAX || strpbrk(line, "\r\n")) {
		snprintf(err, errlen, "request too long or not one line");
		return -1;
	}
	snprintf(copy, sizeof(copy), "%s", line);
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (n == 8) {
			snprintf(err, errlen, "too many words");
			return -1;
		}
		words[n++] = w;
	}
	if (n == 1 && strcmp(words[0], "status") == 0) {
		rq->kind = HTTP_REQ_STATUS;
		return 0;
	}
	if (n == 1 && strcmp(words[0], "listeners") == 0) {
		rq->kind = HTTP_REQ_LISTENERS;
		return 0;
	}
	if (n == 2 && strcmp(words[0], "list") == 0 && (strcmp(words[1], "block") == 0 || strcmp(words[1], "allow") == 0)) {
		rq->kind = HTTP_REQ_LIST;
		rq->block = words[1][0] == 'b';
		return 0;
	}
	if ((n != 5 && n != 6) || strcmp(words[0], "listing") != 0) {
		snprintf(err, errlen, "unknown request");
		return -1;
	}
	rq->kind = HTTP_REQ_LISTING;
	if (!http_user_valid(words[1])) {
		snprintf(err, errlen, "bad operator name");
		return -1;
	}
	snprintf(rq->user, sizeof(rq->user), "%s", words[1]);
	if (strcmp(words[2], "block") != 0 && strcmp(words[2], "allow") != 0) {
		snprintf(err, errlen, "list must be block or allow");
		return -1;
	}
	rq->block = words[2][0] == 'b';
	if (strcmp(words[3], "add") != 0 && strcmp(words[3], "del") != 0) {
		snprintf(err, errlen, "action must be add or remove");
		return -1;
	}
	rq->add = words[3][0] == 'a';
	if (netaddr_parse(words[4], &a) == -1) {
		snprintf(err, errlen, "expected an IPv4 or IPv6 address");
		return -1;
	}
	netaddr_normalize(&a);
	netaddr_format(&a, rq->address, sizeof(rq->address));
	if (n == 6) {
		if (!rq->add || strlen(words[5]) >= sizeof(rq->ttl) || config_parse_duration(words[5], &rq->ttl_ms) == -1 ||
		    rq->ttl_ms < 1000 || rq->ttl_ms > HTTP_TTL_MAX_MS) {
			snprintf(err, errlen, "bad ttl (1s to 366d, with s, m, h or d)");
			return -1;
		}
		snprintf(rq->ttl, sizeof(rq->ttl), "%s", words[5]);
	}
	return 0;
}

/* request_text - the line for rq, as the HTTP side sends it (wire) or as the control socket takes it. */
static int
request_text(const struct http_request *rq, bool wire, char *line, size_t cap)
{
	const char *list = rq->block ? "block" : "allow";
	int n;

	switch (rq->kind) {
	case HTTP_REQ_STATUS:
		n = snprintf(line, cap, "status");
		break;
	case HTTP_REQ_LISTENERS:
		n = snprintf(line, cap, "listeners");
		break;
	case HTTP_REQ_LIST:
		n = wire ? snprintf(line, cap, "list %s", list) : snprintf(line, cap, "%s list", list);
		break;
	case HTTP_REQ_LISTING:
		n = snprintf(line, cap, "%s%s%s%s %s %s%s%s", wire ? "listing " : "", wire ? rq->user : "", wire ? " " : "",
		    list, rq->add ? "add" : "del", rq->address, rq->ttl[0] ? " " : "", rq->ttl);
		break;
	default:
		return -1;
	}
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int
http_request_format(const struct http_request *rq, char *line, size_t cap)
{
	return request_text(rq, true, line, cap);
}

int
http_request_control_line(const struct http_request *rq, char *line, size_t cap)
{
	return request_text(rq, false, line, cap);
}

int
http_channel_ask(int fd, const char *request, char *answer, size_t cap, int timeout_ms)
{
	static uint32_t next_id;
	char out[sizeof(uint32_t) + HTTP_LINE_MAX];
	static char in[sizeof(uint32_t) + HTTP_ANSWER_MAX];
	size_t len = strlen(request);
	uint32_t id = ++next_id, got;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (len > HTTP_LINE_MAX || cap == 0)
		return -1;
	memcpy(out, &id, sizeof(id));
	memcpy(out + sizeof(id), request, len);
	if (send(fd, out, sizeof(id) + len, MSG_NOSIGNAL) == -1)
		return -1;
	/* Answers to requests that timed out earlier may still come: skip them. */
	for (;;) {
		ssize_t n;

		if (poll(&p, 1, timeout_ms) != 1)
			return -1;
		n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < (ssize_t)sizeof(got))
			return -1;
		memcpy(&got, in, sizeof(got));
		if (got != id)
			continue;
		n -= (ssize_t)sizeof(got);
		if ((size_t)n >= cap)
			n = (ssize_t)cap - 1;
		memcpy(answer, in + sizeof(got), (size_t)n);
		answer[n] = '\0';
		return (int)n;
	}
}
