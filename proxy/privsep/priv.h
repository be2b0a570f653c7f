#ifndef MXTIER_PRIV_H
#define MXTIER_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "netaddr.h"

/*
 * Privilege separation. Started as root with a non-empty `user`, mxtierd
 * forks: the privileged parent ("mxtierd [priv]") keeps root for the
 * netlink set writer, the database connections and the sockets that need
 * privilege; the engine child drops to `user` with no capabilities before
 * it reads a byte from the internet. They talk over a socketpair in
 * bounded, typed messages; the parent checks every message it gets.
 *
 * Without the split (not root, or `user =`) both ends of the same channel
 * live in one process on one event loop, so the message path is the same.
 */

enum priv_role {
	PRIV_ROLE_SINGLE = 0,	/* one process: no split */
	PRIV_ROLE_ENGINE,	/* the unprivileged SMTP engine */
	PRIV_ROLE_PARENT	/* the privileged parent */
};

enum priv_msg_type {
	PRIV_MSG_NONE = 0,
	/* engine -> privileged */
	PRIV_MSG_KERNEL_LISTING,	/* struct priv_kernel_listing */
	PRIV_MSG_DB_SESSION,		/* a session row: db_row_encode (db/db_rows.h) */
	PRIV_MSG_DB_CONTACT,		/* contact news: db_row_encode */
	PRIV_MSG_DB_HEARTBEAT,		/* struct priv_db_heartbeat */
	PRIV_MSG_DB_LOOKUP,		/* uint32 id + 1..3 key strings */
	PRIV_MSG_RELOAD,		/* empty: the engine got a SIGHUP itself */
	PRIV_MSG_CONTROL_REPLY,		/* uint32 id + the answer text (to PRIV_MSG_CONTROL) */
	/* privileged -> engine */
	PRIV_MSG_DB_ROW,		/* struct priv_db_row */
	PRIV_MSG_DB_DONE,		/* uint32 id */
	PRIV_MSG_DB_STATUS,		/* struct priv_db_status */
	PRIV_MSG_DB_LISTINGS,		/* blob: struct priv_listing[] */
	PRIV_MSG_DB_REPUTATION,		/* blob: struct priv_reputation[] */
	PRIV_MSG_CONFIG,		/* blob: the config text, database redacted */
	PRIV_MSG_RELOAD_REFUSED,	/* text: why the privileged side kept the running config */
	PRIV_MSG_PARENT_STATS,		/* struct priv_parent_stats */
	PRIV_MSG_CONTROL,		/* uint32 id + a control request line (the HTTP process's, checked) */
	/* socket requests: engine -> privileged and the answer, on their own socketpair */
	PRIV_MSG_FD_LISTENER,		/* struct priv_fd_request */
	PRIV_MSG_FD_TRANSPARENT,	/* struct priv_fd_request */
	PRIV_MSG_FD_REPLY,		/* struct priv_fd_reply (+ the descriptor) */
	/* either direction: small messages sent in one loop turn, as records (struct priv_hdr + payload) */
	PRIV_MSG_BUNDLE,
	PRIV_MSG_COUNT
};

#define PRIV_MSG_MAX		(64 * 1024)	/* payload bytes of one message */
#define PRIV_QUEUE_MAX		8192		/* datagrams waiting to be sent, per direction */
#define PRIV_QUEUE_BYTES_MAX	(16 * 1024 * 1024)	/* and their bytes (a bundle is up to PRIV_MSG_MAX) */
#define PRIV_DB_VALUE_MAX	1100		/* one database value (utf8_clean output fits) */
#define PRIV_DB_KEY_MAX		300
#define PRIV_REFUSAL_MAX	1024	/* the text of a refused reload */

struct priv_kernel_listing {
	struct netaddr	addr;
	uint32_t	prefix_len;
	uint32_t	block;		/* 1 block set, 0 trust set */
	int64_t		ttl_ms;		/* 0 removes */
};

struct priv_db_heartbeat {
	uint32_t	shedding;
	uint32_t	backend_down;
};

/* A db-row with this id answers no lookup: it is a block still running, sent once per connection. */
#define PRIV_DB_ROW_ACTIVE_BLOCK	0

struct priv_db_row {
	uint32_t	id;		/* the lookup's, or PRIV_DB_ROW_ACTIVE_BLOCK */
	int32_t		block_reason;	/* enum reason */
	int64_t		contact_age[TIER_COUNT];
	int64_t		pending_age, pass_left, block_left;
	char		key[PRIV_DB_KEY_MAX];
};

struct priv_db_status {
	uint32_t	enabled;
	uint32_t	connected;	/* the writer */
	uint32_t	reader_up;
	uint64_t	written, dropped, sessions_dropped, errors, reconnects;
	uint64_t	queued;
};

#define PRIV_CONTROL_LINE_MAX	512	/* a control request line */

/* The privileged side's counters, for mxtierctl status and /metrics (the engine prints them). */
struct priv_parent_stats {
	uint32_t	kernel_sets;		/* the set writer is open */
	uint32_t	http_up;		/* the HTTP process runs */
	uint64_t	set_adds, set_dels, set_batches, set_acks_ok, set_enoent, set_full, set_errors,
			set_queue_dropped, set_restores, set_reseeded;
	uint64_t	set_elements[4];	/* block4, block6, trust4, trust6 */
	uint64_t	kernel_refused;		/* listings from the engine refused */
	uint64_t	from_engine, from_engine_refused, to_engine, to_engine_dropped;
	uint64_t	http_requests, http_refused;	/* checked request lines from the HTTP side */
};

struct priv_listing {
	struct cidr	net;
	uint32_t	block;
	int64_t		ttl_ms;		/* 0 = no expiry */
};

struct priv_reputation {
	struct netaddr	addr;
	int32_t		good;
};

struct priv_fd_request {
	uint32_t	id;
	struct netaddr	addr;
	uint32_t	port;
	uint32_t	transparent;
};

struct priv_fd_reply {
	uint32_t	id;
	int32_t		error;		/* errno, 0 with a descriptor */
};

/* A received message: payload checked against its type's bounds; blobs already read. */
typedef void (*priv_handler)(const void *payload, size_t len);

const char	*priv_msg_name(enum priv_msg_type type);

/*
 * priv_start - decide whether to split (root and c->user non-empty) and do
 * it. Returns PRIV_ROLE_SINGLE or, in the child, PRIV_ROLE_ENGINE; the
 * parent runs its own loop and exits from inside. A missing user is fatal
 * with a message naming the key.
 */
enum priv_role	 priv_start(struct config *c);
void		priv_signals_ready(void);	/* handlers installed: deliver what waited */
/* priv_check_user - as root: does `user` name an unprivileged account? -1 (message on stderr) if not. */
int		 priv_check_user(const struct config *c);
enum priv_role	 priv_role(void);
/* priv_split - true in both processes of a split. */
bool		 priv_split(void);

/* priv_engine_start - the engine's end of the channel on mxd->base (also the single process's). */
int		 priv_engine_start(void);
/* priv_local_start - no split: the privileged services in this process, over an in-process socketpair. */
int		 priv_local_start(void);
void		 priv_local_reconfigure(const struct config *c);
void		 priv_local_stop(void);
/* priv_drop - the engine becomes `user`: no groups, no capabilities, no new privileges; aborts if not. */
void		 priv_drop(void);
void		 priv_engine_stop(void);

/* priv_on - the handler for a message type arriving at this process. */
void		 priv_on(enum priv_msg_type type, priv_handler fn);
/* priv_to_privileged / priv_to_engine - queue a message; -1 when dropped (counted). */
int		 priv_to_privileged(enum priv_msg_type type, const void *payload, size_t len);
int		 priv_to_engine(enum priv_msg_type type, const void *payload, size_t len);
/* priv_engine_dropped - messages the engine could not queue for the privileged side (mxtierctl status). */
uint64_t	 priv_engine_dropped(void);
/* priv_http_local - unsplit: the HTTP server runs in this process (up), one request served or refused. */
void		 priv_http_local(bool up, int requests, int refused);
/* priv_channel_counters - the privileged end's message counters (received, refused, sent, dropped). */
void		 priv_channel_counters(uint64_t out[4]);
/* priv_blob_to_engine - bulk data (listings, reputation, config) in a sealed memfd. */
int		 priv_blob_to_engine(enum priv_msg_type type, const void *data, size_t len);

/* Database values as a message: a NULL-or-string list. */
int		 priv_strings_encode(char *buf, size_t cap, int n, const char *const *values);
int		 priv_strings_decode(const char *buf, size_t len, int n, const char **values, size_t value_max);

/*
 * Sockets that need privilege, made by the parent in a split and passed
 * back (SCM_RIGHTS); made here otherwise. -1 with errno on failure.
 */
int		 priv_listener_socket(const struct netaddr *addr, uint16_t port, bool transparent);
int		 priv_transparent_socket(const struct netaddr *client);

/* priv_config_load - config_load that leaves no copy of the file's text behind. */
struct config	*priv_config_load(const char *path, char *err, size_t errlen);
/* priv_redact_database - the config text with the database value replaced (what the engine gets). */
char		*priv_redact_database(const char *text);
#define PRIV_DATABASE_REDACTED	"(held by the privileged process)"

#endif
