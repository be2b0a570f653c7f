#ifndef MXTIER_DB_H
#define MXTIER_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct session_record;

/*
 * PostgreSQL, fail-open. Two halves: db.c is the engine's (the calls
 * below), dbstore.c the privileged side's (the connections); they talk in
 * messages (proxy/privsep/priv.h), so the SMTP engine never holds the conninfo. A writer connection streams events (session rows
 * with their reputation, contact news for peer appliances) in pipeline
 * mode from a bounded queue; a reader connection answers history lookups
 * within db_read_budget and follows listings with LISTEN/NOTIFY. When the
 * database is down, slow or locked, mail flows: events beyond the bound
 * are dropped and counted, reads that miss their budget are neutral.
 */

struct db_stats {
	bool		connected;
	uint64_t	written;
	uint64_t	dropped;		/* events (session rows and contact news) */
	uint64_t	sessions_dropped;	/* of which session rows */
	uint64_t	errors;
	uint64_t	reconnects;
	uint64_t	reads_late;
	uint64_t	reads_unwaited;		/* lookups asked under a flood without a session waiting */
	size_t		queued;
};

int	db_start(const struct config *c);	/* 0 also when no database is configured */
void	db_reconfigure(const struct config *c);
void	db_stop(void);
bool	db_enabled(void);
void	db_get_stats(struct db_stats *out);

/* db_record_session - queue the session's row (called once, when it ends). */
void	db_record_session(const struct session_record *r);

/*
 * db_lookup_client - ask the shared history about client (address and
 * prefix keys); what it knows is merged into local history, then
 * done(arg) is called once, within budget_ms, from the loop. Returns NULL
 * when no lookup was started, else a handle valid until done runs.
 */
struct db_lookup;
typedef void (*db_lookup_done)(void *arg);
struct db_lookup *db_lookup_client(const struct netaddr *client, int64_t budget_ms, db_lookup_done done, void *arg);
/* db_abandon_lookup - the asker goes (NULL is fine): done is not called. */
void	db_abandon_lookup(struct db_lookup *l);

/* A network listed allow/block by an operator in the database: 1 block, -1 allow, 0 none. */
int	db_listing(const struct netaddr *addr);
/* Reputation of an address across appliances (score beyond +-10): 1 good, -1 bad, 0 neither. */
int	db_reputation(const struct netaddr *addr);

/*
 * The privileged side (the parent in a split, else the same process):
 * the connections, the write queue and the reader. dbstore_busy - rows
 * still queued on a live connection (the parent waits for them at stop).
 */
int	dbstore_start(const struct config *c);
void	dbstore_reconfigure(const struct config *c);
void	dbstore_stop(void);
bool	dbstore_busy(void);
/*
 * dbstore_listing_change - an operator's block/allow add (ttl_ms) or del
 * of network in the shared listings, set_by naming who; queued on the
 * writer. -1 when no database is configured.
 */
int	dbstore_listing_change(bool add, bool block, const char *network, int64_t ttl_ms, const char *set_by);

#endif
