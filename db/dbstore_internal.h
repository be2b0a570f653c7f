#ifndef MXTIER_DBSTORE_INTERNAL_H
#define MXTIER_DBSTORE_INTERNAL_H

/*
 * What the privileged side's database files share, and nothing else
 * includes (all run in the parent, or in the one process unsplit):
 *   dbstore.c         start and stop, the engine's messages checked,
 *                     heartbeats, counters, the schema version check
 *   dbstore_conn.c    a libpq connection: non-blocking connect, backoff
 *   dbstore_writer.c  the bounded write queue, sent in batches (db_batch.c) in pipeline mode
 *   dbstore_reader.c  history lookups, listings and reputation
 */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "db_batch.h"

struct event;

enum dbconn_state {
	DBC_DOWN = 0,
	DBC_CONNECTING,
	DBC_UP
};

struct dbconn {
	const char		*name;
	PGconn			*pg;
	struct event		*ev;
	int			 ev_fd;
	short			 ev_what;
	enum dbconn_state	 state;
	int64_t			 backoff_ms;
	int64_t			 last_error_log_ms;
	struct event		*retry_timer;
	void			(*on_up)(struct dbconn *);
	void			(*on_input)(struct dbconn *);
	void			(*on_down)(struct dbconn *);
};

/* The state every part reads; each part keeps the rest of its own. */
struct dbstore {
	bool			 enabled;
	char			*conninfo;
	char			*appliance;
	struct dbconn		 writer, reader;
	struct db_stats		 stats;
	uint64_t		 refused;	/* messages from the engine that failed the checks */
};

extern struct dbstore store;

/* Connections (dbstore_conn.c). */
void	dbconn_start(struct dbconn *c);
/* dbconn_fail - log (rate-limited), close, tell on_down, retry after a doubling backoff. */
void	dbconn_fail(struct dbconn *c, const char *why);
/* dbconn_flush - push what libpq buffered, EV_WRITE armed until it is out; false if the connection failed. */
bool	dbconn_flush(struct dbconn *c);
/* dbconn_close - at stop: closed, no retry. */
void	dbconn_close(struct dbconn *c);
/* dbconn_log_limited - a repeated error, at most once per DB_LOG_EVERY_MS per connection. */
void	dbconn_log_limited(struct dbconn *c, const char *what, const char *detail);

/* The writer (dbstore_writer.c). */
void	dbstore_writer_start(size_t cap, size_t batch_size);
/* dbstore_writer_push - one event and its parameters (copied) queued, or dropped and counted; sql only for a statement. */
void	dbstore_writer_push(enum db_event_kind kind, const char *sql, int n, const char *const *values);
size_t	dbstore_writer_queued(void);
void	dbstore_writer_stop(void);

/* The reader (dbstore_reader.c). */
void	dbstore_reader_start(void);
/* dbstore_reader_ask - a history lookup for up to three keys (NULL for none); always answered done. */
void	dbstore_reader_ask(uint32_t id, const char *const keys[3]);
void	dbstore_reader_stop(void);

#endif
