#ifndef MXTIER_HTTP_INTERNAL_H
#define MXTIER_HTTP_INTERNAL_H

/*
 * What the HTTP process's files share, and nothing else includes:
 *   http_server.c   evhttp, TLS, routing, static files, the API handlers
 *   http_auth.c     passwords, tokens, failed-login limits, CSRF tokens
 *   http_metrics.c  the status lines as /metrics and /api/live
 *   http_db.c       history, sender, appliances from dashboard_database
 *   http_json.c     JSON out (escaping) and in (one flat object)
 *   http_request.c  the request lines to the privileged side
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define HTTP_BODY_MAX		4096
#define HTTP_HEADERS_MAX	8192
#define HTTP_TIMEOUT_S		10
#define HTTP_FILE_MAX		(4 * 1024 * 1024)
#define HTTP_CSRF_HEX		32

struct evbuffer;

/* ---- http_json.c ---- */
/* json_string - s as a JSON string literal (quotes included); bytes beyond ASCII passed only if valid UTF-8. */
void	json_string(struct evbuffer *out, const char *s);
void	json_string_n(struct evbuffer *out, const char *s, size_t n);
/*
 * json_object_get - the string (or number, as text) value of key in a flat
 * JSON object; 1 found, 0 absent, -1 not such an object. Values longer
 * than cap - 1 are -1.
 */
int	json_object_get(const char *body, size_t len, const char *key, char *value, size_t cap);

/* ---- http_auth.c ---- */
enum http_auth_result {
	AUTH_OK = 0,
	AUTH_NEEDED,		/* 401 */
	AUTH_LIMITED		/* 429: too many failures from this address */
};

#define AUTH_FAILS_TABLE	1024	/* client addresses tracked for failed logins */
#define AUTH_FAILS_MAX		5	/* failures within the window that lock an address out */
#define AUTH_FAIL_WINDOW_S	60

struct http_auth;
/* http_auth_new - read the files named in c (as root, before the drop); NULL with err set. */
struct http_auth	*http_auth_new(const struct config *c, char *err, size_t errlen);
void			 http_auth_free(struct http_auth *a);
/* http_auth_required - false only for loopback without password and token files. */
bool			 http_auth_required(const struct http_auth *a);
/* http_auth_check - the Authorization header (or NULL) of a request from peer; *user, *kind on success. */
enum http_auth_result	 http_auth_check(struct http_auth *a, const char *authorization, const char *peer,
			    char *user, size_t user_cap, const char **kind);
/* http_auth_csrf - the CSRF token of user (hex, HTTP_CSRF_HEX + 1 bytes). */
void			 http_auth_csrf(const struct http_auth *a, const char *user, char out[HTTP_CSRF_HEX + 1]);
bool			 http_auth_csrf_ok(const struct http_auth *a, const char *user, const char *token);

/* ---- http_metrics.c ---- */
#define STATUS_LINES_MAX	512

struct status_line {
	const char	*name;
	const char	*value;
};

struct status {
	char			*text;		/* owned: the answer, cut into lines */
	size_t			 n;
	struct status_line	 lines[STATUS_LINES_MAX];
};

/* status_parse - "ok" then "name value" lines; -1 if the answer is not an ok. */
int		 status_parse(struct status *st, const char *answer);
void		 status_clear(struct status *st);
const char	*status_get(const struct status *st, const char *name);
uint64_t	 status_num(const struct status *st, const char *name);
void		 metrics_write(struct evbuffer *out, const struct status *st);
void		 live_write(struct evbuffer *out, const struct status *st, double uptime_s);

/* ---- http_db.c ---- */
struct http_db;
struct http_db	*http_db_new(const char *conninfo);
void		 http_db_free(struct http_db *db);
bool		 http_db_configured(const struct http_db *db);
/* Each writes a JSON object, or returns -1 with err set (the database is unreachable or the query failed). */
int		 http_db_history(struct http_db *db, const char *range, struct evbuffer *out, char *err, size_t errlen);
int		 http_db_sender(struct http_db *db, const char *q, bool is_address, struct evbuffer *out, char *advice,
		    size_t advice_cap, char *err, size_t errlen);
int		 http_db_appliances(struct http_db *db, struct evbuffer *out, char *err, size_t errlen);
int		 http_db_listings(struct http_db *db, struct evbuffer *out, char *err, size_t errlen);

#endif
