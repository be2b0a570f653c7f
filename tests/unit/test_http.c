/*
 * test_http.c - the HTTP process's parsers: request lines to the
 * privileged side (every refusal labelled, and a round trip through
 * format and parse), the POST body's flat JSON object, JSON string
 * escaping, and status lines into /metrics families.
 */
#include "unit.h"

#include <event2/buffer.h>

#include "http_internal.h"

struct request_case {
	const char	*label;
	const char	*line;
	int		 rc;
	const char	*control;	/* what the control socket would be asked */
};

static const struct request_case request_cases[] = {
	{ "status", "status", 0, "status" },
	{ "listeners", "listeners", 0, "listeners" },
	{ "block list", "list block", 0, "block list" },
	{ "allow list", "list allow", 0, "allow list" },
	{ "block add with ttl", "listing alice block add 192.0.2.7 1h", 0, "block add 192.0.2.7 1h" },
	{ "allow del", "listing bob allow del 2001:db8::1", 0, "allow del 2001:db8::1" },
	{ "mapped IPv4 normalised", "listing alice block add ::ffff:192.0.2.9", 0, "block add 192.0.2.9" },
	{ "unknown verb", "reload", -1, NULL },
	{ "list of nothing", "list trust", -1, NULL },
	{ "bad user", "listing al;ce block add 192.0.2.7", -1, NULL },
	{ "bad list", "listing alice trust add 192.0.2.7", -1, NULL },
	{ "bad action", "listing alice block flush 192.0.2.7", -1, NULL },
	{ "network, not an address", "listing alice block add 192.0.2.0/24", -1, NULL },
	{ "ttl on del", "listing alice block del 192.0.2.7 1h", -1, NULL },
	{ "ttl too short", "listing alice block add 192.0.2.7 0s", -1, NULL },
	{ "ttl too long", "listing alice block add 192.0.2.7 400d", -1, NULL },
	{ "extra words", "listing alice block add 192.0.2.7 1h status", -1, NULL },
	{ "newline smuggled", "status\nblock add 192.0.2.7", -1, NULL },
	{ "empty", "", -1, NULL },
};

static void
test_request_table(void **state)
{
	for (size_t i = 0; i < sizeof(request_cases) / sizeof(request_cases[0]); i++) {
		const struct request_case *c = &request_cases[i];
		struct http_request rq, again;
		char err[128] = "", control[HTTP_LINE_MAX + 1] = "", line[HTTP_LINE_MAX + 1];
		int rc = http_request_parse(c->line, &rq, err, sizeof(err));

		EXPECT(c->label, rc == c->rc, "rc %d, want %d (%s)", rc, c->rc, err);
		if (rc != 0 || c->rc != 0)
			continue;
		EXPECT(c->label, http_request_control_line(&rq, control, sizeof(control)) == 0 &&
		    strcmp(control, c->control) == 0, "control line \"%s\", want \"%s\"", control, c->control);
		/* Round trip: the line the HTTP side would send parses back to the same request. */
		EXPECT(c->label, http_request_format(&rq, line, sizeof(line)) == 0 &&
		    http_request_parse(line, &again, err, sizeof(err)) == 0 && memcmp(&rq, &again, sizeof(rq)) == 0,
		    "round trip through \"%s\" changed the request", line);
	}
	EXPECT_ALL_PASSED();
}

struct json_case {
	const char	*label;
	const char	*body;
	const char	*key;
	int		 rc;
	const char	*value;
};

static const struct json_case json_cases[] = {
	{ "string", "{\"action\":\"add\",\"list\":\"block\"}", "list", 1, "block" },
	{ "spaces", " { \"a\" : \"x\" , \"b\" : \"y\" } ", "b", 1, "y" },
	{ "number", "{\"ttl\":3600}", "ttl", 1, "3600" },
	{ "absent", "{\"a\":\"x\"}", "ttl", 0, NULL },
	{ "empty object", "{}", "a", 0, NULL },
	{ "escaped quote", "{\"a\":\"x\\\"y\"}", "a", 1, "x\"y" },
	{ "last one wins", "{\"a\":\"x\",\"a\":\"y\"}", "a", 1, "y" },
	{ "not an object", "[\"a\"]", "a", -1, NULL },
	{ "unterminated", "{\"a\":\"x", "a", -1, NULL },
	{ "nested object refused", "{\"a\":{\"b\":1}}", "a", -1, NULL },
	{ "unicode escape refused", "{\"a\":\"\\u0041\"}", "a", -1, NULL },
	{ "control byte refused", "{\"a\":\"x\ny\"}", "a", -1, NULL },
	{ "trailing garbage", "{\"a\":\"x\"} x", "a", -1, NULL },
};

static void
test_json_object(void **state)
{
	for (size_t i = 0; i < sizeof(json_cases) / sizeof(json_cases[0]); i++) {
		const struct json_case *c = &json_cases[i];
		char value[64] = "";
		int rc = json_object_get(c->body, strlen(c->body), c->key, value, sizeof(value));

		EXPECT(c->label, rc == c->rc, "rc %d, want %d", rc, c->rc);
		if (rc == 1 && c->value)
			EXPECT(c->label, strcmp(value, c->value) == 0, "value \"%s\", want \"%s\"", value, c->value);
	}
	EXPECT_ALL_PASSED();
}

static void
test_json_string(void **state)
{
	static const struct {
		const char	*label, *in, *out;
	} cases[] = {
		{ "plain", "abc", "\"abc\"" },
		{ "quote and backslash", "a\"b\\c", "\"a\\\"b\\\\c\"" },
		{ "markup escaped", "<script>&", "\"\\u003cscript\\u003e\\u0026\"" },
		{ "control bytes", "a\r\n\x01", "\"a\\u000d\\u000a\\u0001\"" },
		{ "valid UTF-8 kept", "\xc3\xa9t\xc3\xa9", "\"\xc3\xa9t\xc3\xa9\"" },
		{ "invalid UTF-8 replaced", "a\xff" "b", "\"a\\ufffdb\"" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct evbuffer *b = evbuffer_new();
		char out[128] = "";

		json_string(b, cases[i].in);
		evbuffer_remove(b, out, sizeof(out) - 1);
		EXPECT(cases[i].label, strcmp(out, cases[i].out) == 0, "got %s, want %s", out, cases[i].out);
		evbuffer_free(b);
	}
	EXPECT_ALL_PASSED();
}

static void
test_status_to_metrics(void **state)
{
	const char *answer = "ok\nsessions_active 2\nsessions_total 9\nbackend up\nshedding no\n"
	    "tier_verdict_primary_relay 5\nreason_no-rdns 3\nkernel_set_elements_block4 7\n"
	    "backend_reply_le_ms_1 1\nbackend_reply_le_ms_inf 4\nbackend_reply_count 4\nbackend_reply_sum_us 2500000\n"
	    "dns_queries 11\nweird-name 1\n";
	struct status st;
	struct evbuffer *b = evbuffer_new();
	char *text;
	size_t n;

	assert_int_equal(status_parse(&st, "error: no\n"), -1);
	assert_int_equal(status_parse(&st, answer), 0);
	assert_int_equal(status_num(&st, "sessions_total"), 9);
	metrics_write(b, &st);
	n = evbuffer_get_length(b);
	text = calloc(1, n + 1);
	evbuffer_remove(b, text, n);
	static const char *const want[] = {
		"mxtier_sessions_total{tier=\"primary\",verdict=\"relay\"} 5\n",
		"mxtier_sessions_total{tier=\"bait\",verdict=\"reject\"} 0\n",
		"mxtier_session_reasons_total{reason=\"no-rdns\"} 3\n",
		"mxtier_kernel_set_elements{set=\"block4\"} 7\n",
		"mxtier_backend_reply_seconds_bucket{le=\"0.001\"} 1\n",
		"mxtier_backend_reply_seconds_bucket{le=\"+Inf\"} 4\n",
		"mxtier_backend_reply_seconds_sum 2.500000\n",
		"mxtier_backend_reply_seconds_count 4\n",
		"mxtier_backend_up 1\n", "mxtier_shedding 0\n", "mxtier_sessions_open 2\n",
		"mxtier_connections_total 9\n", "# TYPE mxtier_dns_queries_total counter\nmxtier_dns_queries_total 11\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		EXPECT(want[i], strstr(text, want[i]) != NULL, "missing from:\n%s", text);
	EXPECT("odd names left out", strstr(text, "weird") == NULL, "a name outside [a-z0-9_] was printed");
	free(text);
	evbuffer_free(b);
	status_clear(&st);
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_table),
		cmocka_unit_test(test_json_object),
		cmocka_unit_test(test_json_string),
		cmocka_unit_test(test_status_to_metrics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
