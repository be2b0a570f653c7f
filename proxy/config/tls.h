#ifndef MXTIER_TLS_H
#define MXTIER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * TLS for both legs (OpenSSL 3). The contexts belong to a config: they are
 * built when the config is loaded, so a bad certificate or key is a config
 * error at -t, at start and at SIGHUP (where the old config, contexts
 * included, stays). Sessions hold their config, so a reload never pulls a
 * context from under a handshake.
 */

struct bufferevent;
struct config;
typedef struct ssl_st SSL;

enum backend_tls {
	BACKEND_TLS_NONE = 0,
	BACKEND_TLS_MAY,	/* STARTTLS when the backend offers it */
	BACKEND_TLS_ENCRYPT	/* no STARTTLS or a failed handshake: 4xx to the client */
};

/* What happened with TLS since the start; printed with the other counters. */
struct tls_counters {
	uint64_t	handshakes;		/* client leg, completed */
	uint64_t	handshake_failures;	/* client leg: protocol error or peer gone */
	uint64_t	handshake_timeouts;	/* client leg: tls_handshake_timeout passed */
	uint64_t	errors;			/* client leg, after the handshake (not a plain EOF) */
	uint64_t	discarded_sessions;	/* plaintext pipelined after STARTTLS */
	uint64_t	discarded_bytes;
	uint64_t	backend_handshakes;
	uint64_t	backend_failures;	/* backend_tls: not offered (encrypt) or handshake failed */
};

extern struct tls_counters tls_counters;

/*
 * tls_config_load - build c->tls_server_ctx (when tls_cert_file is set) and
 * c->tls_client_ctx (when backend_tls is not none). On error returns -1,
 * *key names the config key at fault and err says why.
 */
int		 tls_config_load(struct config *c, const char **key, char *err, size_t errlen);
void		 tls_config_free(struct config *c);
const char	*backend_tls_name(enum backend_tls mode);

/* tls_server_new / tls_client_new - a fresh SSL for one leg, or NULL (no context or no memory). */
SSL		*tls_server_new(const struct config *c);
SSL		*tls_client_new(const struct config *c);

/*
 * tls_upgrade - replace a plain socket bufferevent with a TLS one on the
 * same socket, in socket mode (OpenSSL reads and writes the fd itself).
 * The plain bufferevent is freed in every case, its unread input with it;
 * returns NULL on failure, with ssl freed and the socket closed.
 */
struct bufferevent *tls_upgrade(struct bufferevent *plain, SSL *ssl, bool accepting);

/* tls_describe - "TLSv1.3/TLS_AES_256_GCM_SHA384" for the log line. */
void		 tls_describe(const struct bufferevent *bev, char *buf, size_t len);
/* tls_version_name / tls_cipher_name - the parts, for the PROXY v2 TLV; "" without TLS. */
const char	*tls_version_name(const struct bufferevent *bev);
const char	*tls_cipher_name(const struct bufferevent *bev);
/* tls_error_text - OpenSSL's reason for a failure on bev (or the socket error), for the log. */
void		 tls_error_text(struct bufferevent *bev, char *buf, size_t len);
/*
 * tls_kick_read - OpenSSL may hold decrypted bytes that libevent stopped
 * taking at the input's high-water mark or while reading was paused; the
 * socket may never become readable again for them (the client already sent
 * its last line). Call after reading is allowed again: it reads them now.
 */
void		 tls_kick_read(struct bufferevent *bev);
/* tls_shutdown - send close_notify before a close that we decided (bufferevent_free does not). */
void		 tls_shutdown(struct bufferevent *bev);

void		 tls_counters_log(void);

#endif
