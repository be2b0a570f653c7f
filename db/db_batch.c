/*
 * db_batch.c - the writer's batches (see db_batch.h): events, batches,
 * their column-array statements, the per-key fold of contact news and
 * the halving of a failed batch. No libpq, no loop, no state of its own.
 */
#include "db_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- events ---- */

struct db_event *
db_event_new(enum db_event_kind kind, const char *sql, int n, const char *const *values)
{
	size_t total = sizeof(struct db_event);
	struct db_event *e;
	char *p;

	if (n < 0 || n > DB_ROW_FIELDS_MAX)
		return NULL;
	for (int i = 0; i < n; i++)
		total += values[i] ? strlen(values[i]) + 1 : 0;
	if ((e = calloc(1, total)) == NULL)
		return NULL;
	e->kind = kind;
	e->sql = sql;
	e->nparams = n;
	p = e->storage;
	for (int i = 0; i < n; i++) {
		size_t len;

		if (values[i] == NULL)
			continue;
		len = strlen(values[i]) + 1;
		e->values[i] = p;
		memcpy(p, values[i], len);
		p += len;
	}
	return e;
}

void
db_event_free(struct db_event *e)
{
	free(e);
}

/* ---- batches ---- */

struct db_batch *
db_batch_new(size_t cap)
{
	struct db_batch *b;

	if (cap == 0 || (b = calloc(1, sizeof(*b) + cap * sizeof(b->ev[0]))) == NULL)
		return NULL;
	b->cap = cap;
	return b;
}

void
db_batch_free(struct db_batch *b, bool events)
{
	if (b == NULL)
		return;
	if (events)
		for (size_t i = 0; i < b->n; i++)
			db_event_free(b->ev[i]);
	free(b);
}

bool
db_batch_add(struct db_batch *b, struct db_event *e)
{
	if (b->n >= b->cap)
		return false;
	b->ev[b->n++] = e;
	return true;
}

int
db_batch_split(struct db_batch *b, struct db_batch **first, struct db_batch **second)
{
	size_t half = b->n / 2;
	struct db_batch *x, *y;

	if (b->n < 2)
		return -1;
	x = db_batch_new(half);
	y = db_batch_new(b->n - half);
	if (x == NULL || y == NULL) {
		free(x);
		free(y);
		return -1;
	}
	for (size_t i = 0; i < b->n; i++)
		db_batch_add(i < half ? x : y, b->ev[i]);
	/* The halves start afresh: a transient failure of the whole says nothing about either. */
	db_batch_free(b, false);
	*first = x;
	*second = y;
	return 0;
}

/* ---- array literals ---- */

static int
text_reserve(struct db_text *t, size_t more)
{
	size_t cap = t->cap ? t->cap : 256;
	char *p;

	if (t->len + more + 1 <= t->cap)
		return 0;
	while (cap < t->len + more + 1)
		cap *= 2;
	if ((p = realloc(t->buf, cap)) == NULL)
		return -1;
	t->buf = p;
	t->cap = cap;
	return 0;
}

static int
text_put(struct db_text *t, const char *s, size_t n)
{
	if (text_reserve(t, n) == -1)
		return -1;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
	return 0;
}

int
db_array_append(struct db_text *t, const char *value)
{
	/* The separator goes before every element but the first ("{" is the literal's start). */
	if (t->len > 1 && text_put(t, ",", 1) == -1)
		return -1;
	if (value == NULL)
		return text_put(t, "NULL", 4);
	/* Worst case every byte escaped, and the quotes. */
	if (text_reserve(t, 2 * strlen(value) + 2) == -1)
		return -1;
	t->buf[t->len++] = '"';
	for (const char *p = value; *p; p++) {
		if (*p == '"' || *p == '\\')
			t->buf[t->len++] = '\\';
		t->buf[t->len++] = *p;
	}
	t->buf[t->len++] = '"';
	t->buf[t->len] = '\0';
	return 0;
}

/* ---- contact news, folded per key ---- */

/* later - the later of two times as db_row_time writes them (fixed width, so text order is time order). */
static const char *
later(const char *a, const char *b)
{
	if (a == NULL)
		return b;
	if (b == NULL)
		return a;
	return strcmp(a, b) >= 0 ? a : b;
}

void
db_contact_fold(struct db_event *const *news, size_t n, const char **out)
{
	bool clear = false;

	for (int f = 0; f < DB_CONTACT_FIELD_COUNT; f++)
		out[f] = NULL;
	for (size_t i = 0; i < n; i++) {
		char *const *v = news[i]->values;

		out[DB_CONTACT_KEY] = v[DB_CONTACT_KEY];
		out[DB_CONTACT_PRIMARY] = later(out[DB_CONTACT_PRIMARY], v[DB_CONTACT_PRIMARY]);
		out[DB_CONTACT_SECONDARY] = later(out[DB_CONTACT_SECONDARY], v[DB_CONTACT_SECONDARY]);
		out[DB_CONTACT_BAIT] = later(out[DB_CONTACT_BAIT], v[DB_CONTACT_BAIT]);
		out[DB_CONTACT_PASS] = later(out[DB_CONTACT_PASS], v[DB_CONTACT_PASS]);
		/* The first deferral since the last clear is kept (a later attempt is measured from it). */
		if (out[DB_CONTACT_PENDING] == NULL)
			out[DB_CONTACT_PENDING] = v[DB_CONTACT_PENDING];
		/* One news that both sets and clears is a clear, as mxtier_contact has it. */
		if (v[DB_CONTACT_CLEAR_PENDING] && strcmp(v[DB_CONTACT_CLEAR_PENDING], "true") == 0) {
			clear = true;
			out[DB_CONTACT_PENDING] = NULL;
		}
		/* The latest block replaces (it may shorten one, as mxtier_contact lets it). */
		if (v[DB_CONTACT_BLOCK]) {
			out[DB_CONTACT_BLOCK] = v[DB_CONTACT_BLOCK];
			out[DB_CONTACT_BLOCK_REASON] = v[DB_CONTACT_BLOCK_REASON];
		}
	}
	out[DB_CONTACT_CLEAR_PENDING] = clear ? "true" : "false";
}

/* news_order - by key, then by arrival (qsort is not stable: the index breaks ties). */
struct news_ref {
	struct db_event	*e;
	size_t		 at;
};

static int
news_cmp(const void *a, const void *b)
{
	const struct news_ref *x = a, *y = b;
	int c = strcmp(x->e->values[DB_CONTACT_KEY], y->e->values[DB_CONTACT_KEY]);

	if (c != 0)
		return c;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* ---- the statements ---- */

static int
params_open(struct db_batch_params *p, struct db_text *cols, int nfields)
{
	memset(p, 0, sizeof(*p));
	p->nparams = nfields;
	for (int f = 0; f < nfields; f++) {
		memset(&cols[f], 0, sizeof(cols[f]));
		if (text_put(&cols[f], "{", 1) == -1)
			return -1;
	}
	return 0;
}

static int
params_row(struct db_text *cols, int nfields, const char *const *values)
{
	for (int f = 0; f < nfields; f++)
		if (db_array_append(&cols[f], values[f]) == -1)
			return -1;
	return 0;
}

static int
params_close(struct db_batch_params *p, struct db_text *cols, int nfields, int rc)
{
	for (int f = 0; f < nfields; f++) {
		if (rc == 0 && text_put(&cols[f], "}", 1) == -1)
			rc = -1;
		p->values[f] = cols[f].buf;
	}
	if (rc == -1)
		db_batch_params_free(p);
	return rc;
}

int
db_batch_build(const struct db_batch *b, enum db_row_kind kind, struct db_batch_params *out)
{
	const struct db_row_table *t = db_row_table(kind);
	enum db_event_kind want = kind == DB_ROW_SESSION ? DB_EVENT_SESSION : DB_EVENT_CONTACT;
	struct db_text cols[DB_ROW_FIELDS_MAX];
	struct news_ref *refs;
	struct db_event **sorted;
	size_t nrefs = 0;
	int rc = 0;

	if (params_open(out, cols, t->nfields) == -1)
		return params_close(out, cols, t->nfields, -1);
	if (kind == DB_ROW_SESSION) {
		for (size_t i = 0; i < b->n && rc == 0; i++) {
			if (b->ev[i]->kind != want)
				continue;
			rc = params_row(cols, t->nfields, (const char *const *)b->ev[i]->values);
			out->nrows++;
		}
		return params_close(out, cols, t->nfields, rc);
	}
	/* Contacts: one row per key, keys in order (the function locks them in that order too). */
	refs = calloc(b->n + 1, sizeof(*refs));
	sorted = calloc(b->n + 1, sizeof(*sorted));
	if (refs == NULL || sorted == NULL) {
		free(refs);
		free(sorted);
		return params_close(out, cols, t->nfields, -1);
	}
	for (size_t i = 0; i < b->n; i++)
		if (b->ev[i]->kind == want && b->ev[i]->values[DB_CONTACT_KEY] != NULL)
			refs[nrefs++] = (struct news_ref){ b->ev[i], i };
	qsort(refs, nrefs, sizeof(*refs), news_cmp);
	for (size_t i = 0; i < nrefs; i++)
		sorted[i] = refs[i].e;
	for (size_t i = 0; i < nrefs && rc == 0;) {
		const char *row[DB_CONTACT_FIELD_COUNT];
		size_t k = 1;

		while (i + k < nrefs && strcmp(sorted[i + k]->values[DB_CONTACT_KEY], sorted[i]->values[DB_CONTACT_KEY]) == 0)
			k++;
		db_contact_fold(&sorted[i], k, row);
		rc = params_row(cols, t->nfields, row);
		out->nrows++;
		i += k;
	}
	free(sorted);
	free(refs);
	return params_close(out, cols, t->nfields, rc);
}

void
db_batch_params_free(struct db_batch_params *p)
{
	for (int f = 0; f < p->nparams; f++) {
		free(p->values[f]);
		p->values[f] = NULL;
	}
	p->nrows = 0;
}

bool
db_sqlstate_transient(const char *sqlstate)
{
	static const char *const transient[] = {
		"40001",	/* serialization_failure */
		"40P01",	/* deadlock_detected */
		"55P03",	/* lock_not_available */
		"57014",	/* query_canceled (statement_timeout) */
		"53200",	/* out_of_memory */
		"53300",	/* too_many_connections */
	};

	if (sqlstate == NULL)
		return false;
	for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
		if (strcmp(sqlstate, transient[i]) == 0)
			return true;
	return false;
}
