/*
 * test_db_rows.c - the rows the engine sends the privileged side
 * (db/db_rows.c): the parent's checks are the security boundary between
 * an engine that may be owned and a database every appliance shares, so
 * each is a labelled table of good and hostile rows. Also: the tables
 * agree with the wire counts, the statements are the ones the schema's
 * functions take, and a row survives encode/decode.
 */
#include "unit.h"

#include <time.h>

#include "db_rows.h"
#include "priv.h"

#define SEC	1000LL
#define MIN	(60 * SEC)
#define HOUR	(60 * MIN)
#define DAY	(24 * HOUR)

/* A fixed now (2026-06-15 12:00:00 UTC) and the bounds of a config: passes 35 days, blocks 1 day. */
static const struct db_row_limits limits = {
	.now_ms = 1781524800LL * 1000,
	.pass_ttl_ms = 35 * DAY,
	.block_ttl_max_ms = 1 * DAY,
};

/* at - now + offset_ms as the engine's wall_time writes it (one of eight rotating buffers). */
static const char *
at(int64_t offset_ms)
{
	static char bufs[8][48];
	static unsigned next;
	char *out = bufs[next++ % 8], stamp[32];
	int64_t ms = limits.now_ms + offset_ms;
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out, 48, "%s.%03d+00", stamp, (int)(ms % 1000));
	return out;
}

/* ---- the tables ---- */

static void
test_tables_match_the_wire(void **state)
{
	static const int wire[DB_ROW_KIND_COUNT] = {
		[DB_ROW_SESSION] = DB_ROW_SESSION_WIRE_VALUES,
		[DB_ROW_CONTACT] = DB_ROW_CONTACT_WIRE_VALUES,
	};

	for (int k = 0; k < DB_ROW_KIND_COUNT; k++) {
		const struct db_row_table *t = db_row_table((enum db_row_kind)k);
		int engine = 0;

		assert_non_null(t);
		assert_true(t->nfields <= DB_ROW_FIELDS_MAX);
		for (int i = 0; i < t->nfields; i++) {
			EXPECT(t->name, t->fields[i].name != NULL, "field %d has no name", i);
			if (t->fields[i].name == NULL)
				continue;
			if (!(t->fields[i].flags & DB_FIELD_PARENT))
				engine++;
			for (int j = 0; j < i; j++)
				EXPECT(t->name, strcmp(t->fields[i].name, t->fields[j].name) != 0, "%s twice",
				    t->fields[i].name);
		}
		EXPECT(t->name, engine == t->wire_values, "%d engine fields, table says %d", engine, t->wire_values);
		EXPECT(t->name, engine == wire[k], "%d engine fields, the channel expects %d", engine, wire[k]);
	}
	assert_null(db_row_table(DB_ROW_KIND_COUNT));
	EXPECT_ALL_PASSED();
}

/* The statements as the schema's functions take them (db/migrations: mxtier_record_session, mxtier_contact). */
static void
test_statements(void **state)
{
	assert_string_equal(db_row_sql(DB_ROW_SESSION),
	    "SELECT mxtier_record_session($1, $2, $3::timestamptz, $4::timestamptz, $5, $6::inet, $7::cidr, $8, "
	    "$9::boolean, $10, $11, $12::integer, $13, $14::integer, $15, $16::text[], $17::integer, $18::bigint, "
	    "$19::integer, $20, $21)");
	assert_string_equal(db_row_sql(DB_ROW_CONTACT),
	    "SELECT mxtier_contact($1, $2::timestamptz, $3::timestamptz, $4::timestamptz, $5::timestamptz, "
	    "$6::boolean, $7::timestamptz, $8::timestamptz, $9)");
	/* built once: the same text on the next call */
	assert_ptr_equal(db_row_sql(DB_ROW_SESSION), db_row_sql(DB_ROW_SESSION));
}

/* ---- db_time_plausible ---- */

struct time_case {
	const char	*label;
	const char	*text;		/* NULL: use offset */
	int64_t		 offset_ms;
	int64_t		 from_ms, to_ms;
	bool		 ok;
};

static const struct time_case time_cases[] = {
	{ "now", NULL, 0, -DAY, MIN, true },
	{ "NULL is no time, which is allowed", NULL, INT64_MIN, -DAY, MIN, true },
	{ "at the lower bound", NULL, -DAY, -DAY, MIN, true },
	{ "just before the lower bound", NULL, -DAY - SEC, -DAY, MIN, false },
	{ "at the upper bound", NULL, MIN, -DAY, MIN, true },
	{ "just past the upper bound", NULL, MIN + SEC, -DAY, MIN, false },
	{ "far future", "9999-12-31 23:59:59+00", 0, -DAY, MIN, false },
	{ "the epoch", "1970-01-01 00:00:00+00", 0, -DAY, MIN, false },
	{ "before the epoch", "1900-01-01 00:00:00+00", 0, -DAY, MIN, false },
	{ "a negative year", "-001-01-01 00:00:00+00", 0, -DAY, MIN, false },
	{ "no fraction", "2026-06-15 12:00:00+00", 0, -DAY, MIN, true },
	{ "another zone", "2026-06-15 12:00:00+02", 0, -DAY, MIN, false },
	{ "no zone", "2026-06-15 12:00:00", 0, -DAY, MIN, false },
	{ "trailing bytes", "2026-06-15 12:00:00+00 OR 1=1", 0, -DAY, MIN, false },
	{ "a fraction without digits then junk", "2026-06-15 12:00:00.x+00", 0, -DAY, MIN, false },
	{ "not a time", "yesterday", 0, -DAY, MIN, false },
	{ "empty", "", 0, -DAY, MIN, false },
	{ "month 13", "2026-13-01 00:00:00+00", 0, -DAY, MIN, false },
	{ "PostgreSQL's infinity", "infinity", 0, -DAY, MIN, false },
};

static void
test_time_plausible(void **state)
{
	for (size_t i = 0; i < sizeof(time_cases) / sizeof(time_cases[0]); i++) {
		const struct time_case *c = &time_cases[i];
		const char *text = c->text ? c->text : c->offset_ms == INT64_MIN ? NULL : at(c->offset_ms);
		bool ok = db_time_plausible(text, limits.now_ms, c->from_ms, c->to_ms);

		EXPECT(c->label, ok == c->ok, "\"%s\": got %d, want %d", unit_str(text), ok, c->ok);
	}
	EXPECT_ALL_PASSED();
}

/* ---- rows: one field changed from a good row, and the field the check must name (NULL: accepted) ---- */

struct row_case {
	const char	*label;
	int		 field;
	const char	*value;		/* "@N": now + N seconds; NULL: no value */
	const char	*refused;	/* the field db_row_check names, or NULL */
};

static void
good_session(const char **v)
{
	memset(v, 0, DB_ROW_FIELDS_MAX * sizeof(*v));
	v[DB_SESSION_ID] = "00000001ab";
	v[DB_SESSION_STARTED] = at(-5 * SEC);
	v[DB_SESSION_ENDED] = at(0);
	v[DB_SESSION_TIER] = "primary";
	v[DB_SESSION_CLIENT] = "192.0.2.7";
	v[DB_SESSION_PREFIX] = "192.0.2.0/24";
	v[DB_SESSION_RDNS] = "mail.example.org";
	v[DB_SESSION_FCRDNS] = "true";
	v[DB_SESSION_HELO] = "mail.example.org";
	v[DB_SESSION_MAIL_FROM] = "a@example.org";
	v[DB_SESSION_RCPT_COUNT] = "1";
	v[DB_SESSION_FIRST_RCPT] = "b@example.net";
	v[DB_SESSION_MESSAGES] = "1";
	v[DB_SESSION_VERDICT] = "relay";
	v[DB_SESSION_REASONS] = "{passed}";
	v[DB_SESSION_DNSBL_SCORE] = "0";
	v[DB_SESSION_BYTES] = "1234";
	v[DB_SESSION_DURATION_MS] = "5000";
	v[DB_SESSION_BACKEND_REPLY] = "250 2.0.0 Ok: queued";
	v[DB_SESSION_RDNS_DOMAIN] = "example.org";
}

static void
good_contact(const char **v)
{
	memset(v, 0, DB_ROW_FIELDS_MAX * sizeof(*v));
	v[DB_CONTACT_KEY] = "a:192.0.2.7";
	v[DB_CONTACT_PRIMARY] = at(0);
	v[DB_CONTACT_CLEAR_PENDING] = "false";
}

static const struct row_case session_cases[] = {
	{ "a good row", -1, NULL, NULL },
	/* identity */
	{ "no session id", DB_SESSION_ID, NULL, "session_id" },
	{ "the engine names the appliance (posing as a peer)", DB_SESSION_APPLIANCE, "peer-b", "appliance" },
	/* times: near now only, or a far future partition and reputation */
	{ "no start", DB_SESSION_STARTED, NULL, "started" },
	{ "started a day ago (queued through an outage)", DB_SESSION_STARTED, "@-86400", NULL },
	{ "started three days ago", DB_SESSION_STARTED, "@-259200", "started" },
	{ "ended in four minutes (clock slack)", DB_SESSION_ENDED, "@240", NULL },
	{ "ended in ten minutes", DB_SESSION_ENDED, "@600", "ended" },
	{ "ended in the year 9999", DB_SESSION_ENDED, "9999-12-31 23:59:59+00", "ended" },
	{ "started at the epoch", DB_SESSION_STARTED, "1970-01-01 00:00:00+00", "started" },
	{ "started in a negative year", DB_SESSION_STARTED, "-044-03-15 12:00:00+00", "started" },
	{ "ended with another zone", DB_SESSION_ENDED, "2026-06-15 12:00:00+05", "ended" },
	{ "ended as infinity", DB_SESSION_ENDED, "infinity", "ended" },
	{ "no end", DB_SESSION_ENDED, NULL, "ended" },
	/* enums */
	{ "the secondary tier", DB_SESSION_TIER, "secondary", NULL },
	{ "the bait tier", DB_SESSION_TIER, "bait", NULL },
	{ "an unknown tier", DB_SESSION_TIER, "gold", "tier" },
	{ "a tier with a trailing space", DB_SESSION_TIER, "primary ", "tier" },
	{ "a tier prefix", DB_SESSION_TIER, "prim", "tier" },
	{ "an empty tier", DB_SESSION_TIER, "", "tier" },
	{ "no tier", DB_SESSION_TIER, NULL, "tier" },
	{ "verdict reject", DB_SESSION_VERDICT, "reject", NULL },
	{ "verdict none (client left early)", DB_SESSION_VERDICT, "none", NULL },
	{ "an unknown verdict", DB_SESSION_VERDICT, "accept", "verdict" },
	{ "verdict in capitals", DB_SESSION_VERDICT, "RELAY", "verdict" },
	{ "no verdict", DB_SESSION_VERDICT, NULL, "verdict" },
	/* addresses */
	{ "an IPv6 client", DB_SESSION_CLIENT, "2001:db8::7", NULL },
	{ "a client that is no address", DB_SESSION_CLIENT, "300.1.1.1", "client" },
	{ "a client with SQL after it", DB_SESSION_CLIENT, "192.0.2.7'); DROP TABLE sessions; --", "client" },
	{ "a client network instead of an address", DB_SESSION_CLIENT, "192.0.2.0/24", "client" },
	{ "no client", DB_SESSION_CLIENT, NULL, "client" },
	{ "an IPv6 prefix", DB_SESSION_PREFIX, "2001:db8::/64", NULL },
	{ "a prefix beyond /32", DB_SESSION_PREFIX, "192.0.2.0/33", "prefix" },
	{ "a prefix that is text", DB_SESSION_PREFIX, "everything", "prefix" },
	{ "no prefix", DB_SESSION_PREFIX, NULL, "prefix" },
	/* booleans and numbers */
	{ "fcrdns false", DB_SESSION_FCRDNS, "false", NULL },
	{ "fcrdns yes", DB_SESSION_FCRDNS, "yes", "fcrdns" },
	{ "fcrdns 1", DB_SESSION_FCRDNS, "1", "fcrdns" },
	{ "no fcrdns", DB_SESSION_FCRDNS, NULL, "fcrdns" },
	{ "zero recipients", DB_SESSION_RCPT_COUNT, "0", NULL },
	{ "negative recipients", DB_SESSION_RCPT_COUNT, "-1", "rcpt_count" },
	{ "recipients beyond an integer", DB_SESSION_RCPT_COUNT, "2147483648", "rcpt_count" },
	{ "recipients at the integer's top", DB_SESSION_RCPT_COUNT, "2147483647", NULL },
	{ "messages with junk", DB_SESSION_MESSAGES, "12abc", "messages" },
	{ "messages with a plus sign", DB_SESSION_MESSAGES, "+5", "messages" },
	{ "messages empty", DB_SESSION_MESSAGES, "", "messages" },
	{ "messages with a space", DB_SESSION_MESSAGES, " 5", "messages" },
	{ "a negative DNSBL score", DB_SESSION_DNSBL_SCORE, "-3", NULL },
	{ "a DNSBL score beyond an integer", DB_SESSION_DNSBL_SCORE, "-2147483649", "dnsbl_score" },
	{ "bytes beyond a bigint", DB_SESSION_BYTES, "9223372036854775808", "bytes" },
	{ "bytes huge but a bigint", DB_SESSION_BYTES, "9223372036854775807", NULL },
	{ "a negative duration", DB_SESSION_DURATION_MS, "-5", "duration_ms" },
	{ "a duration in hex", DB_SESSION_DURATION_MS, "0x10", "duration_ms" },
	/* reasons: a text[] literal of names this mxtierd knows */
	{ "no reasons", DB_SESSION_REASONS, "{}", NULL },
	{ "two reasons", DB_SESSION_REASONS, "{dnsbl,no-rdns}", NULL },
	{ "every kind of name", DB_SESSION_REASONS, "{too-many-client-sessions,reputation-bad,bait-first-contact}", NULL },
	{ "an unknown reason", DB_SESSION_REASONS, "{dnsbl,owned}", "reasons" },
	{ "reasons not a literal", DB_SESSION_REASONS, "dnsbl", "reasons" },
	{ "quoted reasons", DB_SESSION_REASONS, "{\"dnsbl\"}", "reasons" },
	{ "a trailing comma", DB_SESSION_REASONS, "{dnsbl,}", "reasons" },
	{ "an empty element", DB_SESSION_REASONS, "{,dnsbl}", "reasons" },
	{ "a nested array", DB_SESSION_REASONS, "{{dnsbl}}", "reasons" },
	{ "an opening brace only", DB_SESSION_REASONS, "{", "reasons" },
	{ "no reasons at all", DB_SESSION_REASONS, NULL, "reasons" },
	/* text is text: bound as a parameter, never pasted, so quotes and SQL are stored as they are */
	{ "SQL in the HELO", DB_SESSION_HELO, "x');DROP TABLE sessions;--", NULL },
	{ "no HELO", DB_SESSION_HELO, NULL, NULL },
	{ "no backend reply", DB_SESSION_BACKEND_REPLY, NULL, NULL },
	{ "no rDNS domain", DB_SESSION_RDNS_DOMAIN, NULL, NULL },
};

static const struct row_case contact_cases[] = {
	{ "a good contact", -1, NULL, NULL },
	/* the key */
	{ "a prefix key", DB_CONTACT_KEY, "p:192.0.2.0/24", NULL },
	{ "a domain key", DB_CONTACT_KEY, "d:example.org", NULL },
	{ "no key", DB_CONTACT_KEY, NULL, "key" },
	{ "a key too short", DB_CONTACT_KEY, "a:", "key" },
	{ "a key of an unknown kind", DB_CONTACT_KEY, "x:192.0.2.7", "key" },
	{ "a key without its colon", DB_CONTACT_KEY, "a192.0.2.7", "key" },
	{ "an empty key", DB_CONTACT_KEY, "", "key" },
	/* contact and pending times: near now */
	{ "no contact time (a pass alone)", DB_CONTACT_PRIMARY, NULL, NULL },
	{ "a secondary contact a day ago", DB_CONTACT_SECONDARY, "@-86400", NULL },
	{ "a bait contact in a year", DB_CONTACT_BAIT, "@31536000", "bait" },
	{ "a primary contact in the year 9999", DB_CONTACT_PRIMARY, "9999-12-31 23:59:59+00", "primary" },
	{ "a pending retry now", DB_CONTACT_PENDING, "@0", NULL },
	{ "a pending retry in ten minutes", DB_CONTACT_PENDING, "@600", "pending" },
	{ "a pending retry three days ago", DB_CONTACT_PENDING, "@-259200", "pending" },
	{ "a pending retry that is no time", DB_CONTACT_PENDING, "soon", "pending" },
	/* clear_pending */
	{ "clear pending", DB_CONTACT_CLEAR_PENDING, "true", NULL },
	{ "clear pending missing", DB_CONTACT_CLEAR_PENDING, NULL, "clear_pending" },
	{ "clear pending as 1", DB_CONTACT_CLEAR_PENDING, "1", "clear_pending" },
	/* passes: at most pass_ttl (35 days) ahead */
	{ "a pass for a day", DB_CONTACT_PASS, "@86400", NULL },
	{ "a pass for exactly pass_ttl", DB_CONTACT_PASS, "@3024000", NULL },
	{ "a pass beyond pass_ttl and the slack", DB_CONTACT_PASS, "@3024400", "pass" },
	{ "a pass for a year", DB_CONTACT_PASS, "@31536000", "pass" },
	{ "a permanent pass (year 9999)", DB_CONTACT_PASS, "9999-12-31 23:59:59+00", "pass" },
	/* blocks: at most block_ttl_max (1 day) ahead */
	{ "a block for an hour", DB_CONTACT_BLOCK, "@3600", NULL },
	{ "a block for exactly block_ttl_max", DB_CONTACT_BLOCK, "@86400", NULL },
	{ "a block beyond block_ttl_max and the slack", DB_CONTACT_BLOCK, "@86701", "block" },
	{ "a block for two days", DB_CONTACT_BLOCK, "@172800", "block" },
	{ "a block for ever (year 9999)", DB_CONTACT_BLOCK, "9999-12-31 23:59:59+00", "block" },
	/* the block's reason */
	{ "a known block reason", DB_CONTACT_BLOCK_REASON, "bait", NULL },
	{ "an unknown block reason", DB_CONTACT_BLOCK_REASON, "revenge", "block_reason" },
	{ "a block reason list", DB_CONTACT_BLOCK_REASON, "{bait}", "block_reason" },
	{ "a block reason with SQL", DB_CONTACT_BLOCK_REASON, "bait'; DELETE FROM contacts; --", "block_reason" },
};

static const char *
case_value(const char *value)
{
	return value && value[0] == '@' ? at(strtoll(value + 1, NULL, 10) * SEC) : value;
}

static void
run_row_cases(enum db_row_kind kind, const struct row_case *cases, size_t n, void (*good)(const char **))
{
	for (size_t i = 0; i < n; i++) {
		const struct row_case *c = &cases[i];
		const char *v[DB_ROW_FIELDS_MAX];
		const char *got;

		good(v);
		if (c->field >= 0)
			v[c->field] = case_value(c->value);
		got = db_row_check(kind, v, &limits);
		EXPECT(c->label, (got == NULL) == (c->refused == NULL) && (got == NULL || strcmp(got, c->refused) == 0),
		    "refused %s, want %s", got ? got : "nothing", c->refused ? c->refused : "nothing");
	}
	EXPECT_ALL_PASSED();
}

static void
test_session_rows(void **state)
{
	run_row_cases(DB_ROW_SESSION, session_cases, sizeof(session_cases) / sizeof(session_cases[0]), good_session);
}

static void
test_contact_rows(void **state)
{
	run_row_cases(DB_ROW_CONTACT, contact_cases, sizeof(contact_cases) / sizeof(contact_cases[0]), good_contact);
}

/* Key length bounds need built strings: PRIV_DB_KEY_MAX - 1 bytes fit, PRIV_DB_KEY_MAX do not. */
static void
test_contact_key_length(void **state)
{
	const char *v[DB_ROW_FIELDS_MAX];
	char *longest = unit_repeat('x', PRIV_DB_KEY_MAX - 1), *over = unit_repeat('x', PRIV_DB_KEY_MAX);

	memcpy(longest, "d:", 2);
	memcpy(over, "d:", 2);
	good_contact(v);
	v[DB_CONTACT_KEY] = longest;
	assert_null(db_row_check(DB_ROW_CONTACT, v, &limits));
	v[DB_CONTACT_KEY] = over;
	assert_string_equal(db_row_check(DB_ROW_CONTACT, v, &limits), "key");
	free(longest);
	free(over);
}

/* ---- the wire: encode/decode ---- */

static void
test_round_trip(void **state)
{
	const char *in[DB_ROW_FIELDS_MAX], *out[DB_ROW_FIELDS_MAX];
	static char buf[DB_ROW_SESSION_WIRE_VALUES * (PRIV_DB_VALUE_MAX + 2)];
	int len;

	good_session(in);
	in[DB_SESSION_HELO] = NULL;
	in[DB_SESSION_APPLIANCE] = "never sent";	/* the engine's value for the parent's field stays home */
	len = db_row_encode(DB_ROW_SESSION, in, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(db_row_decode(DB_ROW_SESSION, buf, (size_t)len, out), 0);
	assert_null(memmem(buf, (size_t)len, "never sent", 10));
	assert_null(out[DB_SESSION_APPLIANCE]);
	assert_null(out[DB_SESSION_HELO]);
	for (int i = 0; i < DB_SESSION_FIELD_COUNT; i++)
		if (i != DB_SESSION_APPLIANCE && in[i])
			assert_string_equal(out[i], in[i]);
	assert_null(db_row_check(DB_ROW_SESSION, out, &limits));
	/* a session row is no contact: the value count differs */
	assert_int_equal(db_row_decode(DB_ROW_CONTACT, buf, (size_t)len, out), -1);
	/* a buffer too small is refused, never overrun */
	assert_int_equal(db_row_encode(DB_ROW_SESSION, in, buf, 40), -1);
}

struct wire_case {
	const char	*label;
	size_t		 helo_len;	/* a HELO of this many bytes */
	int		 values;	/* values on the wire */
	int		 rc;
};

static const struct wire_case wire_cases[] = {
	{ "a HELO at the value bound", PRIV_DB_VALUE_MAX, DB_ROW_SESSION_WIRE_VALUES, 0 },
	{ "a HELO over the value bound", PRIV_DB_VALUE_MAX + 1, DB_ROW_SESSION_WIRE_VALUES, -1 },
	{ "one value short", 10, DB_ROW_SESSION_WIRE_VALUES - 1, -1 },
	{ "one value more", 10, DB_ROW_SESSION_WIRE_VALUES + 1, -1 },
	{ "the appliance sent along (all fields)", 10, DB_SESSION_FIELD_COUNT, -1 },
};

static void
test_wire_bounds(void **state)
{
	for (size_t i = 0; i < sizeof(wire_cases) / sizeof(wire_cases[0]); i++) {
		const struct wire_case *c = &wire_cases[i];
		const char *in[DB_ROW_FIELDS_MAX + 1], *wire[DB_ROW_FIELDS_MAX + 1], *out[DB_ROW_FIELDS_MAX];
		static char buf[(DB_ROW_FIELDS_MAX + 1) * (PRIV_DB_VALUE_MAX + 8)];
		char *helo = unit_repeat('h', c->helo_len);
		int n = 0, len;

		good_session(in);
		in[DB_SESSION_HELO] = helo;
		for (int f = 0; f < DB_SESSION_FIELD_COUNT; f++)
			if (f != DB_SESSION_APPLIANCE)
				wire[n++] = in[f];
		while (n < c->values)
			wire[n++] = "extra";
		len = priv_strings_encode(buf, sizeof(buf), c->values, wire);
		assert_true(len > 0);
		EXPECT(c->label, db_row_decode(DB_ROW_SESSION, buf, (size_t)len, out) == c->rc, "want %d", c->rc);
		free(helo);
	}
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables_match_the_wire),
		cmocka_unit_test(test_statements),
		cmocka_unit_test(test_time_plausible),
		cmocka_unit_test(test_session_rows),
		cmocka_unit_test(test_contact_rows),
		cmocka_unit_test(test_contact_key_length),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_wire_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
