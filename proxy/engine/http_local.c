/*
 * http_local.c - unsplit (not root, or `user =`), the HTTP server runs on
 * the one process's loop and its request lines are answered here, the
 * way the privileged parent answers them in a split (proxy/privsep/
 * http_parent.c): parsed and checked again, a listing queued for the
 * database, then executed as the control socket's request.
 */
#include "http_local.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "priv.h"

static struct http_server *local_server;

static int
local_ask(void *arg, const char *request, char *answer, size_t cap)
{
	const struct config *c = mxd->config;
	struct http_request rq;
	char err[128], line[HTTP_LINE_MAX + 1];
	struct evbuffer *out;
	size_t n;

	if (http_request_parse(request, &rq, err, sizeof(err)) == -1 ||
	    http_request_control_line(&rq, line, sizeof(line)) == -1) {
		priv_http_local(true, 0, 1);
		return snprintf(answer, cap, "error: refused: %s\n", err);
	}
	priv_http_local(true, 1, 0);
	if ((out = evbuffer_new()) == NULL)
		return -1;
	control_execute(line, out);
	if (rq.kind == HTTP_REQ_LISTING) {
		int64_t ttl = rq.ttl_ms ? rq.ttl_ms : rq.block ? c->block_ttl : c->pass_ttl;
		int db = dbstore_listing_change(rq.add, rq.block, rq.address, ttl, rq.user);

		evbuffer_add_printf(out, "database: %s\n", db == 0 ? "queued" : "off");
		log_info("http: %s %s %s %s%s%s (database: %s)", rq.user, rq.block ? "block" : "allow", rq.add ? "add" : "del",
		    rq.address, rq.ttl[0] ? " ttl=" : "", rq.ttl, db == 0 ? "queued" : "off");
	}
	n = evbuffer_get_length(out);
	if (n >= cap)
		n = cap - 1;
	evbuffer_remove(out, answer, n);
	answer[n] = '\0';
	evbuffer_free(out);
	return (int)n;
}

int
http_local_start(void)
{
	char err[512];

	if (priv_split() || mxd->config->http_listen[0] == '\0')
		return 0;
	if (geteuid() == 0)
		log_warn("http: the dashboard is served by the one process, as root (user is empty); "
		    "set user for an HTTP process without privileges");
	local_server = http_server_new(mxd->base, mxd->config, local_ask, NULL, err, sizeof(err));
	if (local_server == NULL) {
		log_warn("%s", err);
		return -1;
	}
	priv_http_local(true, 0, 0);
	return 0;
}

void
http_local_stop(void)
{
	http_server_free(local_server);
	local_server = NULL;
	if (!priv_split())
		priv_http_local(false, 0, 0);
}
