#ifndef MXTIER_PRIV_INTERNAL_H
#define MXTIER_PRIV_INTERNAL_H

/*
 * What the privilege-separation files share, and nothing else includes:
 *   priv_split.c    the start: the user check, the fork (the process root started)
 *   priv_channel.c  the channel and its message table (both processes)
 *   priv_codec.c    database values as a message (both processes)
 *   priv_engine.c   the engine's side: its channel end, the drop to `user`,
 *                   socket requests to the parent
 *   priv_parent.c   the privileged side: the parent's loop, signals and
 *                   reload, the socket requests it serves, and the
 *                   privileged services (also the one process's, unsplit)
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "priv.h"

#define PRIV_READ_BURST		256	/* messages read per wakeup, so one side cannot starve the loop */
#define PRIV_BLOB_CONFIG_MAX	(1024 * 1024)

enum priv_direction {
	TO_PRIVILEGED = 0,
	TO_ENGINE,
	FD_REQUEST,
	FD_REPLY,
	EITHER			/* a bundle: its records are checked one by one */
};

struct priv_hdr {
	uint32_t	type;
	uint32_t	len;
};

/* One message waiting for room in the socket buffer; owns fd (or -1). */
struct priv_out {
	TAILQ_ENTRY(priv_out)	 entry;
	int			 fd;
	size_t			 len;
	char			 data[];
};

struct priv_channel;
typedef void (*priv_closed_fn)(struct priv_channel *ch);

/* One end of the channel: it receives the messages of direction dir. */
struct priv_channel {
	const char		*peer;		/* who is at the other end, for logs */
	enum priv_direction	 dir;
	int			 fd;
	bool			 closed;
	priv_closed_fn		 on_closed;	/* the peer closed its end: what that means is the owner's */
	struct event		*rd, *wr;
	TAILQ_HEAD(, priv_out)	 out;
	size_t			 queued, queued_bytes;
	/*
	 * Messages without a descriptor gather here during a loop turn and
	 * leave as one datagram (PRIV_MSG_BUNDLE) when it ends: under a flood
	 * a syscall and a wakeup per message on each side cost more than the
	 * messages. bundle holds the records after room for the header.
	 */
	char			*bundle;
	size_t			 bundle_len, bundle_count;
	struct event		*bundle_ev;
	uint64_t		 sent, dropped, received, refused;
	int64_t			 last_log_ms;
};

/* The state both sides of a split (and the one process) share. */
struct priv_state {
	enum priv_role		 role;
	bool			 dropped;		/* engine: runs as `user` now */
	uid_t			 uid;
	gid_t			 gid;
	char			 user[64];
	pid_t			 parent_pid;		/* engine */
	int			 channel_fd;		/* engine: its end before the loop exists */
	int			 fd_sock;		/* the socket-request socketpair end */
	struct priv_channel	*engine_end;		/* receives TO_ENGINE (engine, single) */
	struct priv_channel	*priv_end;		/* receives TO_PRIVILEGED (parent, single) */
	priv_handler		 handlers[PRIV_MSG_COUNT];
};

extern struct priv_state priv;
/* priv_signals_hold - before the fork (priv_split.c); priv_signals_ready lets them in. */
void	priv_signals_hold(void);

/* The channel (priv_channel.c). */
struct priv_channel *priv_channel_new(int fd, enum priv_direction dir, const char *peer, priv_closed_fn on_closed);
void		 priv_channel_free(struct priv_channel *ch);
/* priv_channel_receive - one datagram with at most one descriptor; 1 got one, 0 nothing now, -1 closed. */
int		 priv_channel_receive(struct priv_channel *ch);
/* priv_channel_drain - send what is queued, waiting up to wait_ms (the engine's stop). */
void		 priv_channel_drain(struct priv_channel *ch, int64_t wait_ms);
/* priv_sendmsg - one datagram now, with fd (or -1); 0 sent, 1 try later, -1 failed for good. */
int		 priv_sendmsg(int sock, const void *data, size_t len, int fd);
/* priv_recv_one - one datagram and at most one descriptor (*fd, or -1); extras are closed and flagged MSG_CTRUNC. */
ssize_t		 priv_recv_one(int sock, void *buf, size_t len, int *fd, int *flags);

/* The engine (priv_engine.c). */
/* priv_engine_begin - the child after the fork becomes the engine: its name, no conninfo, scrubbed memory. */
void		 priv_engine_begin(struct config *c, pid_t parent, int chan_fd, int fd_fd);
/* priv_drop_to_user - become `user` (priv.uid, priv.gid) with no capability, verified; fatal if not. */
void		 priv_drop_to_user(const char *who);
void		 priv_scrub_environment(void);
/* priv_shed_conninfo - a child of the parent forgets the writer's conninfo (config and environment). */
void		 priv_shed_conninfo(struct config *c);
/* priv_scrub_stack - clear the stack below the caller (the config parser's): no conninfo left in the engine. */
void		 priv_scrub_stack(void);

/* The HTTP process, forked and served by the parent (http_parent.c). */
/* http_parent_fork - before the parent's loop: the HTTP process, if http_listen is set; closes close_fds in it. */
void		 http_parent_fork(struct config *c, const int *close_fds, int nclose);
/* http_parent_start - on the parent's loop: serve the HTTP process's requests. */
void		 http_parent_start(void);
void		 http_parent_reap(void);
void		 http_parent_stop(void);
void		 http_parent_counters(struct priv_parent_stats *out);

/* The privileged parent (priv_parent.c). */
void		 priv_parent_run(struct config *c, pid_t engine, int chan_fd, int fd_fd) __attribute__((noreturn));

#endif
