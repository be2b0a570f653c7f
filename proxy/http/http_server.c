/*
 * http_server.c - the HTTP side of the dashboard on evhttp: the listener
 * (HTTPS through bufferevent_openssl when http_tls_* are set), the checks
 * every request passes (connection bound, authentication, cross-site and
 * CSRF for state changes, sizes), the routes of docs/http-api.md and the
 * static files of dashboard_dir. What the daemon knows comes from the
 * ask function as "status"-style text; nothing here touches the SMTP
 * engine's memory, the kernel or the database writer.
 */
#include "http_internal.h"
#include "version.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "netaddr.h"

#define HTTP_PATH_MAX		256
#define HTTP_CONNS_TABLE	10000	/* the bound of http_max_connections */

struct http_server {
	struct event_base	*base;
	struct evhttp		*eh;
	SSL_CTX			*ssl;
	http_ask_fn		 ask;
	void			*ask_arg;
	struct http_auth	*auth;
	struct http_db		*db;
	char			 dashboard_dir[PATH_MAX];	/* resolved; "" when missing */
	char			 appliance[256];		/* appliance_name */
	bool			 tls;
	time_t			 started;
	size_t			 max_conns;
	struct evhttp_connection **conns;	/* the connections open now (max_conns) */
	size_t			 nconns;
	char			 answer[HTTP_ANSWER_MAX + 1];
};

/* A request being served: who asked, and the parts every handler needs. */
struct http_call {
	struct http_server	*s;
	struct evhttp_request	*req;
	char			 user[HTTP_USER_MAX + 1];
	const char		*auth_kind;
	struct evkeyvalq	 query;
};

/* ---- replies ---- */

static void
reply(struct http_call *call, int code, const char *reason, const char *type, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(call->req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "same-origin");
	evhttp_add_header(h, "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'");
	if (strncmp(type, "application/json", 16) == 0 || strncmp(type, "text/plain", 10) == 0)
		evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(call->req, code, reason, body);
}

static void
reply_json(struct http_call *call, int code, const char *reason, struct evbuffer *body)
{
	reply(call, code, reason, "application/json", body);
}

static void
reply_error(struct http_call *call, int code, const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL) {
		evhttp_send_error(call->req, 500, NULL);
		return;
	}
	evbuffer_add_printf(b, "{\"error\":");
	json_string(b, text);
	evbuffer_add_printf(b, "}\n");
	reply_json(call, code, reason, b);
	evbuffer_free(b);
}

/* ask - a request line to the privileged side; the answer (in s->answer), or NULL. */
static const char *
ask(struct http_server *s, const char *line)
{
	if (s->ask(s->ask_arg, line, s->answer, sizeof(s->answer)) < 0)
		return NULL;
	return s->answer;
}

/* ---- the API ---- */

static void
api_session(struct http_call *call)
{
	struct evbuffer *b = evbuffer_new();
	char csrf[HTTP_CSRF_HEX + 1];

	http_auth_csrf(call->s->auth, call->user, csrf);
	evbuffer_add_printf(b, "{\"user\":");
	json_string(b, call->user);
	evbuffer_add_printf(b, ",\"csrf\":\"%s\",\"auth\":\"%s\",\"version\":\"%s\",\"database\":%s}\n", csrf,
	    call->auth_kind, MXTIER_VERSION, http_db_configured(call->s->db) ? "true" : "false");
	reply_json(call, 200, "OK", b);
	evbuffer_free(b);
}

/* with_status - the daemon's counters, parsed; false (and a 502 sent) when it did not answer. */
static bool
with_status(struct http_call *call, struct status *st)
{
	const char *a = ask(call->s, "status");

	if (a == NULL || status_parse(st, a) == -1) {
		reply_error(call, 502, "Bad Gateway", "the daemon did not answer");
		return false;
	}
	return true;
}

static void
api_metrics(struct http_call *call)
{
	struct status st;
	struct evbuffer *b;

	if (!with_status(call, &st))
		return;
	b = evbuffer_new();
	metrics_write(b, &st);
	status_clear(&st);
	reply(call, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

static void
api_live(struct http_call *call)
{
	struct status st;
	struct evbuffer *b;

	if (!with_status(call, &st))
		return;
	b = evbuffer_new();
	live_write(b, &st, difftime(time(NULL), call->s->started));
	evbuffer_add_printf(b, "\n");
	status_clear(&st);
	reply_json(call, 200, "OK", b);
	evbuffer_free(b);
}

static void
api_history(struct http_call *call)
{
	const char *range = evhttp_find_header(&call->query, "range");
	struct evbuffer *b;
	char err[512];

	if (!http_db_configured(call->s->db)) {
		reply_error(call, 503, "Service Unavailable", "no database: set dashboard_database");
		return;
	}
	if (range == NULL)
		range = "day";
	if (strcmp(range, "day") != 0 && strcmp(range, "week") != 0 && strcmp(range, "month") != 0) {
		reply_error(call, 400, "Bad Request", "range must be day, week or month");
		return;
	}
	b = evbuffer_new();
	if (http_db_history(call->s->db, range, b, err, sizeof(err)) == -1) {
		reply_error(call, 503, "Service Unavailable", err);
	} else {
		evbuffer_add_printf(b, "\n");
		reply_json(call, 200, "OK", b);
	}
	evbuffer_free(b);
}

/*
 * list_write - the live "block list" / "allow list" answer as a JSON
 * array; *found set when key is among them. Lines: KEY expires_in=Ns
 * reason=R offences=N.
 */
static void
list_write(struct evbuffer *b, const char *answer, const char *key, bool *found)
{
	char *copy = strdup(answer ? answer : ""), *save = NULL, *line;
	bool first = true;

	evbuffer_add_printf(b, "[");
	line = copy ? strtok_r(copy, "\n", &save) : NULL;
	if (line && strcmp(line, "ok") == 0) {
		while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
			char addr[128] = "", reason[64] = "";
			long long expires = 0;
			unsigned offences = 0;

			if (sscanf(line, "%127s expires_in=%llds reason=%63s offences=%u", addr, &expires, reason, &offences) < 1)
				continue;
			if (found && key && strcmp(addr, key) == 0)
				*found = true;
			evbuffer_add_printf(b, "%s{\"address\":", first ? "" : ",");
			json_string(b, addr);
			evbuffer_add_printf(b, ",\"expires_in_s\":%lld,\"reason\":", expires);
			json_string(b, reason);
			evbuffer_add_printf(b, ",\"offences\":%u}", offences);
			first = false;
		}
	}
	evbuffer_add_printf(b, "]");
	free(copy);
}

static bool
domain_valid(const char *q)
{
	size_t n = strlen(q);

	return n > 0 && n <= 253 && strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n &&
	    q[0] != '.' && q[0] != '-';
}

static void
api_sender(struct http_call *call)
{
	const char *q = evhttp_find_header(&call->query, "q");
	struct netaddr a;
	char key[NETADDR_STRLEN] = "", advice[512] = "", err[512];
	bool is_address, blocked = false, allowed = false;
	struct evbuffer *b;

	if (q == NULL || strlen(q) > 253) {
		reply_error(call, 400, "Bad Request", "q must be an address or a domain");
		return;
	}
	is_address = netaddr_parse(q, &a) == 0;
	if (is_address) {
		netaddr_normalize(&a);
		netaddr_format(&a, key, sizeof(key));
	} else if (!domain_valid(q)) {
		reply_error(call, 400, "Bad Request", "q must be an address or a domain");
		return;
	}
	b = evbuffer_new();
	evbuffer_add_printf(b, "{\"query\":");
	json_string(b, is_address ? key : q);
	evbuffer_add_printf(b, ",\"kind\":\"%s\",\"database\":%s,", is_address ? "address" : "domain",
	    http_db_configured(call->s->db) ? "true" : "false");
	if (http_db_configured(call->s->db)) {
		if (http_db_sender(call->s->db, is_address ? key : q, is_address, b, advice, sizeof(advice), err,
		    sizeof(err)) == -1) {
			evbuffer_free(b);
			reply_error(call, 503, "Service Unavailable", err);
			return;
		}
		evbuffer_add_printf(b, ",");
	} else {
		evbuffer_add_printf(b, "\"contacts\":[],\"reputation\":[],\"shared\":[],\"listings\":[],");
	}
	/* What this appliance holds now, whatever the database says. */
	if (is_address) {
		struct evbuffer *scratch = evbuffer_new();

		list_write(scratch, ask(call->s, "list block"), key, &blocked);
		list_write(scratch, ask(call->s, "list allow"), key, &allowed);
		evbuffer_free(scratch);
	}
	evbuffer_add_printf(b, "\"live\":{\"blocked\":%s,\"allowed\":%s},\"advice\":", blocked ? "true" : "false",
	    allowed ? "true" : "false");
	if (blocked)
		snprintf(advice, sizeof(advice), "Blocked on this appliance (in the kernel block set when kernel_sets is on): "
		    "remove the block on the Listings page if it is a real MTA.");
	else if (advice[0] == '\0')
		snprintf(advice, sizeof(advice), "No database: only this appliance's live lists are known.");
	json_string(b, advice);
	evbuffer_add_printf(b, "}\n");
	reply_json(call, 200, "OK", b);
	evbuffer_free(b);
}

static void
api_listings_get(struct http_call *call)
{
	struct evbuffer *b = evbuffer_new();
	char err[512];

	evbuffer_add_printf(b, "{\"block\":");
	list_write(b, ask(call->s, "list block"), NULL, NULL);
	evbuffer_add_printf(b, ",\"allow\":");
	list_write(b, ask(call->s, "list allow"), NULL, NULL);
	if (http_db_configured(call->s->db)) {
		evbuffer_add_printf(b, ",");
		if (http_db_listings(call->s->db, b, err, sizeof(err)) == -1) {
			evbuffer_add_printf(b, "\"database\":null,\"database_error\":");
			json_string(b, err);
		}
	}
	evbuffer_add_printf(b, "}\n");
	reply_json(call, 200, "OK", b);
	evbuffer_free(b);
}

static void
api_listings_post(struct http_call *call)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(call->req);
	size_t len = evbuffer_get_length(in);
	char body[HTTP_BODY_MAX + 1], action[16], list[16], address[64], ttl[24] = "", line[HTTP_LINE_MAX + 1], err[128];
	const char *answer, *db;
	struct http_request rq;
	struct evbuffer *b;

	if (len > HTTP_BODY_MAX) {
		reply_error(call, 413, "Payload Too Large", "body over 4096 bytes");
		return;
	}
	evbuffer_copyout(in, body, len);
	body[len] = '\0';
	if (json_object_get(body, len, "action", action, sizeof(action)) != 1 ||
	    json_object_get(body, len, "list", list, sizeof(list)) != 1 ||
	    json_object_get(body, len, "address", address, sizeof(address)) != 1 ||
	    json_object_get(body, len, "ttl", ttl, sizeof(ttl)) == -1) {
		reply_error(call, 400, "Bad Request", "expected {\"action\":\"add|remove\",\"list\":\"block|allow\","
		    "\"address\":\"...\",\"ttl\":\"1h\"}");
		return;
	}
	if (strcmp(action, "remove") == 0)
		snprintf(action, sizeof(action), "del");
	if (strspn(ttl, "0123456789") == strlen(ttl) && ttl[0])
		snprintf(ttl + strlen(ttl), sizeof(ttl) - strlen(ttl), "s");	/* a bare number is seconds */
	snprintf(line, sizeof(line), "listing %s %s %s %s%s%s", call->user, list, action, address, ttl[0] ? " " : "", ttl);
	/* Parsed here too, so an operator's mistake is a 400 with the reason, not a refusal upstairs. */
	snprintf(err, sizeof(err), "request too long");
	if (strlen(line) >= HTTP_LINE_MAX || http_request_parse(line, &rq, err, sizeof(err)) == -1) {
		reply_error(call, 400, "Bad Request", err);
		return;
	}
	if ((answer = ask(call->s, line)) == NULL) {
		reply_error(call, 502, "Bad Gateway", "the daemon did not answer");
		return;
	}
	log_info("action by %s: %s %s %s%s%s: %.*s", rq.user, list, action, rq.address, ttl[0] ? " ttl=" : "", ttl,
	    (int)strcspn(answer, "\n"), answer);
	if (strncmp(answer, "ok", 2) != 0) {
		const char *text = strncmp(answer, "error: ", 7) == 0 ? answer + 7 : answer;
		char msg[256];

		snprintf(msg, sizeof(msg), "%.*s", (int)strcspn(text, "\n"), text);
		reply_error(call, strstr(msg, " is not ") ? 409 : 400, strstr(msg, " is not ") ? "Conflict" : "Bad Request", msg);
		return;
	}
	db = strstr(answer, "database: ");
	b = evbuffer_new();
	evbuffer_add_printf(b, "{\"ok\":true,\"result\":\"ok\",\"address\":");
	json_string(b, rq.address);
	evbuffer_add_printf(b, ",\"database\":\"%s\"}\n", db && strncmp(db + 10, "queued", 6) == 0 ? "queued" : "off");
	reply_json(call, 200, "OK", b);
	evbuffer_free(b);
}

static void
api_tiers(struct http_call *call)
{
	const char *answer = ask(call->s, "listeners");
	char *copy = strdup(answer ? answer : ""), *save = NULL, *line, err[512];
	struct evbuffer *b = evbuffer_new();
	bool first = true;

	evbuffer_add_printf(b, "{\"appliance\":");
	json_string(b, call->s->appliance);
	evbuffer_add_printf(b, ",\"listeners\":[");
	line = copy ? strtok_r(copy, "\n", &save) : NULL;
	if (line && strcmp(line, "ok") == 0) {
		while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
			char addr[64], role[16], extra[16] = "";
			unsigned port;

			if (sscanf(line, "%63s %u %15s %15s", addr, &port, role, extra) < 3)
				continue;
			evbuffer_add_printf(b, "%s{\"address\":", first ? "" : ",");
			json_string(b, addr);
			evbuffer_add_printf(b, ",\"port\":%u,\"role\":", port);
			json_string(b, role);
			evbuffer_add_printf(b, ",\"transparent\":%s}", strcmp(extra, "transparent") == 0 ? "true" : "false");
			first = false;
		}
	}
	free(copy);
	evbuffer_add_printf(b, "],");
	if (!http_db_configured(call->s->db) || http_db_appliances(call->s->db, b, err, sizeof(err)) == -1)
		evbuffer_add_printf(b, "\"appliances\":[]");
	evbuffer_add_printf(b, "}\n");
	reply_json(call, 200, "OK", b);
	evbuffer_free(b);
}

/* ---- static files ---- */

static const struct {
	const char	*ext, *type;
} content_types[] = {
	{ ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json" }, { ".svg", "image/svg+xml" }, { ".png", "image/png" },
	{ ".ico", "image/x-icon" }, { ".woff2", "font/woff2" }, { ".map", "application/json" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static void
serve_file(struct http_call *call, const char *path)
{
	struct http_server *s = call->s;
	char want[PATH_MAX], real[PATH_MAX];
	const char *type = NULL, *dot;
	struct evbuffer *b;
	struct stat st;
	size_t n = strlen(path);
	int fd;

	/* Only plain names: no "..", no hidden files, no backslashes or control bytes. */
	if (s->dashboard_dir[0] == '\0' || n == 0 || n > HTTP_PATH_MAX || path[0] != '/' || strstr(path, "/.") ||
	    strchr(path, '\\') || strspn(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") != n) {
		reply_error(call, 404, "Not Found", "not found");
		return;
	}
	if (strlen(s->dashboard_dir) + n + sizeof("index.html") > sizeof(want) ||
	    snprintf(want, sizeof(want), "%.*s%s%s", (int)(sizeof(want) - HTTP_PATH_MAX - sizeof("index.html")),
	    s->dashboard_dir, path, path[n - 1] == '/' ? "index.html" : "") < 0 || realpath(want, real) == NULL || strncmp(real, s->dashboard_dir, strlen(s->dashboard_dir)) != 0 ||
	    real[strlen(s->dashboard_dir)] != '/') {
		reply_error(call, 404, "Not Found", "not found");
		return;
	}
	dot = strrchr(real, '.');
	for (size_t i = 0; dot && i < sizeof(content_types) / sizeof(content_types[0]); i++)
		if (strcmp(dot, content_types[i].ext) == 0)
			type = content_types[i].type;
	if (type == NULL || (fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		reply_error(call, 404, "Not Found", "not found");
		return;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size > HTTP_FILE_MAX) {
		close(fd);
		reply_error(call, 404, "Not Found", "not found");
		return;
	}
	b = evbuffer_new();
	if (st.st_size == 0)
		close(fd);
	else if (evbuffer_add_file(b, fd, 0, st.st_size) == -1)	/* takes fd */
		close(fd);
	reply(call, 200, "OK", type, b);
	evbuffer_free(b);
}

/* ---- every request ---- */

static void
conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct http_server *s = arg;

	for (size_t i = 0; i < s->nconns; i++)
		if (s->conns[i] == evcon) {
			s->conns[i] = s->conns[--s->nconns];
			return;
		}
}

/* conn_admit - count the request's connection; false when it would go beyond http_max_connections. */
static bool
conn_admit(struct http_server *s, struct evhttp_connection *evcon)
{
	for (size_t i = 0; i < s->nconns; i++)
		if (s->conns[i] == evcon)
			return true;
	if (s->nconns >= s->max_conns)
		return false;
	s->conns[s->nconns++] = evcon;
	evhttp_connection_set_closecb(evcon, conn_closed_cb, s);
	return true;
}

/*
 * same_origin - the request's Origin (or else Referer) names the site it
 * was sent to: scheme, Host header. Absent both is fine (curl, Prometheus);
 * a browser sends Origin on every cross-site POST.
 */
static bool
same_origin(struct http_call *call)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(call->req);
	const char *origin = evhttp_find_header(h, "Origin"), *referer = evhttp_find_header(h, "Referer");
	const char *host = evhttp_find_header(h, "Host");
	char want[300];
	size_t n;

	if (origin == NULL && referer == NULL)
		return true;
	if (host == NULL || strlen(host) > 255)
		return false;
	n = (size_t)snprintf(want, sizeof(want), "%s://%s", call->s->tls ? "https" : "http", host);
	if (origin)
		return strcasecmp(origin, want) == 0;
	return strncasecmp(referer, want, n) == 0 && (referer[n] == '/' || referer[n] == '\0');
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct http_server *s = arg;
	struct http_call call = { .s = s, .req = req, .auth_kind = "none" };
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	char *peer = NULL, *path = NULL;
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL, *q = uri ? evhttp_uri_get_query(uri) : NULL;
	ev_uint16_t port = 0;
	enum http_auth_result ar;

	TAILQ_INIT(&call.query);
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &port);
	if (!conn_admit(s, evhttp_request_get_connection(req))) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		reply_error(&call, 503, "Service Unavailable", "too many connections");
		return;
	}
	if (raw == NULL || strlen(raw) > HTTP_PATH_MAX || (path = evhttp_uridecode(raw, 0, NULL)) == NULL) {
		reply_error(&call, 400, "Bad Request", "bad path");
		return;
	}
	if (q && (strlen(q) > HTTP_PATH_MAX || evhttp_parse_query_str(q, &call.query) == -1)) {
		free(path);
		reply_error(&call, 400, "Bad Request", "bad query");
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		struct evbuffer *b = evbuffer_new();

		evbuffer_add_printf(b, "ok\n");
		reply(&call, 200, "OK", "text/plain; charset=utf-8", b);
		evbuffer_free(b);
		goto done;
	}
	ar = http_auth_check(s->auth, evhttp_find_header(in, "Authorization"), peer ? peer : "?", call.user,
	    sizeof(call.user), &call.auth_kind);
	if (ar == AUTH_LIMITED) {
		log_warn("too many failed logins from %s: refused for %d s", peer ? peer : "?", AUTH_FAIL_WINDOW_S);
		reply_error(&call, 429, "Too Many Requests", "too many failed logins");
		goto done;
	}
	if (ar == AUTH_NEEDED) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Basic realm=\"mxtier\", charset=\"UTF-8\"");
		reply_error(&call, 401, "Unauthorized", "authentication required");
		goto done;
	}
	if ((method == EVHTTP_REQ_POST || strncmp(path, "/api/", 5) == 0) && !same_origin(&call)) {
		log_warn("refused a cross-site %s %s from %s (user %s)", method == EVHTTP_REQ_POST ? "POST" : "request", path,
		    peer ? peer : "?", call.user);
		reply_error(&call, 403, "Forbidden", "cross-site request refused");
		goto done;
	}
	if (method == EVHTTP_REQ_POST) {
		if (!http_auth_csrf_ok(s->auth, call.user, evhttp_find_header(in, "X-CSRF-Token"))) {
			log_warn("refused a POST %s without a valid CSRF token from %s (user %s)", path, peer ? peer : "?", call.user);
			reply_error(&call, 403, "Forbidden", "csrf token missing or wrong");
		} else if (strcmp(path, "/api/listings") == 0) {
			api_listings_post(&call);
		} else {
			reply_error(&call, 405, "Method Not Allowed", "POST only to /api/listings");
		}
		goto done;
	}
	if (strcmp(path, "/metrics") == 0)
		api_metrics(&call);
	else if (strcmp(path, "/api/session") == 0)
		api_session(&call);
	else if (strcmp(path, "/api/live") == 0)
		api_live(&call);
	else if (strcmp(path, "/api/history") == 0)
		api_history(&call);
	else if (strcmp(path, "/api/sender") == 0)
		api_sender(&call);
	else if (strcmp(path, "/api/listings") == 0)
		api_listings_get(&call);
	else if (strcmp(path, "/api/tiers") == 0)
		api_tiers(&call);
	else if (strncmp(path, "/api/", 5) == 0)
		reply_error(&call, 404, "Not Found", "no such endpoint");
	else
		serve_file(&call, path);
done:
	evhttp_clear_headers(&call.query);
	free(path);
}

/* ---- the server ---- */

static struct bufferevent *
tls_bev_cb(struct event_base *base, void *arg)
{
	struct http_server *s = arg;
	SSL *ssl = SSL_new(s->ssl);

	return ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
}

static SSL_CTX *
tls_context(const struct config *c, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, c->http_tls_cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, c->http_tls_key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "http_tls_cert_file %s / http_tls_key_file %s: %s", c->http_tls_cert_file,
		    c->http_tls_key_file, ERR_reason_error_string(ERR_get_error()) ?
		    ERR_reason_error_string(ERR_get_error()) : "cannot be loaded");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	return ctx;
}

struct http_server *
http_server_new(struct event_base *base, const struct config *c, http_ask_fn ask_fn, void *arg, char *err,
    size_t errlen)
{
	struct http_server *s = calloc(1, sizeof(*s));
	char addr[NETADDR_STRLEN];

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->base = base;
	s->ask = ask_fn;
	s->ask_arg = arg;
	s->started = time(NULL);
	snprintf(s->appliance, sizeof(s->appliance), "%s", c->appliance_name);
	s->max_conns = (size_t)c->http_max_connections;
	if (s->max_conns > HTTP_CONNS_TABLE)
		s->max_conns = HTTP_CONNS_TABLE;
	if ((s->conns = calloc(s->max_conns, sizeof(*s->conns))) == NULL ||
	    (s->auth = http_auth_new(c, err, errlen)) == NULL || (s->db = http_db_new(c->dashboard_database)) == NULL)
		goto fail;
	if (c->dashboard_dir[0] && realpath(c->dashboard_dir, s->dashboard_dir) == NULL) {
		log_warn("dashboard_dir %s: %s (the API works, the pages do not)", c->dashboard_dir, strerror(errno));
		s->dashboard_dir[0] = '\0';
	}
	if (c->http_tls_cert_file[0]) {
		if ((s->ssl = tls_context(c, err, errlen)) == NULL)
			goto fail;
		s->tls = true;
	}
	if ((s->eh = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	evhttp_set_max_headers_size(s->eh, HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(s->eh, HTTP_BODY_MAX);
	evhttp_set_timeout(s->eh, HTTP_TIMEOUT_S);
	evhttp_set_allowed_methods(s->eh, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_gencb(s->eh, request_cb, s);
	if (s->ssl)
		evhttp_set_bevcb(s->eh, tls_bev_cb, s);
	netaddr_format(&c->http_addr, addr, sizeof(addr));
	if (evhttp_bind_socket_with_handle(s->eh, addr, c->http_port) == NULL) {
		snprintf(err, errlen, "http_listen %s: cannot listen: %s", c->http_listen, strerror(errno));
		goto fail;
	}
	log_info("dashboard on %s://%s (%s%s)", s->tls ? "https" : "http", c->http_listen,
	    http_auth_required(s->auth) ? "authentication required" : "loopback, no authentication",
	    http_db_configured(s->db) ? ", history from dashboard_database" : ", no history database");
	return s;
fail:
	http_server_free(s);
	return NULL;
}

void
http_server_free(struct http_server *s)
{
	if (s == NULL)
		return;
	if (s->eh)
		evhttp_free(s->eh);
	if (s->ssl)
		SSL_CTX_free(s->ssl);
	http_auth_free(s->auth);
	http_db_free(s->db);
	free(s->conns);
	free(s);
}
