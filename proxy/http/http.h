#ifndef MXTIER_HTTP_H
#define MXTIER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/*
 * The HTTP process: the dashboard's static files, /metrics and the JSON
 * API of docs/http-api.md, on http_listen. In a split it is its own
 * process, forked by the privileged parent and run as `user` with no
 * capability, no netlink socket and no database write rights; what it
 * knows of the daemon and every action it takes it asks for in request
 * lines (below) that the privileged side checks again. Unsplit the same
 * server runs on the one process's loop and its requests are answered
 * in place.
 */

#define HTTP_LINE_MAX		512		/* one request line to the privileged side */
#define HTTP_ANSWER_MAX		(64 * 1024)	/* one answer (status, a list) */
#define HTTP_USER_MAX		64

/*
 * http_ask_fn - send request line, put the answer (NUL-terminated, at
 * most cap - 1 bytes) in answer; its length, or -1 when no answer came.
 */
typedef int (*http_ask_fn)(void *arg, const char *request, char *answer, size_t cap);

struct event_base;
struct http_server;

/*
 * http_server_new - read the password and token files, make the TLS
 * context and bind http_listen: everything that needs the files or the
 * port, so the caller may drop privileges afterwards. NULL with err set.
 */
struct http_server	*http_server_new(struct event_base *base, const struct config *c, http_ask_fn ask, void *arg,
			    char *err, size_t errlen);
void			 http_server_free(struct http_server *s);

/* ---- request lines (http_request.c): built by the HTTP side, parsed again by the privileged side ---- */

enum http_request_kind {
	HTTP_REQ_STATUS = 0,	/* "status" */
	HTTP_REQ_LIST,		/* "list block|allow" */
	HTTP_REQ_LISTENERS,	/* "listeners" */
	HTTP_REQ_LISTING	/* "listing USER block|allow add|del ADDRESS [TTL]" */
};

struct http_request {
	enum http_request_kind	 kind;
	bool			 block;
	bool			 add;
	char			 user[HTTP_USER_MAX + 1];
	char			 address[64];	/* as normalised by netaddr */
	char			 ttl[24];	/* "" = the default (block_ttl / pass_ttl) */
	int64_t			 ttl_ms;	/* 0 = the default */
};

/* http_request_parse - a request line, every field checked; -1 with err set. */
int	http_request_parse(const char *line, struct http_request *rq, char *err, size_t errlen);
/* http_request_format - the line for rq; -1 if it does not fit. */
int	http_request_format(const struct http_request *rq, char *line, size_t cap);
/* http_request_control_line - what the control socket would be asked for rq (control.c executes it). */
int	http_request_control_line(const struct http_request *rq, char *line, size_t cap);
/* http_user_valid - an operator's name: 1..64 of [A-Za-z0-9._@+-]. */
bool	http_user_valid(const char *user);

/*
 * http_channel_ask - the HTTP process's side of its channel to the
 * privileged parent: one datagram out (uint32 id + line), wait up to
 * timeout_ms for the answer with that id. Same contract as http_ask_fn.
 */
int	http_channel_ask(int fd, const char *request, char *answer, size_t cap, int timeout_ms);

#endif
