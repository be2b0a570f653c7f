/*
 * test_client_info.c - announcing the client to the backend: xtext, the
 * XCLIENT line (a hostile HELO can add neither a line nor an attribute),
 * PROXY v1, and PROXY v2 decoded back in the test (round trip).
 */
#include "unit.h"

#include <arpa/inet.h>
#include <stdlib.h>

#include "client_info.h"
#include "netaddr.h"

/* xtext_decode - RFC 3461 decoding for the round trip; -1 on a malformed input. */
static int
xtext_decode(const char *src, char *dst, size_t dstlen)
{
	size_t o = 0;

	for (const char *p = src; *p; p++) {
		unsigned v;

		if (o + 1 >= dstlen)
			return -1;
		if (*p == '+') {
			if (sscanf(p + 1, "%2X", &v) != 1 || p[1] == '\0' || p[2] == '\0')
				return -1;
			if (strchr("0123456789ABCDEF", p[1]) == NULL || strchr("0123456789ABCDEF", p[2]) == NULL)
				return -1;
			dst[o++] = (char)v;
			p += 2;
		} else if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || *p == '=') {
			return -1;
		} else {
			dst[o++] = *p;
		}
	}
	dst[o] = '\0';
	return 0;
}

/* ---- xtext ---- */

struct xtext_case {
	const char	*label;
	const char	*in;
	const char	*out;
};

static const struct xtext_case xtext_cases[] = {
	{ "plain name", "mx.example.org", "mx.example.org" },
	{ "empty", "", "" },
	{ "plus", "a+b", "a+2Bb" },
	{ "equals", "a=b", "a+3Db" },
	{ "space", "a b", "a+20b" },
	{ "CR", "a\rb", "a+0Db" },
	{ "LF", "a\nb", "a+0Ab" },
	{ "CRLF and a command", "x\r\nQUIT", "x+0D+0AQUIT" },
	{ "tab", "\t", "+09" },
	{ "DEL", "\x7f", "+7F" },
	{ "8-bit UTF-8", "\xc3\xa9", "+C3+A9" },
	{ "0xff", "\xff", "+FF" },
	{ "printable specials kept", "!\"#$%&'()*,-./:;<>?@[\\]^_`{|}~", "!\"#$%&'()*,-./:;<>?@[\\]^_`{|}~" },
	{ "address literal kept", "[192.0.2.1]", "[192.0.2.1]" },
	{ "attribute injection", "x NAME=evil", "x+20NAME+3Devil" },
};

static void
test_xtext(void **state)
{
	for (size_t i = 0; i < sizeof(xtext_cases) / sizeof(xtext_cases[0]); i++) {
		const struct xtext_case *tc = &xtext_cases[i];
		char out[256], back[256];
		size_t n = client_info_xtext(out, sizeof(out), tc->in);

		EXPECT(tc->label, n == strlen(tc->out), "length %zu, expected %zu", n, strlen(tc->out));
		EXPECT(tc->label, strcmp(out, tc->out) == 0, "\"%s\", expected \"%s\"", unit_str(out), unit_str(tc->out));
		EXPECT(tc->label, xtext_decode(out, back, sizeof(back)) == 0 && strcmp(back, tc->in) == 0,
		    "does not decode back to the input");
	}

	/* Every byte value but NUL: encodes to plain xtext and decodes back. */
	{
		char all[256], out[3 * 256 + 1], back[256];

		for (int b = 1; b < 256; b++)
			all[b - 1] = (char)b;
		all[255] = '\0';
		EXPECT("every byte 1..255", client_info_xtext(out, sizeof(out), all) > 0, "refused");
		for (const char *p = out; *p; p++)
			EXPECT("every byte 1..255", (unsigned char)*p >= 33 && (unsigned char)*p <= 126 && *p != '=',
			    "unsafe byte 0x%02x in xtext", (unsigned char)*p);
		EXPECT("every byte 1..255", xtext_decode(out, back, sizeof(back)) == 0 && strcmp(back, all) == 0,
		    "round trip differs");
	}

	/* Too small a buffer: 0, never a truncated value. */
	{
		char out[6];

		EXPECT("fits exactly", client_info_xtext(out, sizeof(out), "abcde") == 5, "refused");
		EXPECT("one octet short", client_info_xtext(out, sizeof(out), "abcdef") == 0, "truncated");
		EXPECT("escape does not fit", client_info_xtext(out, sizeof(out), "abc d") == 0, "truncated");
		EXPECT("escape just fits", client_info_xtext(out, sizeof(out), "a d") == 5 && strcmp(out, "a+20d") == 0,
		    "wrong");
	}
	EXPECT_ALL_PASSED();
}

/* ---- identities ---- */

static struct client_identity
identity(const char *client, uint16_t cport, const char *server, uint16_t sport, const char *helo, bool esmtp)
{
	struct client_identity id;

	memset(&id, 0, sizeof(id));
	if (client)
		assert_int_equal(netaddr_parse(client, &id.client), 0);
	if (server)
		assert_int_equal(netaddr_parse(server, &id.server), 0);
	id.client_port = cport;
	id.server_port = sport;
	id.helo = helo;
	id.esmtp = esmtp;
	return id;
}

/* ---- XCLIENT ---- */

struct xclient_case {
	const char	*label;
	const char	*client;
	const char	*helo;		/* NULL: none yet */
	bool		 esmtp;
	const char	*addr;		/* expected ADDR= value */
	const char	*helo_attr;	/* expected HELO= value */
};

static const struct xclient_case xclient_cases[] = {
	{ "IPv4, plain HELO", "192.0.2.1", "mx.example.org", true, "192.0.2.1", "mx.example.org" },
	{ "IPv6, plain HELO", "2001:db8::1", "mx.example.org", true, "IPV6:2001:db8::1", "mx.example.org" },
	{ "no HELO yet", "192.0.2.1", NULL, false, "192.0.2.1", "[UNAVAILABLE]" },
	{ "empty HELO", "192.0.2.1", "", false, "192.0.2.1", "[UNAVAILABLE]" },
	{ "hostile HELO: CRLF and a command", "192.0.2.1", "x\r\nRCPT TO:<victim@example.org>", true, "192.0.2.1",
	    "x+0D+0ARCPT+20TO:<victim@example.org>" },
	{ "hostile HELO: second attribute", "2001:db8::1", "x ADDR=127.0.0.1", true, "IPV6:2001:db8::1",
	    "x+20ADDR+3D127.0.0.1" },
	{ "hostile HELO: bare LF", "2001:db8::1", "x\nQUIT", false, "IPV6:2001:db8::1", "x+0AQUIT" },
	{ "hostile HELO: bare CR", "192.0.2.1", "x\rQUIT", false, "192.0.2.1", "x+0DQUIT" },
	{ "hostile HELO: plus and equals", "192.0.2.1", "a+b=c", true, "192.0.2.1", "a+2Bb+3Dc" },
	{ "hostile HELO: 8-bit", "192.0.2.1", "\xff\xfe", true, "192.0.2.1", "+FF+FE" },
};

static void
check_xclient_line(const char *label, const char *line, size_t n, const struct xclient_case *tc)
{
	static const char *const attrs[] = { "ADDR=", "PORT=", "NAME=", "HELO=", "PROTO=" };
	char copy[4096], *save = NULL, *tok;
	size_t ntok = 0;
	bool seen[5] = { false };

	EXPECT(label, n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n', "does not end in CRLF");
	EXPECT(label, memchr(line, '\r', n) == line + n - 2, "a CR before the end: \"%s\"", unit_escape(line, n));
	EXPECT(label, memchr(line, '\n', n) == line + n - 1, "an LF before the end: \"%s\"", unit_escape(line, n));
	EXPECT(label, memchr(line, '\0', n) == NULL, "NUL inside");
	EXPECT(label, strncmp(line, "XCLIENT ", 8) == 0, "does not start with XCLIENT");
	assert_true(n < sizeof(copy));
	memcpy(copy, line, n - 2);
	copy[n - 2] = '\0';
	EXPECT(label, strstr(copy, "  ") == NULL, "double blank");
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save), ntok++) {
		if (ntok == 0)
			continue;
		bool known = false;

		for (size_t a = 0; a < 5; a++) {
			if (strncmp(tok, attrs[a], strlen(attrs[a])) != 0)
				continue;
			known = true;
			EXPECT(label, !seen[a], "attribute %s twice", attrs[a]);
			seen[a] = true;
			if (a == 0)
				EXPECT(label, strcmp(tok + 5, tc->addr) == 0, "ADDR=%s, expected %s", tok + 5, tc->addr);
			if (a == 1)
				EXPECT(label, strcmp(tok + 5, "40312") == 0, "PORT=%s", tok + 5);
			if (a == 3) {
				char back[1024];

				EXPECT(label, strcmp(tok + 5, tc->helo_attr) == 0, "HELO=%s, expected %s", unit_str(tok + 5),
				    tc->helo_attr);
				if (tc->helo && tc->helo[0])
					EXPECT(label, xtext_decode(tok + 5, back, sizeof(back)) == 0 &&
					    strcmp(back, tc->helo) == 0, "HELO does not decode to the client's");
			}
			if (a == 4)
				EXPECT(label, strcmp(tok + 6, tc->esmtp ? "ESMTP" : "SMTP") == 0, "PROTO=%s", tok + 6);
		}
		EXPECT(label, known, "unexpected token \"%s\"", unit_str(tok));
	}
	EXPECT(label, ntok == 6, "%zu tokens, expected XCLIENT and 5 attributes", ntok);
	for (size_t a = 0; a < 5; a++)
		EXPECT(label, seen[a], "attribute %s missing", attrs[a]);
}

static void
test_xclient(void **state)
{
	for (size_t i = 0; i < sizeof(xclient_cases) / sizeof(xclient_cases[0]); i++) {
		const struct xclient_case *tc = &xclient_cases[i];
		struct client_identity id = identity(tc->client, 40312, NULL, 25, tc->helo, tc->esmtp);
		char line[2048];
		size_t n = client_info_xclient(line, sizeof(line), &id);

		EXPECT(tc->label, n > 0 && n == strlen(line), "length %zu", n);
		if (n > 0)
			check_xclient_line(tc->label, line, n, tc);
	}

	/* The longest HELO (255 octets, all escaped) still fits and stays one line. */
	{
		char *helo = unit_repeat('\n', 255), line[2048], attr[3 * 255 + 1];
		struct client_identity id = identity("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 65535, NULL, 25, helo, true);
		struct xclient_case tc = { "HELO of 255 LFs", NULL, helo, true, "IPV6:2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
		    attr };
		size_t n;

		for (int i = 0; i < 255; i++)
			memcpy(attr + 3 * i, "+0A", 3);
		attr[3 * 255] = '\0';
		n = client_info_xclient(line, sizeof(line), &id);
		EXPECT(tc.label, n > 0, "did not fit");
		if (n > 0) {
			EXPECT(tc.label, memchr(line, '\n', n) == line + n - 1, "LF before the end");
			EXPECT(tc.label, strstr(line, attr) != NULL, "HELO not fully encoded");
		}
		free(helo);
	}

	/* Too small a buffer: 0, never a truncated command. */
	{
		struct client_identity id = identity("192.0.2.1", 1, NULL, 25, "mx.example.org", true);
		char line[40];

		EXPECT("buffer too small", client_info_xclient(line, sizeof(line), &id) == 0, "truncated line returned");
	}
	EXPECT_ALL_PASSED();
}

/* ---- PROXY v1 ---- */

struct proxy_case {
	const char	*label;
	const char	*client;
	uint16_t	 client_port;
	const char	*server;
	uint16_t	 server_port;
	const char	*v1;		/* expected v1 line; NULL: refused (0) */
};

static const struct proxy_case proxy_cases[] = {
	{ "IPv4", "192.0.2.1", 40312, "198.51.100.25", 25, "PROXY TCP4 192.0.2.1 198.51.100.25 40312 25\r\n" },
	{ "IPv6", "2001:db8::1", 40312, "2001:db8::25", 25, "PROXY TCP6 2001:db8::1 2001:db8::25 40312 25\r\n" },
	{ "IPv4, extreme ports", "0.0.0.1", 1, "255.255.255.255", 65535,
	    "PROXY TCP4 0.0.0.1 255.255.255.255 1 65535\r\n" },
	{ "IPv6, full length", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 65535, "2001:db8:1111:2222:3333:4444:5555:6666",
	    65535, "PROXY TCP6 2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff 2001:db8:1111:2222:3333:4444:5555:6666 65535 65535\r\n" },
	{ "mixed families refused", "192.0.2.1", 40312, "2001:db8::25", 25, NULL },
	{ "server address unknown refused", "192.0.2.1", 40312, NULL, 0, NULL },
};

static void
test_proxy_v1(void **state)
{
	for (size_t i = 0; i < sizeof(proxy_cases) / sizeof(proxy_cases[0]); i++) {
		const struct proxy_case *tc = &proxy_cases[i];
		struct client_identity id = identity(tc->client, tc->client_port, tc->server, tc->server_port, "x", true);
		char line[256];
		size_t n = client_info_proxy_v1(line, sizeof(line), &id);

		if (tc->v1 == NULL) {
			EXPECT(tc->label, n == 0, "encoded \"%s\"", unit_escape(line, n));
			continue;
		}
		EXPECT(tc->label, n == strlen(tc->v1) && memcmp(line, tc->v1, n) == 0, "\"%s\", expected \"%s\"",
		    unit_escape(line, n), unit_str(tc->v1));
		EXPECT(tc->label, n <= 107, "%zu octets: the v1 maximum is 107", n);
		{
			char small[20];

			EXPECT(tc->label, client_info_proxy_v1(small, sizeof(small), &id) == 0, "truncated line returned");
		}
	}
	EXPECT_ALL_PASSED();
}

/* ---- PROXY v2: decode what was encoded ---- */

struct v2_decoded {
	int		family;		/* AF_INET / AF_INET6 */
	struct netaddr	src, dst;
	uint16_t	src_port, dst_port;
	size_t		total;
};

/* proxy_v2_decode - a strict reader of the binary header; -1 on anything unexpected. */
static int
proxy_v2_decode(const uint8_t *b, size_t len, struct v2_decoded *d)
{
	static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
	size_t body, alen;
	uint16_t port;

	memset(d, 0, sizeof(*d));
	if (len < 16 || memcmp(b, sig, 12) != 0)
		return -1;
	if (b[12] != 0x21)		/* version 2, command PROXY */
		return -1;
	body = (size_t)b[14] << 8 | b[15];
	if (16 + body != len)
		return -1;
	switch (b[13]) {
	case 0x11:			/* TCP over IPv4 */
		d->family = AF_INET;
		alen = 4;
		break;
	case 0x21:			/* TCP over IPv6 */
		d->family = AF_INET6;
		alen = 16;
		break;
	default:
		return -1;
	}
	if (body < 2 * alen + 4)
		return -1;
	d->src.family = d->dst.family = d->family;
	memcpy(d->src.bytes, b + 16, alen);
	memcpy(d->dst.bytes, b + 16 + alen, alen);
	memcpy(&port, b + 16 + 2 * alen, 2);
	d->src_port = ntohs(port);
	memcpy(&port, b + 18 + 2 * alen, 2);
	d->dst_port = ntohs(port);
	d->total = 16 + body;
	return 0;
}

static void
test_proxy_v2_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof(proxy_cases) / sizeof(proxy_cases[0]); i++) {
		const struct proxy_case *tc = &proxy_cases[i];
		struct client_identity id = identity(tc->client, tc->client_port, tc->server, tc->server_port, "x", true);
		uint8_t buf[256];
		size_t n = client_info_proxy_v2(buf, sizeof(buf), &id);
		struct v2_decoded d;

		if (tc->v1 == NULL) {
			EXPECT(tc->label, n == 0, "encoded %zu octets", n);
			continue;
		}
		EXPECT(tc->label, n == (id.client.family == AF_INET ? 28u : 52u), "%zu octets", n);
		EXPECT(tc->label, proxy_v2_decode(buf, n, &d) == 0, "does not decode");
		EXPECT(tc->label, d.family == id.client.family, "family");
		EXPECT(tc->label, netaddr_equal(&d.src, &id.client), "source address");
		EXPECT(tc->label, netaddr_equal(&d.dst, &id.server), "destination address");
		EXPECT(tc->label, d.src_port == tc->client_port, "source port %u", d.src_port);
		EXPECT(tc->label, d.dst_port == tc->server_port, "destination port %u", d.dst_port);
		EXPECT(tc->label, client_info_proxy_v2(buf, n - 1, &id) == 0, "encoded into a buffer one octet short");
	}
	EXPECT_ALL_PASSED();
}

/* ---- PROXY v2 with the TLS TLV ---- */

struct v2_tls_case {
	const char	*label;
	const char	*client, *server;
	const char	*version, *cipher;	/* what the session reports; version NULL: no TLS */
	size_t		 total;			/* expected header length; 0: refused */
};

#define LONG_NAME "TLS_AN_IMPLAUSIBLY_LONG_CIPHER_NAME_THAT_NO_LIBRARY_WOULD_EVER_PRINT_X"

static const struct v2_tls_case v2_tls_cases[] = {
	{ "IPv4, TLS 1.3", "192.0.2.1", "198.51.100.25", "TLSv1.3", "TLS_AES_256_GCM_SHA384",
	    28 + 3 + 5 + 3 + 7 + 3 + 22 },
	{ "IPv6, TLS 1.2", "2001:db8::1", "2001:db8::25", "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384",
	    52 + 3 + 5 + 3 + 7 + 3 + 29 },
	{ "version without a cipher name", "192.0.2.1", "198.51.100.25", "TLSv1.3", NULL, 28 + 3 + 5 + 3 + 7 },
	{ "no TLS: no TLV", "192.0.2.1", "198.51.100.25", NULL, NULL, 28 },
	{ "empty version: no TLV", "192.0.2.1", "198.51.100.25", "", "X", 28 },
	{ "over-long cipher name refused", "192.0.2.1", "198.51.100.25", "TLSv1.3", LONG_NAME, 0 },
};

/* tlv_find - a strict walk over TLVs in [p, end); the value of type t (exactly once), else NULL. */
static const uint8_t *
tlv_find(const uint8_t *p, const uint8_t *end, uint8_t t, size_t *vlen, bool *malformed)
{
	const uint8_t *found = NULL;

	while (p < end) {
		size_t n;

		if (end - p < 3) {
			*malformed = true;
			return NULL;
		}
		n = (size_t)p[1] << 8 | p[2];
		if ((size_t)(end - p) < 3 + n) {
			*malformed = true;
			return NULL;
		}
		if (p[0] == t) {
			if (found)
				*malformed = true;
			found = p + 3;
			*vlen = n;
		}
		p += 3 + n;
	}
	return found;
}

static void
test_proxy_v2_tls(void **state)
{
	for (size_t i = 0; i < sizeof(v2_tls_cases) / sizeof(v2_tls_cases[0]); i++) {
		const struct v2_tls_case *tc = &v2_tls_cases[i];
		struct client_identity id = identity(tc->client, 40312, tc->server, 25, "x", true);
		uint8_t buf[512];
		struct v2_decoded d;
		size_t n, alen, vlen = 0, sublen = 0;
		const uint8_t *ssl, *sub, *tlvs, *end;
		bool malformed = false;

		id.tls_version = tc->version;
		id.tls_cipher = tc->cipher;
		n = client_info_proxy_v2(buf, sizeof(buf), &id);
		EXPECT(tc->label, n == tc->total, "%zu octets, expected %zu", n, tc->total);
		if (n == 0 || n != tc->total)
			continue;
		EXPECT(tc->label, proxy_v2_decode(buf, n, &d) == 0, "does not decode");
		EXPECT(tc->label, netaddr_equal(&d.src, &id.client) && d.src_port == 40312, "source");
		EXPECT(tc->label, client_info_proxy_v2(buf, n - 1, &id) == 0, "encoded into a buffer one octet short");
		alen = id.client.family == AF_INET ? 4 : 16;
		tlvs = buf + 16 + 2 * alen + 4;
		end = buf + n;
		ssl = tlv_find(tlvs, end, PP2_TYPE_SSL, &vlen, &malformed);
		EXPECT(tc->label, !malformed, "malformed TLV list");
		if (tc->version == NULL || tc->version[0] == '\0') {
			EXPECT(tc->label, tlvs == end, "TLVs without TLS");
			continue;
		}
		EXPECT(tc->label, ssl != NULL && vlen >= 5, "no PP2_TYPE_SSL TLV");
		if (ssl == NULL || vlen < 5)
			continue;
		EXPECT(tc->label, ssl[0] == PP2_CLIENT_SSL, "client field 0x%02x", ssl[0]);
		EXPECT(tc->label, ssl[1] | ssl[2] | ssl[3] | ssl[4], "verify is 0: claims a verified client certificate");
		sub = tlv_find(ssl + 5, ssl + vlen, PP2_SUBTYPE_SSL_VERSION, &sublen, &malformed);
		EXPECT(tc->label, !malformed, "malformed sub-TLVs");
		EXPECT(tc->label, sub && sublen == strlen(tc->version) && memcmp(sub, tc->version, sublen) == 0,
		    "version sub-TLV");
		sub = tlv_find(ssl + 5, ssl + vlen, PP2_SUBTYPE_SSL_CIPHER, &sublen, &malformed);
		if (tc->cipher)
			EXPECT(tc->label, sub && sublen == strlen(tc->cipher) && memcmp(sub, tc->cipher, sublen) == 0,
			    "cipher sub-TLV");
		else
			EXPECT(tc->label, sub == NULL, "cipher sub-TLV without a cipher");
	}
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_xclient),
		cmocka_unit_test(test_proxy_v1),
		cmocka_unit_test(test_proxy_v2_roundtrip),
		cmocka_unit_test(test_proxy_v2_tls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
