#ifndef MXTIER_RELAY_H
#define MXTIER_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "netaddr.h"
#include "reply_parser.h"
#include "smtp_parse.h"

struct evbuffer;
struct relay;

/* Backend leg bounds: stop reading the client while the backend output is above the high mark. */
#define RELAY_OUTPUT_HIGH	(256 * 1024)
#define RELAY_OUTPUT_LOW	(64 * 1024)

/*
 * relay_owner - what the relay knows of the session it speaks for, copied
 * at relay_start (the relay reads and writes nothing of the session), and
 * how it answers. The callbacks are made from the relay's own callbacks;
 * the relay returns at once after them, so the owner may free it there.
 */
struct relay_owner {
	uint64_t		 session_id;	/* for the log */
	struct config		*config;	/* the relay holds a reference */
	struct netaddr		 client, server;
	uint16_t		 client_port, server_port;
	char			 helo[SMTP_DOMAIN_MAX + 1];
	bool			 esmtp;
	const char		*tls_version, *tls_cipher;	/* the client leg's ("" without TLS; static strings) */
	void	(*reply)(void *arg, const struct smtp_reply *reply);	/* the reply to the pending command */
	void	(*failed)(void *arg, const char *why);			/* the leg is gone: the owner frees the relay */
	void	(*drained)(void *arg);					/* message data may flow again */
	void	(*tls_info)(void *arg, const char *info);		/* the backend leg's TLS, or "failed" */
	void	*arg;
};

/*
 * relay_start - connect to the backend for its owner, announce the client,
 * EHLO, then send first_command (a full line with CRLF). The reply to it,
 * or a failure, comes back through the owner's reply or failed callback.
 */
struct relay	*relay_start(const struct relay_owner *owner, const char *first_command, size_t len);
void		 relay_free(struct relay *r);
/* relay_broken - why the connection goes on the next loop pass, or NULL. */
const char	*relay_broken(const struct relay *r);

/* relay_command - send one command line; exactly one reply is expected. */
void		 relay_command(struct relay *r, const char *line, size_t len);
/* relay_data_move - stream len bytes of message data from src (DATA accepted by the backend). */
void		 relay_data_move(struct relay *r, struct evbuffer *src, size_t len);
/* relay_data_end - the end-of-data line was streamed: wait for the final reply. */
void		 relay_data_end(struct relay *r);
/* relay_output_full - the backend leg is above its high mark. */
bool		 relay_output_full(const struct relay *r);
/* relay_quit - polite QUIT then close, detached from the session. */
void		 relay_quit(struct relay *r);
/* relay_release - the session is done with r: into the pool for the next session (relay_pool.c), or relay_quit. */
void		 relay_release(struct relay *r);
/* relay_pool_flush - close every pooled connection (the health probe failed, or shutting down). */
void		 relay_pool_flush(const char *why);
/* relay_pool_count - connections at rest in the pool. */
size_t		 relay_pool_count(void);

#endif
