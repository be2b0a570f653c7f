/*
 * tls.c - OpenSSL contexts for the client leg (STARTTLS offered with
 * tls_cert_file/tls_key_file) and the backend leg (backend_tls), the switch
 * of a plain bufferevent to TLS on the same socket, and what the log line
 * and the PROXY v2 TLV say about a TLS connection.
 */
#include "tls.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

struct tls_counters tls_counters;

#define TLS_CERTS_MAX 4		/* one per key type is all OpenSSL keeps (RSA, ECDSA, Ed25519, ...) */

/*
 * TLS 1.2 suites, best first with server preference: forward-secret AEAD,
 * then CBC, and plain RSA key exchange last, for old MTAs that would
 * otherwise fall back to no TLS at all (opportunistic SMTP). Never aNULL,
 * export, RC4, 3DES or MD5. TLS 1.3 keeps OpenSSL's defaults.
 */
static const char tls_cipher_list[] =
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:ECDHE+AES:DHE+AES:RSA+AESGCM:RSA+AES:"
    "!aNULL:!eNULL:!EXPORT:!RC4:!3DES:!DES:!MD5:!PSK:!SRP:!DSS:!CAMELLIA:!ARIA:!SEED:!IDEA";

static const char *const backend_tls_names[] = { "none", "may", "encrypt" };

const char *
backend_tls_name(enum backend_tls mode)
{
	return (unsigned)mode < sizeof(backend_tls_names) / sizeof(backend_tls_names[0]) ? backend_tls_names[mode] : "?";
}

/* ssl_error_string - the oldest queued OpenSSL error (the cause), queue emptied. */
static void
ssl_error_string(char *buf, size_t len)
{
	unsigned long first = ERR_get_error(), e;

	while ((e = ERR_get_error()) != 0)
		;
	if (first == 0) {
		snprintf(buf, len, "unknown OpenSSL error");
		return;
	}
	ERR_error_string_n(first, buf, len);
}

/* no_passphrase - a daemon never prompts: an encrypted key is a config error. */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return 0;
}

/* split_files - "a.pem, b.pem" into at most TLS_CERTS_MAX names (pointers into copy). */
static int
split_files(char *copy, char **names)
{
	char *save = NULL;
	int n = 0;

	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (n == TLS_CERTS_MAX)
			return -1;
		names[n++] = tok;
	}
	return n;
}

static const char *
key_type_name(int type)
{
	switch (type) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		return "RSA";
	case EVP_PKEY_EC:
		return "ECDSA";
	case EVP_PKEY_ED25519:
		return "Ed25519";
	case EVP_PKEY_ED448:
		return "Ed448";
	default:
		return "unknown";
	}
}

/* tls_ctx_common - what both legs share: TLS 1.2 minimum, no compression, no renegotiation. */
static SSL_CTX *
tls_ctx_common(const SSL_METHOD *method)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/*
	 * No renegotiation either way (OpenSSL 3 also refuses a client's unless
	 * SSL_OP_ALLOW_CLIENT_RENEGOTIATION). A peer's close without close_notify
	 * is an ordinary end for SMTP (the dialogue says when it is over).
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Idle sessions keep no 34 KiB of record buffers each. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	if (SSL_CTX_set_cipher_list(ctx, tls_cipher_list) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* tls_server_ctx_build - STARTTLS for clients: one context serving every configured key type. */
static SSL_CTX *
tls_server_ctx_build(const struct config *c, const char **key, char *err, size_t errlen)
{
	char *certs_copy = strdup(c->tls_cert_file), *keys_copy = strdup(c->tls_key_file);
	char *certs[TLS_CERTS_MAX], *keys[TLS_CERTS_MAX], why[256];
	int ncerts, nkeys, seen[TLS_CERTS_MAX];
	SSL_CTX *ctx = NULL;

	if (certs_copy == NULL || keys_copy == NULL)
		abort();
	ncerts = split_files(certs_copy, certs);
	nkeys = split_files(keys_copy, keys);
	if (ncerts == -1 || nkeys == -1) {
		*key = ncerts == -1 ? "tls_cert_file" : "tls_key_file";
		snprintf(err, errlen, "more than %d files", TLS_CERTS_MAX);
		goto fail;
	}
	if (ncerts != nkeys) {
		*key = ncerts < nkeys ? "tls_cert_file" : "tls_key_file";
		snprintf(err, errlen, "%d certificate file(s) but %d key file(s): give one key per certificate, "
		    "in the same order", ncerts, nkeys);
		goto fail;
	}
	if ((ctx = tls_ctx_common(TLS_server_method())) == NULL) {
		*key = "tls_cert_file";
		ssl_error_string(why, sizeof(why));
		snprintf(err, errlen, "cannot create a TLS context: %s", why);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"mxtier", 6);
	for (int i = 0; i < ncerts; i++) {
		X509 *x;
		int type;

		*key = "tls_cert_file";
		if (access(certs[i], R_OK) == -1) {
			snprintf(err, errlen, "cannot read %s: %s", certs[i], strerror(errno));
			goto fail;
		}
		if (SSL_CTX_use_certificate_chain_file(ctx, certs[i]) != 1) {
			ssl_error_string(why, sizeof(why));
			snprintf(err, errlen, "no certificate in %s: %s", certs[i], why);
			goto fail;
		}
		x = SSL_CTX_get0_certificate(ctx);
		type = x && X509_get0_pubkey(x) ? EVP_PKEY_get_base_id(X509_get0_pubkey(x)) : 0;
		for (int j = 0; j < i; j++) {
			if (seen[j] == type) {
				/* OpenSSL keeps one certificate per key type: the second would silently replace the first. */
				snprintf(err, errlen, "%s and %s both hold %s keys: give one certificate per key type",
				    certs[j], certs[i], key_type_name(type));
				goto fail;
			}
		}
		seen[i] = type;
		*key = "tls_key_file";
		if (access(keys[i], R_OK) == -1) {
			snprintf(err, errlen, "cannot read %s: %s", keys[i], strerror(errno));
			goto fail;
		}
		/* Checked against this certificate, not the context's current slot: a key
		 * of another type would land in (and match) the other certificate's slot. */
		if (SSL_CTX_use_PrivateKey_file(ctx, keys[i], SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_get0_privatekey(ctx) == NULL || X509_check_private_key(x, SSL_CTX_get0_privatekey(ctx)) != 1) {
			ssl_error_string(why, sizeof(why));
			snprintf(err, errlen, "%s is not the (unencrypted) key of %s: %s", keys[i], certs[i], why);
			goto fail;
		}
	}
	free(certs_copy);
	free(keys_copy);
	*key = NULL;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	free(certs_copy);
	free(keys_copy);
	ERR_clear_error();
	return NULL;
}

/* tls_client_ctx_build - the backend leg; the chain is verified only against backend_tls_ca_file. */
static SSL_CTX *
tls_client_ctx_build(const struct config *c, const char **key, char *err, size_t errlen)
{
	SSL_CTX *ctx = tls_ctx_common(TLS_client_method());
	char why[256];

	*key = "backend_tls";
	if (ctx == NULL) {
		ssl_error_string(why, sizeof(why));
		snprintf(err, errlen, "cannot create a TLS context: %s", why);
		return NULL;
	}
	if (c->backend_tls_ca_file[0] == '\0') {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	*key = "backend_tls_ca_file";
	if (access(c->backend_tls_ca_file, R_OK) == -1) {
		snprintf(err, errlen, "cannot read %s: %s", c->backend_tls_ca_file, strerror(errno));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_load_verify_locations(ctx, c->backend_tls_ca_file, NULL) != 1) {
		ssl_error_string(why, sizeof(why));
		snprintf(err, errlen, "no CA certificate in %s: %s", c->backend_tls_ca_file, why);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* The handshake fails unless the backend's chain ends at one of these CAs. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

int
tls_config_load(struct config *c, const char **key, char *err, size_t errlen)
{
	*key = NULL;
	ERR_clear_error();	/* the errors reported below are this load's, not libpq's or a session's */
	if (c->tls_cert_file[0] != '\0' || c->tls_key_file[0] != '\0') {
		c->tls_server_ctx = tls_server_ctx_build(c, key, err, errlen);
		if (c->tls_server_ctx == NULL)
			return -1;
	}
	if (c->backend_tls_ca_file[0] != '\0' && c->backend_tls == BACKEND_TLS_NONE) {
		*key = "backend_tls_ca_file";
		snprintf(err, errlen, "needs backend_tls = may or encrypt");
		return -1;
	}
	if (c->backend_tls != BACKEND_TLS_NONE) {
		c->tls_client_ctx = tls_client_ctx_build(c, key, err, errlen);
		if (c->tls_client_ctx == NULL)
			return -1;
	}
	return 0;
}

void
tls_config_free(struct config *c)
{
	SSL_CTX_free(c->tls_server_ctx);
	c->tls_server_ctx = NULL;
	SSL_CTX_free(c->tls_client_ctx);
	c->tls_client_ctx = NULL;
}

SSL *
tls_server_new(const struct config *c)
{
	return c->tls_server_ctx ? SSL_new(c->tls_server_ctx) : NULL;
}

SSL *
tls_client_new(const struct config *c)
{
	return c->tls_client_ctx ? SSL_new(c->tls_client_ctx) : NULL;
}

struct bufferevent *
tls_upgrade(struct bufferevent *plain, SSL *ssl, bool accepting)
{
	struct event_base *base = bufferevent_get_base(plain);
	evutil_socket_t fd = bufferevent_getfd(plain);
	struct bufferevent *bev;
	int tls_fd = -1;

	/*
	 * The plain bufferevent closes its socket when freed: TLS goes on on a
	 * duplicate, so nothing the plain side read or buffered can reach the
	 * TLS side, and the two never share a registration in the loop.
	 */
	int dup_errno = EBADF;

	if (fd >= 0 && (tls_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1)
		dup_errno = errno;
	bufferevent_free(plain);
	if (tls_fd == -1) {
		SSL_free(ssl);
		errno = dup_errno;	/* for the caller's log line, not bufferevent_free's */
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, tls_fd, ssl,
	    accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		/* libevent 2.1 has freed ssl already (CLOSE_ON_FREE), but not the fd: a socket BIO does not own it. */
		close(tls_fd);
		return NULL;
	}
	/* With SSL_OP_IGNORE_UNEXPECTED_EOF this makes a missing close_notify an EOF event. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

void
tls_describe(const struct bufferevent *bev, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", tls_version_name(bev), tls_cipher_name(bev));
}

const char *
tls_version_name(const struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl((struct bufferevent *)bev);

	return ssl ? SSL_get_version(ssl) : "";
}

const char *
tls_cipher_name(const struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl((struct bufferevent *)bev);
	const char *name = ssl ? SSL_get_cipher_name(ssl) : NULL;

	return name && strcmp(name, "(NONE)") != 0 ? name : "";
}

void
tls_error_text(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e, first = 0;
	int err = EVUTIL_SOCKET_ERROR();

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (first == 0)
			first = e;
	if (first != 0) {
		const char *reason = ERR_reason_error_string(first);

		if (reason)
			snprintf(buf, len, "%s", reason);
		else
			ERR_error_string_n(first, buf, len);
	} else if (err != 0 && err != EAGAIN) {
		snprintf(buf, len, "%s", evutil_socket_error_to_string(err));
	} else {
		snprintf(buf, len, "connection closed by the peer");
	}
	ERR_clear_error();
}

void
tls_kick_read(struct bufferevent *bev)
{
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;

	/* In socket mode the bufferevent's read event runs OpenSSL's reader; waking it costs nothing more. */
	if (ssl && SSL_has_pending(ssl) && (bufferevent_get_enabled(bev) & EV_READ))
		event_active(&bev->ev_read, EV_READ, 1);
}

void
tls_shutdown(struct bufferevent *bev)
{
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;

	/* One non-blocking try: close_notify is a courtesy, never worth a wait. */
	if (ssl && SSL_is_init_finished(ssl)) {
		if (SSL_shutdown(ssl) < 0)
			ERR_clear_error();
	}
}

void
tls_counters_log(void)
{
	const struct tls_counters *t = &tls_counters;

	log_info("stats tls handshakes=%llu handshake_failures=%llu handshake_timeouts=%llu errors=%llu "
	    "discarded_sessions=%llu discarded_bytes=%llu backend_handshakes=%llu backend_failures=%llu",
	    (unsigned long long)t->handshakes, (unsigned long long)t->handshake_failures,
	    (unsigned long long)t->handshake_timeouts, (unsigned long long)t->errors,
	    (unsigned long long)t->discarded_sessions, (unsigned long long)t->discarded_bytes,
	    (unsigned long long)t->backend_handshakes, (unsigned long long)t->backend_failures);
}
