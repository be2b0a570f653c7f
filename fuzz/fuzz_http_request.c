/*
 * fuzz_http_request.c - libFuzzer harness for what the HTTP process takes
 * from a browser and what the privileged side takes from the HTTP process
 * (proxy/http/http_request.c, http_json.c): a POST body's flat JSON object,
 * the request line built from it, and JSON strings built from wire bytes.
 *
 * Input: byte 0 picks the target, the rest is its bytes.
 *   even: a request line (the privileged side's view: anything a
 *         compromised HTTP process could send)
 *   odd:  a POST body, whose action/list/address/ttl become a request line
 *         as api_listings_post builds it
 *
 * Invariants checked (abort on violation):
 *  - a request line that parses gives a control line of one line, without
 *    CR, LF or NUL, naming only status, listeners, a list, or block/allow
 *    add/del of the parsed address; formatting the request and parsing it
 *    again gives the same request;
 *  - every value json_object_get returns is NUL-terminated within its cap;
 *  - json_string of any bytes holds no raw control byte, '<', '>' or '&'.
 *
 * Seeds: fuzz/corpus/http_request/.
 */
#include <event2/buffer.h>
#include <string.h>

#include "fuzz.h"
#include "http_internal.h"

static void
check_line(const char *line)
{
	struct http_request rq, again;
	char err[128], control[HTTP_LINE_MAX + 1], wire[HTTP_LINE_MAX + 1];

	if (http_request_parse(line, &rq, err, sizeof(err)) == -1)
		return;
	FUZZ_CHECK(http_request_control_line(&rq, control, sizeof(control)) == 0, "no control line for \"%s\"", line);
	FUZZ_CHECK(strpbrk(control, "\r\n") == NULL, "control line with a line end: \"%s\"", control);
	FUZZ_CHECK(strcmp(control, "status") == 0 || strcmp(control, "listeners") == 0 ||
	    strcmp(control, "block list") == 0 || strcmp(control, "allow list") == 0 ||
	    ((strncmp(control, "block ", 6) == 0 || strncmp(control, "allow ", 6) == 0) && strstr(control, rq.address)),
	    "unexpected control line \"%s\"", control);
	FUZZ_CHECK(http_request_format(&rq, wire, sizeof(wire)) == 0, "cannot format \"%s\"", line);
	FUZZ_CHECK(http_request_parse(wire, &again, err, sizeof(err)) == 0 && memcmp(&rq, &again, sizeof(rq)) == 0,
	    "\"%s\" formatted as \"%s\" parses differently", line, wire);
}

static void
check_json_string(const char *s, size_t n)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	const unsigned char *out;

	json_string_n(b, s, n);
	len = evbuffer_get_length(b);
	out = evbuffer_pullup(b, -1);
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK(out[i] >= 0x20 && out[i] != 0x7f && out[i] != '<' && out[i] != '>' && out[i] != '&',
		    "raw byte 0x%02x in a JSON string", out[i]);
	evbuffer_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[HTTP_BODY_MAX + 1];

	if (size < 1 || size - 1 > HTTP_BODY_MAX)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if ((data[0] & 1) == 0) {
		check_line(text);
		check_json_string(text, size - 1);
		return 0;
	}
	{
		static const char *const keys[] = { "action", "list", "address", "ttl" };
		char values[4][64], line[HTTP_LINE_MAX + 64];

		for (size_t k = 0; k < 4; k++) {
			int rc = json_object_get(text, size - 1, keys[k], values[k], sizeof(values[k]));

			FUZZ_CHECK(rc >= -1 && rc <= 1, "rc %d", rc);
			if (rc != 1)
				values[k][0] = '\0';
			FUZZ_CHECK(memchr(values[k], '\0', sizeof(values[k])) != NULL, "value not terminated");
		}
		snprintf(line, sizeof(line), "listing fuzz %s %s %s%s%s", values[1], values[0], values[2],
		    values[3][0] ? " " : "", values[3]);
		check_line(line);
	}
	return 0;
}
