/*
 * db_rows.c - the session and contact rows the engine sends and the
 * privileged side writes, declared once: the field tables below drive
 * the engine's encoder, the parent's decoder and checks, and the SQL.
 * Shared by both processes; holds no state.
 */
#include "db_rows.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "netaddr.h"
#include "priv.h"
#include "reason.h"

#define REQ	DB_FIELD_REQUIRED

static const struct db_field session_fields[DB_SESSION_FIELD_COUNT] = {
	[DB_SESSION_ID] = { .name = "session_id", .type = DB_FIELD_TEXT, .flags = REQ },
	[DB_SESSION_APPLIANCE] = { .name = "appliance", .type = DB_FIELD_TEXT, .flags = REQ | DB_FIELD_PARENT },
	[DB_SESSION_STARTED] = { .name = "started", .type = DB_FIELD_TIME, .flags = REQ, .bound = DB_TIME_NEAR_NOW },
	[DB_SESSION_ENDED] = { .name = "ended", .type = DB_FIELD_TIME, .flags = REQ, .bound = DB_TIME_NEAR_NOW },
	[DB_SESSION_TIER] = { .name = "tier", .type = DB_FIELD_TIER, .flags = REQ },
	[DB_SESSION_CLIENT] = { .name = "client", .type = DB_FIELD_INET, .flags = REQ },
	[DB_SESSION_PREFIX] = { .name = "prefix", .type = DB_FIELD_CIDR, .flags = REQ },
	[DB_SESSION_RDNS] = { .name = "rdns", .type = DB_FIELD_TEXT },
	[DB_SESSION_FCRDNS] = { .name = "fcrdns", .type = DB_FIELD_BOOLEAN, .flags = REQ },
	[DB_SESSION_HELO] = { .name = "helo", .type = DB_FIELD_TEXT },
	[DB_SESSION_MAIL_FROM] = { .name = "mail_from", .type = DB_FIELD_TEXT },
	[DB_SESSION_RCPT_COUNT] = { .name = "rcpt_count", .type = DB_FIELD_INTEGER, .flags = REQ,
	    .min = 0, .max = INT32_MAX },
	[DB_SESSION_FIRST_RCPT] = { .name = "first_rcpt", .type = DB_FIELD_TEXT },
	[DB_SESSION_MESSAGES] = { .name = "messages", .type = DB_FIELD_INTEGER, .flags = REQ,
	    .min = 0, .max = INT32_MAX },
	[DB_SESSION_VERDICT] = { .name = "verdict", .type = DB_FIELD_VERDICT, .flags = REQ },
	[DB_SESSION_REASONS] = { .name = "reasons", .type = DB_FIELD_REASONS, .flags = REQ },
	[DB_SESSION_DNSBL_SCORE] = { .name = "dnsbl_score", .type = DB_FIELD_INTEGER, .flags = REQ,
	    .min = INT32_MIN, .max = INT32_MAX },
	[DB_SESSION_BYTES] = { .name = "bytes", .type = DB_FIELD_BIGINT, .flags = REQ, .min = 0, .max = INT64_MAX },
	[DB_SESSION_DURATION_MS] = { .name = "duration_ms", .type = DB_FIELD_INTEGER, .flags = REQ,
	    .min = 0, .max = INT32_MAX },
	[DB_SESSION_BACKEND_REPLY] = { .name = "backend_reply", .type = DB_FIELD_TEXT },
	[DB_SESSION_RDNS_DOMAIN] = { .name = "rdns_domain", .type = DB_FIELD_TEXT },
};

static const struct db_field contact_fields[DB_CONTACT_FIELD_COUNT] = {
	[DB_CONTACT_KEY] = { .name = "key", .type = DB_FIELD_KEY, .flags = REQ },
	[DB_CONTACT_PRIMARY] = { .name = "primary", .type = DB_FIELD_TIME, .bound = DB_TIME_NEAR_NOW },
	[DB_CONTACT_SECONDARY] = { .name = "secondary", .type = DB_FIELD_TIME, .bound = DB_TIME_NEAR_NOW },
	[DB_CONTACT_BAIT] = { .name = "bait", .type = DB_FIELD_TIME, .bound = DB_TIME_NEAR_NOW },
	[DB_CONTACT_PENDING] = { .name = "pending", .type = DB_FIELD_TIME, .bound = DB_TIME_NEAR_NOW },
	[DB_CONTACT_CLEAR_PENDING] = { .name = "clear_pending", .type = DB_FIELD_BOOLEAN, .flags = REQ },
	[DB_CONTACT_PASS] = { .name = "pass", .type = DB_FIELD_TIME, .bound = DB_TIME_PASS },
	[DB_CONTACT_BLOCK] = { .name = "block", .type = DB_FIELD_TIME, .bound = DB_TIME_BLOCK },
	[DB_CONTACT_BLOCK_REASON] = { .name = "block_reason", .type = DB_FIELD_REASON },
};

#undef REQ

static const struct db_row_table tables[DB_ROW_KIND_COUNT] = {
	[DB_ROW_SESSION] = { .name = "session row", .function = "mxtier_record_session",
	    .batch_function = "mxtier_record_sessions", .fields = session_fields,
	    .nfields = DB_SESSION_FIELD_COUNT, .wire_values = DB_ROW_SESSION_WIRE_VALUES },
	[DB_ROW_CONTACT] = { .name = "contact", .function = "mxtier_contact",
	    .batch_function = "mxtier_contacts", .fields = contact_fields,
	    .nfields = DB_CONTACT_FIELD_COUNT, .wire_values = DB_ROW_CONTACT_WIRE_VALUES },
};

const struct db_row_table *
db_row_table(enum db_row_kind kind)
{
	return (unsigned)kind < DB_ROW_KIND_COUNT ? &tables[kind] : NULL;
}

int
db_row_encode(enum db_row_kind kind, const char *const *values, char *buf, size_t cap)
{
	const struct db_row_table *t = db_row_table(kind);
	const char *wire[DB_ROW_FIELDS_MAX];
	int n = 0;

	for (int i = 0; i < t->nfields; i++)
		if (!(t->fields[i].flags & DB_FIELD_PARENT))
			wire[n++] = values[i];
	return priv_strings_encode(buf, cap, n, wire);
}

int
db_row_decode(enum db_row_kind kind, const char *buf, size_t len, const char **values)
{
	const struct db_row_table *t = db_row_table(kind);
	const char *wire[DB_ROW_FIELDS_MAX];
	int n = 0;

	if (priv_strings_decode(buf, len, t->wire_values, wire, PRIV_DB_VALUE_MAX) == -1)
		return -1;
	for (int i = 0; i < t->nfields; i++)
		values[i] = t->fields[i].flags & DB_FIELD_PARENT ? NULL : wire[n++];
	return 0;
}

void
db_row_time(char *buf, size_t len, int64_t offset_ms)
{
	struct timespec ts;
	struct tm tm;
	time_t secs;
	int64_t ms;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + offset_ms;
	secs = (time_t)(ms / 1000);
	gmtime_r(&secs, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03d+00", stamp, (int)(ms % 1000));
}

/* ---- the checks ---- */

bool
db_time_plausible(const char *text, int64_t now_ms, int64_t from_ms, int64_t to_ms)
{
	struct tm tm;
	const char *rest;
	int64_t at_ms;

	/*
	 * Times decide which partition a row creates and how long a pass or
	 * block lasts for every appliance sharing the database: an engine must
	 * not be able to name a far future.
	 */
	if (text == NULL)
		return true;
	memset(&tm, 0, sizeof(tm));
	if ((rest = strptime(text, "%Y-%m-%d %H:%M:%S", &tm)) == NULL)
		return false;
	if (*rest == '.')
		rest += strspn(rest + 1, "0123456789") + 1;
	if (strcmp(rest, "+00") != 0)
		return false;
	at_ms = (int64_t)timegm(&tm) * 1000;
	return at_ms >= now_ms + from_ms && at_ms <= now_ms + to_ms;
}

/* name_known - value is one of the names name_of(0..count-1) gives. */
static bool
name_known(const char *value, size_t len, int count, const char *(*name_of)(int))
{
	for (int i = 0; i < count; i++) {
		const char *name = name_of(i);

		if (strlen(name) == len && strncmp(value, name, len) == 0)
			return true;
	}
	return false;
}

static const char *
tier_name_of(int i)
{
	return tier_role_name((enum tier_role)i);
}

static const char *
verdict_name_of(int i)
{
	return verdict_name((enum verdict)i);
}

static const char *
reason_name_of(int i)
{
	return reason_name((enum reason)i);
}

/* number_in - decimal (optional '-'), nothing else, within [min, max]. */
static bool
number_in(const char *text, int64_t min, int64_t max)
{
	const char *digits = text[0] == '-' ? text + 1 : text;
	long long v;
	char *end;

	if (digits[0] < '0' || digits[0] > '9')
		return false;
	errno = 0;
	v = strtoll(text, &end, 10);
	return errno == 0 && *end == '\0' && v >= min && v <= max;
}

/* reasons_valid - "{}" or "{a,b,...}" of known reason names. */
static bool
reasons_valid(const char *text)
{
	size_t len = strlen(text);
	const char *p = text + 1, *end = text + len - 1;

	if (len < 2 || text[0] != '{' || *end != '}')
		return false;
	if (p == end)
		return true;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;

		if (!name_known(p, (size_t)(stop - p), REASON_COUNT, reason_name_of))
			return false;
		if (comma == NULL)
			return true;
		p = comma + 1;
	}
}

/* key_valid - a history key: kind letter, ':', something, within PRIV_DB_KEY_MAX. */
static bool
key_valid(const char *text)
{
	size_t len = strlen(text);

	return len >= 3 && len < PRIV_DB_KEY_MAX && text[1] == ':' && strchr("apd", text[0]) != NULL;
}

static bool
field_valid(const struct db_field *f, const char *v, const struct db_row_limits *lim)
{
	struct netaddr a;
	struct cidr c;

	switch (f->type) {
	case DB_FIELD_TEXT:
		return true;
	case DB_FIELD_KEY:
		return key_valid(v);
	case DB_FIELD_TIME:
		switch (f->bound) {
		case DB_TIME_NEAR_NOW:
			return db_time_plausible(v, lim->now_ms, -DB_TIME_PAST_MS, DB_TIME_SLACK_MS);
		case DB_TIME_PASS:
			return db_time_plausible(v, lim->now_ms, -DB_TIME_PAST_MS, lim->pass_ttl_ms + DB_TIME_SLACK_MS);
		case DB_TIME_BLOCK:
			return db_time_plausible(v, lim->now_ms, -DB_TIME_PAST_MS, lim->block_ttl_max_ms + DB_TIME_SLACK_MS);
		}
		return false;
	case DB_FIELD_BOOLEAN:
		return strcmp(v, "true") == 0 || strcmp(v, "false") == 0;
	case DB_FIELD_INTEGER:
	case DB_FIELD_BIGINT:
		return number_in(v, f->min, f->max);
	case DB_FIELD_INET:
		return netaddr_parse(v, &a) == 0;
	case DB_FIELD_CIDR:
		return cidr_parse(v, &c) == 0;
	case DB_FIELD_TIER:
		return name_known(v, strlen(v), TIER_COUNT, tier_name_of);
	case DB_FIELD_VERDICT:
		return name_known(v, strlen(v), VERDICT_COUNT, verdict_name_of);
	case DB_FIELD_REASON:
		return name_known(v, strlen(v), REASON_COUNT, reason_name_of);
	case DB_FIELD_REASONS:
		return reasons_valid(v);
	}
	return false;
}

const char *
db_row_check(enum db_row_kind kind, const char *const *values, const struct db_row_limits *lim)
{
	const struct db_row_table *t = db_row_table(kind);

	for (int i = 0; i < t->nfields; i++) {
		const struct db_field *f = &t->fields[i];

		/* The parent's own fields are not the engine's to fill. */
		if (f->flags & DB_FIELD_PARENT) {
			if (values[i] != NULL)
				return f->name;
			continue;
		}
		if (values[i] == NULL) {
			if (f->flags & DB_FIELD_REQUIRED)
				return f->name;
			continue;
		}
		if (!field_valid(f, values[i], lim))
			return f->name;
	}
	return NULL;
}

/* ---- the statement ---- */

static const char *
sql_cast(enum db_field_type type)
{
	switch (type) {
	case DB_FIELD_TIME:
		return "::timestamptz";
	case DB_FIELD_BOOLEAN:
		return "::boolean";
	case DB_FIELD_INTEGER:
		return "::integer";
	case DB_FIELD_BIGINT:
		return "::bigint";
	case DB_FIELD_INET:
		return "::inet";
	case DB_FIELD_CIDR:
		return "::cidr";
	case DB_FIELD_REASONS:
		return "::text[]";
	default:
		return "";
	}
}

/* row_sql - "SELECT fn($1::cast, ...)": the row's function with casts, or its batch function with text[] columns. */
static const char *
row_sql(enum db_row_kind kind, bool batch)
{
	static char sql[2][DB_ROW_KIND_COUNT][768];
	const struct db_row_table *t = db_row_table(kind);
	char *out = sql[batch][kind];
	size_t used, len = sizeof(sql[batch][kind]);

	if (out[0] != '\0')
		return out;
	used = (size_t)snprintf(out, len, "SELECT %s(", batch ? t->batch_function : t->function);
	for (int i = 0; i < t->nfields && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s$%d%s", i ? ", " : "", i + 1,
		    batch ? "::text[]" : sql_cast(t->fields[i].type));
	if (used < len)
		snprintf(out + used, len - used, ")");
	return out;
}

const char *
db_row_sql(enum db_row_kind kind)
{
	return row_sql(kind, false);
}

const char *
db_row_batch_sql(enum db_row_kind kind)
{
	return row_sql(kind, true);
}
