/*
 * test_db_batch.c - the writer's batches (db/db_batch.c): array literals
 * that PostgreSQL reads back as the same values, contact news folded per
 * key as mxtier_contact would have merged them one by one, column arrays
 * for both row kinds, and a failed batch halved until its bad row stands
 * alone while every other row is written.
 */
#include "unit.h"

#include "db_batch.h"
#include "db_rows.h"

/* ---- array literals ---- */

static void
test_array_literal(void **state)
{
	static const struct {
		const char	*label;
		const char	*values[4];
		int		 n;
		const char	*want;
	} cases[] = {
		{ "one plain value", { "abc" }, 1, "{\"abc\"}" },
		{ "NULL stays NULL", { "a", NULL, "b" }, 3, "{\"a\",NULL,\"b\"}" },
		{ "the text NULL is a string", { "NULL" }, 1, "{\"NULL\"}" },
		{ "empty string", { "" }, 1, "{\"\"}" },
		{ "quote escaped", { "say \"hi\"" }, 1, "{\"say \\\"hi\\\"\"}" },
		{ "backslash escaped", { "a\\b" }, 1, "{\"a\\\\b\"}" },
		{ "comma and braces are data", { "{x,y}", "z" }, 2, "{\"{x,y}\",\"z\"}" },
		{ "a reasons literal inside", { "{retried,dnsbl}" }, 1, "{\"{retried,dnsbl}\"}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* A literal starts as "{" (the writer's columns do); a small buffer makes it grow. */
		struct db_text t = { .buf = strdup("{"), .len = 1, .cap = 2 };
		int rc = 0;

		for (int k = 0; k < cases[i].n; k++)
			rc |= db_array_append(&t, cases[i].values[k]);
		t.buf = realloc(t.buf, t.len + 2);
		strcat(t.buf, "}");
		EXPECT(cases[i].label, rc == 0 && strcmp(t.buf, cases[i].want) == 0, "got %s, want %s", t.buf, cases[i].want);
		free(t.buf);
	}
	EXPECT_ALL_PASSED();
}

/* ---- contact news ---- */

/* news - contact news for key: tier contact at time c on primary, pending p, clear, pass, block b (NULL = none). */
static struct db_event *
news(const char *key, const char *primary, const char *pending, bool clear, const char *pass, const char *block)
{
	const char *v[DB_CONTACT_FIELD_COUNT] = { NULL };

	v[DB_CONTACT_KEY] = key;
	v[DB_CONTACT_PRIMARY] = primary;
	v[DB_CONTACT_PENDING] = pending;
	v[DB_CONTACT_CLEAR_PENDING] = clear ? "true" : "false";
	v[DB_CONTACT_PASS] = pass;
	v[DB_CONTACT_BLOCK] = block;
	v[DB_CONTACT_BLOCK_REASON] = block ? "bait-first-contact" : NULL;
	return db_event_new(DB_EVENT_CONTACT, NULL, DB_CONTACT_FIELD_COUNT, v);
}

#define T1 "2026-06-15 12:00:01.000+00"
#define T2 "2026-06-15 12:00:02.000+00"
#define T3 "2026-06-15 12:00:03.000+00"

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void
test_contact_fold(void **state)
{
	static const struct {
		const char	*label;
		struct { const char *primary, *pending; bool clear; const char *pass, *block; } in[4];
		int		 n;
		const char	*primary, *pending, *clear, *pass, *block;
	} cases[] = {
		{ "one news is itself", { { T1, T1, false, NULL, NULL } }, 1, T1, T1, "false", NULL, NULL },
		{ "latest contact wins, in any order", { { T2, NULL, false, NULL, NULL }, { T3, NULL, false, NULL, NULL }, { T1, NULL, false, NULL, NULL } }, 3, T3, NULL, "false", NULL, NULL },
		{ "first pending is kept", { { T1, T1, false, NULL, NULL }, { T2, T2, false, NULL, NULL } }, 2, T2, T1, "false", NULL, NULL },
		{ "set then clear: cleared", { { T1, T1, false, NULL, NULL }, { T2, NULL, true, NULL, NULL } }, 2, T2, NULL, "true", NULL, NULL },
		{ "clear then set: the new one stands", { { T1, NULL, true, NULL, NULL }, { T2, T2, false, NULL, NULL } }, 2, T2, T2, "true", NULL, NULL },
		{ "one news that sets and clears is a clear", { { T1, T1, true, NULL, NULL } }, 1, T1, NULL, "true", NULL, NULL },
		{ "latest pass wins", { { NULL, NULL, false, T3, NULL }, { NULL, NULL, false, T2, NULL } }, 2, NULL, NULL, "false", T3, NULL },
		{ "latest block replaces", { { NULL, NULL, false, NULL, T3 }, { NULL, NULL, false, NULL, T2 } }, 2, NULL, NULL, "false", NULL, T2 },
		{ "a news without block keeps the block", { { NULL, NULL, false, NULL, T2 }, { T3, NULL, false, NULL, NULL } }, 2, T3, NULL, "false", NULL, T2 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct db_event *ev[4];
		const char *out[DB_CONTACT_FIELD_COUNT];

		for (int k = 0; k < cases[i].n; k++)
			ev[k] = news("a:192.0.2.1", cases[i].in[k].primary, cases[i].in[k].pending, cases[i].in[k].clear,
			    cases[i].in[k].pass, cases[i].in[k].block);
		db_contact_fold(ev, (size_t)cases[i].n, out);
		EXPECT(cases[i].label, same(out[DB_CONTACT_KEY], "a:192.0.2.1"), "key %s", out[DB_CONTACT_KEY]);
		EXPECT(cases[i].label, same(out[DB_CONTACT_PRIMARY], cases[i].primary), "primary %s", out[DB_CONTACT_PRIMARY]);
		EXPECT(cases[i].label, same(out[DB_CONTACT_PENDING], cases[i].pending), "pending %s", out[DB_CONTACT_PENDING]);
		EXPECT(cases[i].label, same(out[DB_CONTACT_CLEAR_PENDING], cases[i].clear), "clear %s",
		    out[DB_CONTACT_CLEAR_PENDING]);
		EXPECT(cases[i].label, same(out[DB_CONTACT_PASS], cases[i].pass), "pass %s", out[DB_CONTACT_PASS]);
		EXPECT(cases[i].label, same(out[DB_CONTACT_BLOCK], cases[i].block), "block %s", out[DB_CONTACT_BLOCK]);
		EXPECT(cases[i].label, same(out[DB_CONTACT_BLOCK_REASON], cases[i].block ? "bait-first-contact" : NULL),
		    "block reason %s", out[DB_CONTACT_BLOCK_REASON]);
		for (int k = 0; k < cases[i].n; k++)
			db_event_free(ev[k]);
	}
	EXPECT_ALL_PASSED();
}

/* ---- batches as statements ---- */

static struct db_event *
session(int i, const char *helo)
{
	const char *v[DB_SESSION_FIELD_COUNT] = { NULL };
	char id[16];

	snprintf(id, sizeof(id), "%010x", i);
	v[DB_SESSION_ID] = id;
	v[DB_SESSION_APPLIANCE] = "A";
	v[DB_SESSION_STARTED] = T1;
	v[DB_SESSION_ENDED] = T2;
	v[DB_SESSION_TIER] = "bait";
	v[DB_SESSION_CLIENT] = "192.0.2.7";
	v[DB_SESSION_PREFIX] = "192.0.2.0/24";
	v[DB_SESSION_FCRDNS] = "false";
	v[DB_SESSION_HELO] = helo;
	v[DB_SESSION_VERDICT] = "tempfail";
	v[DB_SESSION_REASONS] = "{bait}";
	return db_event_new(DB_EVENT_SESSION, NULL, DB_SESSION_FIELD_COUNT, v);
}

static void
test_a_thousand_news_from_one_prefix_are_one_row_per_key(void **state)
{
	struct db_batch *b = db_batch_new(1200);
	struct db_batch_params p;
	char key[64];

	assert_non_null(b);
	/* 1,000 clients of one /24: their address keys, and the prefix key each time. */
	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "a:192.0.2.%d", i % 250);
		assert_true(db_batch_add(b, news(key, T1, NULL, false, NULL, NULL)));
		assert_true(db_batch_add(b, news("p:192.0.2.0/24", i % 2 ? T3 : T2, NULL, false, NULL, NULL)));
	}
	assert_true(db_batch_add(b, session(1, "x")));
	assert_int_equal(db_batch_build(b, DB_ROW_CONTACT, &p), 0);
	assert_int_equal(p.nrows, 251);
	assert_int_equal(p.nparams, DB_CONTACT_FIELD_COUNT);
	/* Keys sorted (the function locks them in that order), each once; the prefix has its latest contact. */
	assert_true(strncmp(p.values[DB_CONTACT_KEY], "{\"a:192.0.2.0\",\"a:192.0.2.1\",\"a:192.0.2.10\",", 40) == 0);
	assert_non_null(strstr(p.values[DB_CONTACT_KEY], ",\"p:192.0.2.0/24\"}"));
	assert_non_null(strstr(p.values[DB_CONTACT_PRIMARY], ",\"" T3 "\"}"));
	db_batch_params_free(&p);
	assert_int_equal(db_batch_build(b, DB_ROW_SESSION, &p), 0);
	assert_int_equal(p.nrows, 1);
	db_batch_params_free(&p);
	db_batch_free(b, true);
}

static void
test_sessions_as_columns(void **state)
{
	struct db_batch *b = db_batch_new(3);
	struct db_batch_params p;

	db_batch_add(b, session(1, "one"));
	db_batch_add(b, news("a:192.0.2.1", T1, NULL, false, NULL, NULL));
	db_batch_add(b, session(2, NULL));
	assert_int_equal(db_batch_build(b, DB_ROW_SESSION, &p), 0);
	assert_int_equal(p.nrows, 2);
	assert_int_equal(p.nparams, DB_SESSION_FIELD_COUNT);
	assert_string_equal(p.values[DB_SESSION_ID], "{\"0000000001\",\"0000000002\"}");
	assert_string_equal(p.values[DB_SESSION_HELO], "{\"one\",NULL}");
	assert_string_equal(p.values[DB_SESSION_REASONS], "{\"{bait}\",\"{bait}\"}");
	assert_string_equal(p.values[DB_SESSION_RDNS], "{NULL,NULL}");
	db_batch_params_free(&p);
	/* A batch without contacts sends no contact statement. */
	db_batch_free(b, true);
	b = db_batch_new(1);
	db_batch_add(b, session(3, NULL));
	{
		struct db_event *extra = session(4, NULL);

		assert_false(db_batch_add(b, extra));		/* full: still the caller's */
		db_event_free(extra);
	}
	assert_int_equal(db_batch_build(b, DB_ROW_CONTACT, &p), 0);
	assert_int_equal(p.nrows, 0);
	db_batch_params_free(&p);
	db_batch_free(b, true);
	assert_string_equal(db_row_batch_sql(DB_ROW_CONTACT), "SELECT mxtier_contacts($1::text[], $2::text[], $3::text[], "
	    "$4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])");
	assert_non_null(strstr(db_row_batch_sql(DB_ROW_SESSION), "SELECT mxtier_record_sessions($1::text[], "));
	assert_non_null(strstr(db_row_batch_sql(DB_ROW_SESSION), ", $21::text[])"));
}

/* ---- bisection ---- */

/*
 * bisect_run - the writer's loop without a server: a batch "fails" when
 * it holds a row whose HELO is "bad"; a failed batch is halved (retried
 * first), a failed single row given up. Returns the statements sent.
 */
static int
bisect_run(struct db_batch *b, int *written, int *given_up)
{
	struct db_batch_list todo = TAILQ_HEAD_INITIALIZER(todo);
	int sent = 0;

	TAILQ_INSERT_TAIL(&todo, b, entry);
	while ((b = TAILQ_FIRST(&todo)) != NULL) {
		struct db_batch *x, *y;
		bool bad = false;

		TAILQ_REMOVE(&todo, b, entry);
		sent++;
		for (size_t i = 0; i < b->n; i++)
			bad |= same(b->ev[i]->values[DB_SESSION_HELO], "bad");
		if (!bad) {
			*written += (int)b->n;
			db_batch_free(b, true);
		} else if (db_batch_split(b, &x, &y) == 0) {
			TAILQ_INSERT_HEAD(&todo, y, entry);
			TAILQ_INSERT_HEAD(&todo, x, entry);
		} else {
			*given_up += (int)b->n;
			db_batch_free(b, true);
		}
	}
	return sent;
}

static void
test_bad_rows_are_isolated(void **state)
{
	static const struct {
		const char	*label;
		int		 n;
		int		 bad[3];
		int		 nbad;
		int		 max_sent;
	} cases[] = {
		{ "no bad row: one statement", 500, { 0 }, 0, 1 },
		{ "first of 500", 500, { 0 }, 1, 1 + 2 * 9 },
		{ "last of 500", 500, { 499 }, 1, 1 + 2 * 9 },
		{ "middle of 500", 500, { 250 }, 1, 1 + 2 * 9 },
		{ "two far apart", 500, { 3, 400 }, 2, 1 + 4 * 9 },
		{ "two neighbours", 500, { 100, 101 }, 2, 1 + 4 * 9 },
		{ "a batch of one bad row", 1, { 0 }, 1, 1 },
		{ "three of 8", 8, { 1, 4, 7 }, 3, 15 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct db_batch *b = db_batch_new((size_t)cases[i].n);
		int written = 0, given_up = 0, sent;

		for (int k = 0; k < cases[i].n; k++) {
			bool bad = false;

			for (int j = 0; j < cases[i].nbad; j++)
				bad |= cases[i].bad[j] == k;
			db_batch_add(b, session(k, bad ? "bad" : "good"));
		}
		sent = bisect_run(b, &written, &given_up);
		EXPECT(cases[i].label, given_up == cases[i].nbad, "given up %d, want %d", given_up, cases[i].nbad);
		EXPECT(cases[i].label, written == cases[i].n - cases[i].nbad, "written %d of %d", written, cases[i].n);
		EXPECT(cases[i].label, sent <= cases[i].max_sent, "%d statements, want at most %d", sent, cases[i].max_sent);
	}
	EXPECT_ALL_PASSED();
}

static void
test_transient_sqlstates(void **state)
{
	static const struct {
		const char	*label;
		const char	*sqlstate;
		bool		 transient;
	} cases[] = {
		{ "deadlock", "40P01", true },
		{ "serialization", "40001", true },
		{ "lock timeout", "55P03", true },
		{ "statement timeout", "57014", true },
		{ "not null violation: the row", "23502", false },
		{ "bad timestamp: the row", "22007", false },
		{ "check violation: the row", "23514", false },
		{ "no state", NULL, false },
		{ "empty", "", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		EXPECT(cases[i].label, db_sqlstate_transient(cases[i].sqlstate) == cases[i].transient, "%s",
		    cases[i].sqlstate ? cases[i].sqlstate : "(null)");
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_array_literal),
		cmocka_unit_test(test_contact_fold),
		cmocka_unit_test(test_a_thousand_news_from_one_prefix_are_one_row_per_key),
		cmocka_unit_test(test_sessions_as_columns),
		cmocka_unit_test(test_bad_rows_are_isolated),
		cmocka_unit_test(test_transient_sqlstates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
