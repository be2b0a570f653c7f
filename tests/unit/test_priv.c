/*
 * test_priv.c - the privilege-separation channel's own checks: the value
 * list codec (every malformed shape refused), the redaction of the
 * database value in the config text the engine gets, and the dispatch
 * (a message of the wrong direction or length never reaches a handler),
 * through the one-process channel, which is the same code as the split's.
 */
#include "unit.h"

#include <event2/event.h>

#include "config.h"
#include "daemon.h"
#include "kernel.h"
#include "netaddr.h"
#include "priv.h"

/* ---- priv_strings_decode ---- */

struct decode_case {
	const char	*label;
	const char	*bytes;
	size_t		 len;
	int		 n;
	size_t		 value_max;
	int		 rc;
};

static const struct decode_case decode_cases[] = {
	{ "two values", "\001ab\000\001c\000", 7, 2, 10, 0 },
	{ "a NULL and a value", "\000\001c\000", 4, 2, 10, 0 },
	{ "empty string is a value", "\001\000", 2, 1, 10, 0 },
	{ "too few values", "\001ab\000", 4, 2, 10, -1 },
	{ "trailing bytes", "\001ab\000x", 5, 1, 10, -1 },
	{ "missing NUL at the end", "\001abc", 4, 1, 10, -1 },
	{ "bad tag", "\002ab\000", 4, 1, 10, -1 },
	{ "value over its bound", "\001abcdef\000", 8, 1, 5, -1 },
	{ "value at its bound", "\001abcde\000", 7, 1, 5, 0 },
	{ "nothing at all", "", 0, 1, 10, -1 },
};

static void
test_strings_decode(void **state)
{
	for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++) {
		const struct decode_case *c = &decode_cases[i];
		const char *values[4];
		int rc = priv_strings_decode(c->bytes, c->len, c->n, values, c->value_max);

		EXPECT(c->label, rc == c->rc, "rc %d, want %d", rc, c->rc);
	}
	EXPECT_ALL_PASSED();
}

static void
test_strings_round_trip(void **state)
{
	const char *in[4] = { "session", NULL, "", "h\xc3\xa9llo" };
	const char *out[4];
	char buf[64];
	int len = priv_strings_encode(buf, sizeof(buf), 4, in);

	assert_true(len > 0);
	assert_int_equal(priv_strings_decode(buf, (size_t)len, 4, out, 100), 0);
	assert_string_equal(out[0], "session");
	assert_null(out[1]);
	assert_string_equal(out[2], "");
	assert_string_equal(out[3], in[3]);
	/* a buffer too small is refused, never overrun */
	assert_int_equal(priv_strings_encode(buf, 5, 4, in), -1);
}

/* ---- priv_redact_database ---- */

struct redact_case {
	const char	*label;
	const char	*text;
	const char	*want;
};

static const struct redact_case redact_cases[] = {
	{ "plain", "database = host=db password=s3cret\n", "database = " PRIV_DATABASE_REDACTED "\n" },
	{ "indented, no spaces", "  database=password=s3cret\n", "database = " PRIV_DATABASE_REDACTED "\n" },
	{ "tab before =", "database\t= x\n", "database = " PRIV_DATABASE_REDACTED "\n" },
	{ "last line without newline", "listen_port = 25\ndatabase = x", "listen_port = 25\ndatabase = "
	    PRIV_DATABASE_REDACTED "\n" },
	{ "commented out stays", "# database = x\n", "# database = x\n" },
	{ "other keys stay", "appliance_name = a\nlisten_port = 25\n", "appliance_name = a\nlisten_port = 25\n" },
	{ "a longer key is not database", "database_x = 1\n", "database_x = 1\n" },
	{ "line numbers kept", "a = 1\ndatabase = x\nb = 2\n", "a = 1\ndatabase = " PRIV_DATABASE_REDACTED "\nb = 2\n" },
	{ "the dashboard's conninfo too", "dashboard_database = host=db user=dash\n",
	    "dashboard_database = " PRIV_DATABASE_REDACTED "\n" },
	{ "dashboard_dir stays", "dashboard_dir = /srv/dash\n", "dashboard_dir = /srv/dash\n" },
};

static void
test_redact_database(void **state)
{
	for (size_t i = 0; i < sizeof(redact_cases) / sizeof(redact_cases[0]); i++) {
		const struct redact_case *c = &redact_cases[i];
		char *got = priv_redact_database(c->text);

		EXPECT(c->label, strcmp(got, c->want) == 0, "got \"%s\"", got);
		EXPECT(c->label, strstr(got, "s3cret") == NULL, "secret left in \"%s\"", got);
		free(got);
	}
	EXPECT_ALL_PASSED();
}

/* ---- dispatch: direction and length are checked before any handler runs ---- */

static int heartbeats, rows;

static void
heartbeat_seen(const void *payload, size_t len)
{
	heartbeats++;
}

static void
row_seen(const void *payload, size_t len)
{
	rows++;
}

static void
run_loop(void)
{
	for (int i = 0; i < 10; i++)
		event_base_loop(mxd->base, EVLOOP_NONBLOCK);
}

static void
test_dispatch_checks(void **state)
{
	char err[256];
	struct priv_db_heartbeat hb = { 1, 0 };
	struct priv_db_row row;

	mxd->config = config_load_string("t.conf", "primary_ips = 127.0.0.10\n", err, sizeof(err));
	assert_non_null(mxd->config);
	mxd->base = event_base_new();
	assert_int_equal(priv_engine_start(), 0);
	priv_on(PRIV_MSG_DB_HEARTBEAT, heartbeat_seen);
	priv_on(PRIV_MSG_DB_ROW, row_seen);
	memset(&row, 0, sizeof(row));

	assert_int_equal(priv_to_privileged(PRIV_MSG_DB_HEARTBEAT, &hb, sizeof(hb)), 0);
	run_loop();
	assert_int_equal(heartbeats, 1);
	/* too short, too long: refused at the privileged end */
	priv_to_privileged(PRIV_MSG_DB_HEARTBEAT, &hb, sizeof(hb) - 1);
	priv_to_privileged(PRIV_MSG_DB_HEARTBEAT, &row, sizeof(row));
	/* a message only the privileged side may send, sent by the engine: refused */
	priv_to_privileged(PRIV_MSG_DB_ROW, &row, sizeof(row));
	/* a type that does not exist */
	priv_to_privileged((enum priv_msg_type)(PRIV_MSG_COUNT + 3), &hb, sizeof(hb));
	run_loop();
	assert_int_equal(heartbeats, 1);
	assert_int_equal(rows, 0);
	/* the right direction still works afterwards */
	assert_int_equal(priv_to_engine(PRIV_MSG_DB_ROW, &row, sizeof(row)), 0);
	run_loop();
	assert_int_equal(rows, 1);
	/* over the message bound: not even queued */
	{
		static char big[PRIV_MSG_MAX + 1];

		assert_int_equal(priv_to_privileged(PRIV_MSG_DB_SESSION, big, sizeof(big)), -1);
	}
	priv_local_stop();
	priv_engine_stop();
	event_base_free(mxd->base);
	config_unref(mxd->config);
}

/* ---- bundles: the records of one datagram, each checked like a datagram ---- */

/* put_record - a record (header and payload) at buf + *off. */
static void
put_record(char *buf, size_t *off, uint32_t type, uint32_t len, const void *payload)
{
	uint32_t hdr[2] = { type, len };

	memcpy(buf + *off, hdr, sizeof(hdr));
	memcpy(buf + *off + sizeof(hdr), payload, len);
	*off += sizeof(hdr) + len;
}

static void
test_bundles(void **state)
{
	char err[256];
	struct priv_db_heartbeat hb = { 1, 0 };
	struct priv_db_row row;
	static char hostile[PRIV_MSG_MAX - 8];
	size_t off = 0;
	uint32_t tail[2] = { PRIV_MSG_DB_HEARTBEAT, PRIV_MSG_MAX };

	mxd->config = config_load_string("t.conf", "primary_ips = 127.0.0.10\n", err, sizeof(err));
	assert_non_null(mxd->config);
	mxd->base = event_base_new();
	assert_int_equal(priv_engine_start(), 0);
	priv_on(PRIV_MSG_DB_HEARTBEAT, heartbeat_seen);
	priv_on(PRIV_MSG_DB_ROW, row_seen);
	memset(&row, 0, sizeof(row));
	heartbeats = rows = 0;

	/* A thousand messages in one loop turn: all arrive (in a few bundles). */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(priv_to_privileged(PRIV_MSG_DB_HEARTBEAT, &hb, sizeof(hb)), 0);
	run_loop();
	assert_int_equal(heartbeats, 1000);

	/*
	 * A bundle a hostile engine made (too big to be bundled itself, so it
	 * arrives as one datagram): the good records run, the others are
	 * refused one by one, and a record running past the end stops it.
	 */
	heartbeats = 0;
	put_record(hostile, &off, PRIV_MSG_DB_HEARTBEAT, sizeof(hb), &hb);	/* good */
	put_record(hostile, &off, PRIV_MSG_DB_ROW, sizeof(row), &row);		/* wrong direction */
	put_record(hostile, &off, PRIV_MSG_DB_HEARTBEAT, sizeof(hb) - 1, &hb);	/* too short */
	put_record(hostile, &off, PRIV_MSG_BUNDLE, 16, (uint32_t[]){ PRIV_MSG_DB_HEARTBEAT, 8, 1, 0 });	/* nested */
	put_record(hostile, &off, PRIV_MSG_DB_HEARTBEAT, sizeof(hb), &hb);	/* good */
	memcpy(hostile + off, tail, sizeof(tail));				/* longer than what is left */
	assert_int_equal(priv_to_privileged(PRIV_MSG_BUNDLE, hostile, sizeof(hostile)), 0);
	run_loop();
	assert_int_equal(heartbeats, 2);
	assert_int_equal(rows, 0);
	/* and the channel still works */
	assert_int_equal(priv_to_privileged(PRIV_MSG_DB_HEARTBEAT, &hb, sizeof(hb)), 0);
	run_loop();
	assert_int_equal(heartbeats, 3);
	priv_local_stop();
	priv_engine_stop();
	event_base_free(mxd->base);
	config_unref(mxd->config);
}

/* ---- kernel_priv_excluded: the parent checks the network that would be written ---- */

struct excluded_case {
	const char	*label;
	const char	*backend;
	const char	*addr;
	unsigned	 prefix_len;
	bool		 excluded;
};

#define B4 "10.0.0.3:25"
#define B6 "[2001:db8:5::1]:25"

static const struct excluded_case excluded_cases[] = {
	{ "an internet address", B4, "192.0.2.99", 32, false },
	{ "the backend", B4, "10.0.0.3", 32, true },
	{ "the backend as mapped IPv6", B4, "::ffff:10.0.0.3", 128, true },
	{ "the backend inside an unmasked /31", B4, "10.0.0.3", 31, true },
	{ "the backend's neighbour in a /31", B4, "10.0.0.2", 31, true },
	{ "the backend's neighbour alone", B4, "10.0.0.2", 32, false },
	{ "a tier address", B4, "198.51.100.10", 32, true },
	{ "a tier address as mapped IPv6", B4, "::ffff:198.51.100.10", 128, true },
	{ "loopback", B4, "127.0.0.5", 32, true },
	{ "IPv6 loopback", B6, "::1", 128, true },
	{ "an IPv6 client in the backend's /64", B6, "2001:db8:5::99", 64, true },
	{ "an IPv6 client in another /64", B6, "2001:db8:6::99", 64, false },
	{ "a mapped prefix shorter than /96", B4, "::ffff:192.0.2.99", 90, true },
	{ "IPv4 prefix beyond 32", B4, "192.0.2.99", 40, true },
};

static void
test_kernel_exclusions(void **state)
{
	for (size_t i = 0; i < sizeof(excluded_cases) / sizeof(excluded_cases[0]); i++) {
		const struct excluded_case *c = &excluded_cases[i];
		char text[256], err[256];
		struct netaddr a;

		snprintf(text, sizeof(text), "primary_ips = 198.51.100.10\nbackend = %s\n", c->backend);
		mxd->config = config_load_string("t.conf", text, err, sizeof(err));
		assert_non_null(mxd->config);
		assert_int_equal(netaddr_parse(c->addr, &a), 0);
		EXPECT(c->label, kernel_priv_excluded(&a, c->prefix_len) == c->excluded, "got %d", !c->excluded);
		config_unref(mxd->config);
		mxd->config = NULL;
	}
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings_decode),
		cmocka_unit_test(test_strings_round_trip),
		cmocka_unit_test(test_redact_database),
		cmocka_unit_test(test_dispatch_checks),
		cmocka_unit_test(test_bundles),
		cmocka_unit_test(test_kernel_exclusions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
