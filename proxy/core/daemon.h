#ifndef MXTIER_DAEMON_H
#define MXTIER_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "stats.h"

struct event_base;
struct client_table;
struct listener_set;

/* Backend capabilities learnt from its EHLO reply (probe or relay). */
struct backend_caps {
	bool		known;
	bool		pipelining;
	bool		eightbitmime;
	bool		enhanced_codes;
	bool		xclient;
	uint64_t	size_limit;	/* 0 = none announced */
};

/* The daemon: one event loop, one of these. */
struct daemon {
	struct event_base	*base;
	struct config		*config;	/* current; sessions hold their own reference */
	struct listener_set	*listeners;
	struct client_table	*clients;
	struct stats		 stats;
	struct backend_caps	 backend_caps;
	bool			 backend_up;
	bool			 shedding;	/* load shedding at the primary */
	enum reason		 shed_reason;	/* load-shed or backend-down */
	size_t			 active_sessions;
	bool			 draining;
	uint64_t		 next_session_id;
};

extern struct daemon *mxd;

/* now_ms - monotonic milliseconds. */
int64_t	now_ms(void);

/* Health probe (health.c). */
int	health_start(void);
void	health_stop(void);
void	backend_caps_parse(struct backend_caps *caps, const char *ehlo_reply, size_t len);

/*
 * The operator's reload (main.c), as SIGHUP does it: done(arg, ok, text) is
 * called once with the outcome, perhaps before daemon_reload_request
 * returns. -1 when another one is still waiting for its outcome.
 * daemon_reload_forget(arg): the asker went away, call nothing.
 */
typedef void (*daemon_reload_done)(void *arg, bool ok, const char *text);
int	daemon_reload_request(daemon_reload_done done, void *arg);
void	daemon_reload_forget(void *arg);

/* Load shedding (shed.c). */
int	shed_start(void);
void	shed_stop(void);

#endif
