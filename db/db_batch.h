#ifndef MXTIER_DB_BATCH_H
#define MXTIER_DB_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "db_rows.h"

/*
 * The writer's batches (privileged side), without libpq or the loop, so
 * the unit tests drive them: events (a session row, contact news or a
 * plain statement) gathered into a batch, the batch turned into one
 * statement per row kind (column arrays for mxtier_record_sessions and
 * mxtier_contacts, migration 0003), contact news folded to one row per
 * key, and a failed batch split in halves until the bad row stands alone.
 */

enum db_event_kind {
	DB_EVENT_SESSION = 0,
	DB_EVENT_CONTACT,
	DB_EVENT_STATEMENT	/* its own SQL (heartbeat, retention): always a batch of one */
};

/* One event with its parameters, in one allocation. */
struct db_event {
	enum db_event_kind	 kind;
	const char		*sql;		/* DB_EVENT_STATEMENT */
	int			 nparams;
	char			*values[DB_ROW_FIELDS_MAX];
	char			 storage[];
};

/* db_event_new - the values copied (NULL stays NULL); NULL when n is beyond bounds or out of memory. */
struct db_event	*db_event_new(enum db_event_kind kind, const char *sql, int n, const char *const *values);
void		 db_event_free(struct db_event *e);

/* A batch: its events in queue order; a transaction per row kind in it. */
struct db_batch {
	TAILQ_ENTRY(db_batch)	 entry;
	size_t			 n, cap;
	int			 attempts;	/* transient failures so far */
	bool			 failed;	/* a statement of it failed (set while its results come in) */
	int			 syncs;		/* its transactions still to be confirmed */
	struct db_event		*ev[];
};

TAILQ_HEAD(db_batch_list, db_batch);

struct db_batch	*db_batch_new(size_t cap);
/* db_batch_free - the batch and, with events, its events. */
void		 db_batch_free(struct db_batch *b, bool events);
/* db_batch_add - false when full. */
bool		 db_batch_add(struct db_batch *b, struct db_event *e);
/*
 * db_batch_split - a failed batch of n >= 2 becomes its two halves (the
 * events move, b is freed); -1 (b untouched) if n < 2 or out of memory.
 */
int		 db_batch_split(struct db_batch *b, struct db_batch **first, struct db_batch **second);

/*
 * The parameters of one batch statement: a text[] literal per column.
 * nrows 0: no event of that kind in the batch, nothing to send.
 */
struct db_batch_params {
	int	 nrows;
	int	 nparams;
	char	*values[DB_ROW_FIELDS_MAX];
};

/* db_batch_build - kind's events of b as column arrays (contacts folded per key); -1 out of memory. */
int		 db_batch_build(const struct db_batch *b, enum db_row_kind kind, struct db_batch_params *out);
void		 db_batch_params_free(struct db_batch_params *p);

/*
 * db_contact_fold - news for one key, in the order they came, into one
 * row (values point into the events, or at static "true"/"false"): the
 * latest tier contact, pass and block win; a pending retry is the first
 * set since the last clear; clear is set if any news cleared.
 */
void		 db_contact_fold(struct db_event *const *news, size_t n, const char **out);

/* db_array_append - value as one element of a text[] literal (NULL, or quoted with " and \ escaped); -1 out of memory. */
struct db_text {
	char	*buf;
	size_t	 len, cap;
};
int		 db_array_append(struct db_text *t, const char *value);

/* db_sqlstate_transient - a failure that says nothing about the rows (deadlock, serialization, lock or statement timeout). */
bool		 db_sqlstate_transient(const char *sqlstate);

#endif
