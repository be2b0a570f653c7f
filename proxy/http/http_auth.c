/*
 * http_auth.c - who may use the dashboard. A loopback listener without
 * files is open (the appliance's own operator); otherwise every request
 * carries Basic credentials checked with crypt(3) against
 * http_password_file (yescrypt "$y$..." or any hash libcrypt knows) or a
 * Bearer token from http_token_file. Failed logins are counted per client
 * address in a bounded table; an address with too many in the window is
 * refused outright (429) until the window passes. The CSRF token is an
 * HMAC of the user under a key made at start, so it needs no state and
 * dies with the process.
 */
#include "http_internal.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUTH_ENTRIES_MAX	256	/* lines of a password or token file */
#define AUTH_SECRET_MAX		256	/* a hash or a token */
#define AUTH_HEADER_MAX		1024
#define AUTH_CACHE_SIZE		64	/* Basic credentials recently verified */
#define AUTH_CACHE_TTL_S	60

struct auth_entry {
	char	user[HTTP_USER_MAX + 1];
	char	secret[AUTH_SECRET_MAX + 1];	/* crypt hash or token */
};

struct auth_fail {
	char	peer[64];
	time_t	window_start;
	time_t	last;
	int	count;
};

/*
 * A verified Authorization header, kept as its HMAC under the CSRF key:
 * a browser sends the same header with every request, and a yescrypt
 * hash costs tens of milliseconds and megabytes each time.
 */
struct auth_cached {
	unsigned char	mac[32];
	char		user[HTTP_USER_MAX + 1];
	time_t		until;
};

struct http_auth {
	bool			 required;
	struct auth_entry	 passwords[AUTH_ENTRIES_MAX];
	size_t			 npasswords;
	struct auth_entry	 tokens[AUTH_ENTRIES_MAX];
	size_t			 ntokens;
	unsigned char		 csrf_key[32];
	struct auth_fail	 fails[AUTH_FAILS_TABLE];
	struct auth_cached	 cache[AUTH_CACHE_SIZE];
	unsigned		 cache_next;
	struct crypt_data	 crypt;		/* crypt_r's state: large, so here and not on the stack */
};

static void
header_mac(const struct http_auth *a, const char *header, unsigned char mac[32])
{
	unsigned int len = 32;

	HMAC(EVP_sha256(), a->csrf_key, sizeof(a->csrf_key), (const unsigned char *)header, strlen(header), mac, &len);
}

/* cache_find - the user of a header verified within AUTH_CACHE_TTL_S, or NULL. */
static const char *
cache_find(const struct http_auth *a, const unsigned char mac[32], time_t now)
{
	for (size_t i = 0; i < AUTH_CACHE_SIZE; i++)
		if (a->cache[i].until > now && CRYPTO_memcmp(a->cache[i].mac, mac, 32) == 0)
			return a->cache[i].user;
	return NULL;
}

static void
cache_add(struct http_auth *a, const unsigned char mac[32], const char *user, time_t now)
{
	struct auth_cached *e = &a->cache[a->cache_next++ % AUTH_CACHE_SIZE];

	memcpy(e->mac, mac, 32);
	snprintf(e->user, sizeof(e->user), "%s", user);
	e->until = now + AUTH_CACHE_TTL_S;
}

/* auth_file_read - "user:secret" lines; '#' comments and blank lines skipped. */
static int
auth_file_read(const char *path, const char *key, struct auth_entry *e, size_t *n, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[HTTP_USER_MAX + AUTH_SECRET_MAX + 8];
	unsigned lineno = 0;

	*n = 0;
	if (f == NULL) {
		snprintf(err, errlen, "%s %s: %s", key, path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);
		char *colon;

		lineno++;
		if (len > 0 && line[len - 1] != '\n' && !feof(f)) {
			snprintf(err, errlen, "%s %s:%u: line too long", key, path, lineno);
			fclose(f);
			return -1;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		colon = strchr(line, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "%s %s:%u: expected NAME:SECRET", key, path, lineno);
			fclose(f);
			return -1;
		}
		*colon = '\0';
		if (!http_user_valid(line) || strlen(colon + 1) == 0 || strlen(colon + 1) > AUTH_SECRET_MAX) {
			snprintf(err, errlen, "%s %s:%u: bad name or empty secret", key, path, lineno);
			fclose(f);
			return -1;
		}
		if (*n == AUTH_ENTRIES_MAX) {
			snprintf(err, errlen, "%s %s: more than %d entries", key, path, AUTH_ENTRIES_MAX);
			fclose(f);
			return -1;
		}
		snprintf(e[*n].user, sizeof(e[*n].user), "%s", line);
		snprintf(e[*n].secret, sizeof(e[*n].secret), "%s", colon + 1);
		(*n)++;
	}
	fclose(f);
	explicit_bzero(line, sizeof(line));
	if (*n == 0) {
		snprintf(err, errlen, "%s %s: no entries", key, path);
		return -1;
	}
	return 0;
}

struct http_auth *
http_auth_new(const struct config *c, char *err, size_t errlen)
{
	struct http_auth *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (RAND_bytes(a->csrf_key, sizeof(a->csrf_key)) != 1) {
		snprintf(err, errlen, "no random bytes for the CSRF key");
		free(a);
		return NULL;
	}
	if ((c->http_password_file[0] && auth_file_read(c->http_password_file, "http_password_file", a->passwords,
	    &a->npasswords, err, errlen) == -1) ||
	    (c->http_token_file[0] && auth_file_read(c->http_token_file, "http_token_file", a->tokens, &a->ntokens, err,
	    errlen) == -1)) {
		http_auth_free(a);
		return NULL;
	}
	a->required = config_http_auth(c);
	return a;
}

void
http_auth_free(struct http_auth *a)
{
	if (a == NULL)
		return;
	explicit_bzero(a, sizeof(*a));
	free(a);
}

bool
http_auth_required(const struct http_auth *a)
{
	return a->required;
}

/* fail_slot - the table entry for peer, or the least recently used one (evicted) when it has none. */
static struct auth_fail *
fail_slot(struct http_auth *a, const char *peer, bool create)
{
	struct auth_fail *oldest = &a->fails[0];

	for (size_t i = 0; i < AUTH_FAILS_TABLE; i++) {
		if (a->fails[i].peer[0] && strcmp(a->fails[i].peer, peer) == 0)
			return &a->fails[i];
		if (a->fails[i].last < oldest->last)
			oldest = &a->fails[i];
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->peer, sizeof(oldest->peer), "%s", peer);
	return oldest;
}

static bool
fail_limited(struct http_auth *a, const char *peer, time_t now)
{
	struct auth_fail *f = fail_slot(a, peer, false);

	if (f == NULL || now - f->window_start >= AUTH_FAIL_WINDOW_S)
		return false;
	return f->count >= AUTH_FAILS_MAX;
}

static void
fail_count(struct http_auth *a, const char *peer, time_t now)
{
	struct auth_fail *f = fail_slot(a, peer, true);

	if (f->count == 0 || now - f->window_start >= AUTH_FAIL_WINDOW_S) {
		f->window_start = now;
		f->count = 0;
	}
	f->count++;
	f->last = now;
}

/* check_basic - "user:password" (decoded) against the password file; constant work whether the user exists. */
static bool
check_basic(struct http_auth *a, const char *b64, char *user, size_t user_cap)
{
	unsigned char decoded[AUTH_HEADER_MAX];
	size_t len = strlen(b64);
	const struct auth_entry *e = NULL;
	const char *hash, *got;
	char *colon;
	int n;
	bool ok;

	if (len == 0 || len > (sizeof(decoded) - 1) / 3 * 4 || len % 4 != 0)
		return false;
	if ((n = EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)len)) < 0)
		return false;
	while (n > 0 && len > 0 && b64[len - 1] == '=') {	/* DecodeBlock counts the padding as bytes */
		n--;
		len--;
	}
	decoded[n] = '\0';
	if (memchr(decoded, '\0', (size_t)n) || (colon = strchr((char *)decoded, ':')) == NULL)
		return false;
	*colon = '\0';
	for (size_t i = 0; i < a->npasswords; i++)
		if (strcmp(a->passwords[i].user, (char *)decoded) == 0)
			e = &a->passwords[i];
	/* An unknown user costs one hash too, with a fixed yescrypt setting, so timing tells no names. */
	hash = e ? e->secret : "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$6foLM1JhGupouWKMU70wxK61Kw9ZnecbACjJwRadqM2";
	got = crypt_r(colon + 1, hash, &a->crypt);
	ok = e && got && got[0] != '*' && strlen(got) == strlen(hash) && CRYPTO_memcmp(got, hash, strlen(hash)) == 0;
	if (ok)
		snprintf(user, user_cap, "%s", e->user);
	explicit_bzero(decoded, sizeof(decoded));
	return ok;
}

static bool
check_bearer(const struct http_auth *a, const char *token, char *user, size_t user_cap)
{
	size_t len = strlen(token);
	bool ok = false;

	for (size_t i = 0; i < a->ntokens; i++) {
		const struct auth_entry *e = &a->tokens[i];

		if (strlen(e->secret) == len && CRYPTO_memcmp(e->secret, token, len) == 0 && !ok) {
			snprintf(user, user_cap, "%s", e->user);
			ok = true;
		}
	}
	return ok;
}

enum http_auth_result
http_auth_check(struct http_auth *a, const char *authorization, const char *peer, char *user, size_t user_cap,
    const char **kind)
{
	time_t now = time(NULL);
	bool ok = false;

	if (!a->required) {
		snprintf(user, user_cap, "local");
		*kind = "none";
		return AUTH_OK;
	}
	if (fail_limited(a, peer, now))
		return AUTH_LIMITED;
	if (authorization == NULL || strlen(authorization) > AUTH_HEADER_MAX)
		return AUTH_NEEDED;	/* the browser's first request: no failure counted */
	if (strncasecmp(authorization, "Basic ", 6) == 0 && a->npasswords > 0) {
		unsigned char mac[32];
		const char *known;

		*kind = "basic";
		header_mac(a, authorization, mac);
		if ((known = cache_find(a, mac, now)) != NULL) {
			snprintf(user, user_cap, "%s", known);
			return AUTH_OK;
		}
		if ((ok = check_basic(a, authorization + 6, user, user_cap)))
			cache_add(a, mac, user, now);
	} else if (strncasecmp(authorization, "Bearer ", 7) == 0 && a->ntokens > 0) {
		ok = check_bearer(a, authorization + 7, user, user_cap);
		*kind = "bearer";
	}
	if (ok)
		return AUTH_OK;
	fail_count(a, peer, now);
	return fail_limited(a, peer, now) ? AUTH_LIMITED : AUTH_NEEDED;
}

void
http_auth_csrf(const struct http_auth *a, const char *user, char out[HTTP_CSRF_HEX + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	HMAC(EVP_sha256(), a->csrf_key, sizeof(a->csrf_key), (const unsigned char *)user, strlen(user), mac, &len);
	for (int i = 0; i < HTTP_CSRF_HEX / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	out[HTTP_CSRF_HEX] = '\0';
}

bool
http_auth_csrf_ok(const struct http_auth *a, const char *user, const char *token)
{
	char want[HTTP_CSRF_HEX + 1];

	if (token == NULL || strlen(token) != HTTP_CSRF_HEX)
		return false;
	http_auth_csrf(a, user, want);
	return CRYPTO_memcmp(want, token, HTTP_CSRF_HEX) == 0;
}
