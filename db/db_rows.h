#ifndef MXTIER_DB_ROWS_H
#define MXTIER_DB_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The rows the engine sends the privileged side to write: a session row
 * (mxtier_record_session) and contact news (mxtier_contact). Each is a
 * value per field, indexed by the enums below; one table per row names
 * every field's type and bounds. The engine's encoder, the parent's
 * decoder and checks, and the SQL statement (a field's place in its enum
 * is its parameter number) all read that table, so nothing is kept in
 * step by hand. Values are text or NULL, as PostgreSQL takes parameters.
 */

enum db_row_kind {
	DB_ROW_SESSION = 0,
	DB_ROW_CONTACT,
	DB_ROW_KIND_COUNT
};

/* mxtier_record_session's parameters, in order. */
enum db_session_field {
	DB_SESSION_ID = 0,
	DB_SESSION_APPLIANCE,		/* the parent's own name, never the engine's */
	DB_SESSION_STARTED,
	DB_SESSION_ENDED,
	DB_SESSION_TIER,
	DB_SESSION_CLIENT,
	DB_SESSION_PREFIX,
	DB_SESSION_RDNS,
	DB_SESSION_FCRDNS,
	DB_SESSION_HELO,
	DB_SESSION_MAIL_FROM,
	DB_SESSION_RCPT_COUNT,
	DB_SESSION_FIRST_RCPT,
	DB_SESSION_MESSAGES,
	DB_SESSION_VERDICT,
	DB_SESSION_REASONS,
	DB_SESSION_DNSBL_SCORE,
	DB_SESSION_BYTES,
	DB_SESSION_DURATION_MS,
	DB_SESSION_BACKEND_REPLY,
	DB_SESSION_RDNS_DOMAIN,
	DB_SESSION_FIELD_COUNT
};

/* mxtier_contact's parameters, in order. */
enum db_contact_field {
	DB_CONTACT_KEY = 0,
	DB_CONTACT_PRIMARY,		/* last contact on each tier */
	DB_CONTACT_SECONDARY,
	DB_CONTACT_BAIT,
	DB_CONTACT_PENDING,
	DB_CONTACT_CLEAR_PENDING,
	DB_CONTACT_PASS,
	DB_CONTACT_BLOCK,
	DB_CONTACT_BLOCK_REASON,
	DB_CONTACT_FIELD_COUNT
};

#define DB_ROW_FIELDS_MAX	DB_SESSION_FIELD_COUNT

/* Values on the wire: every field but the parent's own (checked against the tables by the unit tests). */
#define DB_ROW_SESSION_WIRE_VALUES	(DB_SESSION_FIELD_COUNT - 1)
#define DB_ROW_CONTACT_WIRE_VALUES	DB_CONTACT_FIELD_COUNT

/* What a field's text must be; the SQL cast follows from it. */
enum db_field_type {
	DB_FIELD_TEXT = 0,	/* any text */
	DB_FIELD_KEY,		/* a history key: "a:ADDR", "p:PREFIX", "d:DOMAIN" */
	DB_FIELD_TIME,		/* UTC as db_row_time writes it, within the field's bound */
	DB_FIELD_BOOLEAN,	/* "true" or "false" */
	DB_FIELD_INTEGER,	/* decimal, within min..max (an SQL integer) */
	DB_FIELD_BIGINT,	/* decimal, within min..max (an SQL bigint) */
	DB_FIELD_INET,		/* an address */
	DB_FIELD_CIDR,		/* a network */
	DB_FIELD_TIER,		/* a tier role name */
	DB_FIELD_VERDICT,	/* a verdict name */
	DB_FIELD_REASON,	/* a reason name */
	DB_FIELD_REASONS	/* a text[] literal of reason names: "{a,b}" */
};

/* How far from now a time may lie. */
enum db_time_bound {
	DB_TIME_NEAR_NOW = 0,	/* an event: past (a row queued through an outage) up to a little ahead */
	DB_TIME_PASS,		/* a pass: at most pass_ttl ahead */
	DB_TIME_BLOCK		/* a block: at most block_ttl_max ahead */
};

#define DB_FIELD_REQUIRED	0x01	/* NULL is refused */
#define DB_FIELD_PARENT		0x02	/* filled by the parent, not on the wire */

struct db_field {
	const char		*name;		/* the SQL function's parameter, without p_ */
	enum db_field_type	 type;
	unsigned		 flags;
	enum db_time_bound	 bound;		/* DB_FIELD_TIME */
	int64_t			 min, max;	/* DB_FIELD_INTEGER, DB_FIELD_BIGINT */
};

struct db_row_table {
	const char		*name;		/* for logs: "session row" */
	const char		*function;	/* the SQL function the row is written with */
	const char		*batch_function;	/* the same for a batch of rows, as column arrays (db_batch.c) */
	const struct db_field	*fields;
	int			 nfields;
	int			 wire_values;	/* fields without DB_FIELD_PARENT */
};

/* The checks' idea of now and of the longest pass and block. */
struct db_row_limits {
	int64_t	now_ms;			/* wall clock, ms since the epoch */
	int64_t	pass_ttl_ms;
	int64_t	block_ttl_max_ms;
};

#define DB_TIME_SLACK_MS	(5 * 60 * 1000)		/* clock steps, queueing */
#define DB_TIME_PAST_MS		(2 * 86400 * 1000LL)	/* a row queued through an outage */

const struct db_row_table *db_row_table(enum db_row_kind kind);

/* db_row_encode - the engine's fields of values[] as a message payload; its length, -1 if it does not fit. */
int		 db_row_encode(enum db_row_kind kind, const char *const *values, char *buf, size_t cap);
/* db_row_decode - a payload into values[] (the parent's fields NULL, pointing into buf); -1 if malformed. */
int		 db_row_decode(enum db_row_kind kind, const char *buf, size_t len, const char **values);
/*
 * db_row_check - does each value fit its field? NULL if the row is good,
 * else the name of the first field that is not. This is the parent's
 * security boundary: rows it writes are shared by every appliance.
 */
const char	*db_row_check(enum db_row_kind kind, const char *const *values, const struct db_row_limits *lim);
/* db_row_time - now + offset_ms as a DB_FIELD_TIME value (UTC, fixed width: text order is time order). */
void		 db_row_time(char *buf, size_t len, int64_t offset_ms);
/* db_time_plausible - text is a time as db_row_time writes it within [now + from_ms, now + to_ms]; NULL is. */
bool		 db_time_plausible(const char *text, int64_t now_ms, int64_t from_ms, int64_t to_ms);
/* db_row_sql - "SELECT function($1, $2::cast, ...)" for the row, from its table. */
const char	*db_row_sql(enum db_row_kind kind);
/* db_row_batch_sql - "SELECT batch_function($1::text[], ...)": a batch of rows as column arrays (db_batch.c). */
const char	*db_row_batch_sql(enum db_row_kind kind);

#endif
