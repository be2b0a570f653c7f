#ifndef MXTIER_RELAY_INTERNAL_H
#define MXTIER_RELAY_INTERNAL_H

/*
 * relay_internal.h - the backend leg's state, shared by relay.c (one
 * connection's protocol) and relay_pool.c (connections kept between
 * sessions). Nothing else sees it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "daemon.h"
#include "outq.h"
#include "relay.h"

enum relay_state {
	RELAY_CONNECTING = 0,
	RELAY_GREETING,		/* waiting for the backend's 220 */
	RELAY_EHLO,
	RELAY_STARTTLS,		/* STARTTLS sent (backend_tls): waiting for its 220 */
	RELAY_TLS_HANDSHAKE,	/* the TLS bufferevent has the socket */
	RELAY_EHLO_TLS,		/* EHLO again inside TLS */
	RELAY_XCLIENT,		/* XCLIENT sent: a new 220 follows */
	RELAY_EHLO_AGAIN,	/* EHLO after XCLIENT */
	RELAY_IDLE,		/* ready, nothing outstanding */
	RELAY_COMMAND,		/* one command outstanding */
	RELAY_STREAMING,	/* message data flowing: no reply expected */
	RELAY_QUITTING,		/* detached from its session */
	RELAY_POOLED,		/* detached, at rest in the pool for the next session */
	RELAY_RESET,		/* taken from the pool: RSET sent, its 250 awaited */
	RELAY_STATE_COUNT
};

#define RELAY_TLS_DESC_MAX	96

struct relay {
	struct relay_owner	 owner;		/* the session it speaks for */
	bool			 attached;	/* false once detached (relay_quit, relay_pool_park) */
	struct bufferevent	*bev;
	struct event		*timer;
	enum relay_state	 state;
	bool			 tls;		/* the backend leg is TLS */
	char			 tls_desc[RELAY_TLS_DESC_MAX];	/* what the owner was told of it */
	bool			 command_is_data;
	bool			 awaiting_data_end;	/* the outstanding reply is end-of-data's */
	int64_t			 sent_us;	/* when the outstanding command went: the reply time histogram */
	const char		*broken;	/* why it is dropped on the next loop pass (relay_break_soon) */
	struct smtp_reply	 reply;
	char			 first_command[SMTP_COMMAND_LINE_MAX + 64];
	size_t			 first_command_len;
	struct backend_caps	 caps;
	struct outq		 out;		/* commands and data leave once per loop pass */
	/* Reuse (relay_pool.c). */
	unsigned		 sessions;	/* sessions this connection has served */
	bool			 reusing;	/* taken from the pool, its handshake not yet done */
	bool			 pooled;	/* on the pool's list */
	TAILQ_ENTRY(relay)	 pool_entry;
};

/*
 * relay_pool_park - keep a relay at rest for the next session, if it may
 * be reused (see relay_pool.c); false: the caller closes it.
 */
bool		 relay_pool_park(struct relay *r);
/* relay_pool_take - a parked relay made under config c, off the pool; NULL if none. */
struct relay	*relay_pool_take(const struct config *c);
/* relay_pool_unlink - r leaves the pool (it is being freed). */
void		 relay_pool_unlink(struct relay *r);

#endif
